"""Plotly figure builders for the explorer pages, by subject: style.py (palettes, layout, export),
latent.py (latent-space plots and snapshots), curves.py (training history), information.py (rate,
distortion, mutual information, bounds, collapse timeline), table.py (CSV numbers).
No streamlit here, so every figure is unit-testable.

Conventions shared by every builder:
- layers are 0-based in code and titled z1..zL as in Sønderby et al. 2016;
- a class keeps one colour everywhere (`class_colours`), a run keeps one colour across charts
  (`run_colours`: the i-th run of the dict a page passes gets the i-th colour, so pages pass
  runs in the same order to every chart);
- colours are hex strings (plotly.js 4 parses colours with culori and rejects invalid CSS ones);
- every figure uses the "plotly_white" template, a set height and compact margins, so the
  modebar's PNG/SVG export (see `export_config`) gives a tidy image;
- `figure_frame(fig)` flattens any figure built here into a tidy DataFrame for the
  "download the numbers (CSV)" buttons;
- a figure shared by every session is frozen (frozen.py): serialized without plotly's deep copies,
  and it refuses changes.

`LayerPCA` (explorer/encode.py) is only duck-typed here: builders read its `coords` (N, k),
`explained` (k,), `components` (k, units), `mean` (units,) attributes.
"""
from __future__ import annotations

from .frozen import FrozenFigure, freeze, from_spec
from .codes import codebook_scatter, code_grid
from .curves import CODE_USE, active_units_curves, code_use_curves, kl_balance_curves, kl_heatmap, kl_per_layer_curves, training_curves
from .information import (collapse_timeline, iw_bound_curve, mutual_information_bars, rate_distortion_bars,
                          rate_distortion_curves, unit_activity_vs_kl)
from .latent import (explained_variance, layer_scatter, layer_scatter_grid, per_layer_bars, projection_grid,
                     projection_scatter3d, with_selection,
                     snapshot_animation,
                     snapshot_scatter)
from .style import (CLASS_PALETTE, KL_FLOOR, MAX_CLASS_TRACES, METRICS, RUN_PALETTE, class_colours, export_config,
                    layer_colours, layer_name, run_colours)
from .spatial import layer_maps
from .table import FRAME_COLUMNS, figure_frame

__all__ = ["FrozenFigure", "freeze", "from_spec", "collapse_timeline", "iw_bound_curve", "mutual_information_bars", "rate_distortion_bars",
           "rate_distortion_curves", "unit_activity_vs_kl", "CLASS_PALETTE", "FRAME_COLUMNS", "KL_FLOOR", "MAX_CLASS_TRACES", "METRICS", "RUN_PALETTE",
           "CODE_USE", "active_units_curves", "class_colours", "code_grid", "code_use_curves", "codebook_scatter", "kl_balance_curves", "explained_variance", "export_config", "figure_frame",
           "kl_heatmap", "kl_per_layer_curves", "layer_maps", "layer_colours", "layer_name", "layer_scatter", "layer_scatter_grid",
           "per_layer_bars", "projection_grid", "projection_scatter3d", "run_colours", "snapshot_animation",
           "snapshot_scatter", "training_curves", "with_selection"]
