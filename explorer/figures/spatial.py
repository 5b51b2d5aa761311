"""Per-layer maps of one image (explorer/spatial.py): where each layer spends its nats, what each controls."""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import _note, _style, layer_name
from .table import with_numbers

MAPS_PER_ROW = 8


def layer_maps(maps: Mapping[int, np.ndarray], title: str, unit: str, colorscale: str = "Viridis") -> go.Figure:
    """One small heat map per layer (z_L first, as the top-down pass goes), on one colour scale so the layers
    compare; each map's rows run top to bottom as the image's do."""
    layers = sorted(maps, reverse=True)
    if not layers:
        return _note(_style(go.Figure(), title, height=200), "no layer of this model is a spatial map")
    cols = min(MAPS_PER_ROW, len(layers))
    rows = math.ceil(len(layers) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[layer_name(i) for i in layers],
                        horizontal_spacing=0.02, vertical_spacing=0.12 / rows)
    top = max(float(np.max(maps[i])) for i in layers) or 1.0
    records = []
    for k, layer in enumerate(layers):
        m = np.asarray(maps[layer], dtype=np.float64)
        fig.add_trace(go.Heatmap(z=m, zmin=0.0, zmax=top, colorscale=colorscale, showscale=(k == 0),
                                 colorbar=dict(title=dict(text=unit), len=0.8),
                                 hovertemplate=f"{layer_name(layer)}<br>row %{{y}}, column %{{x}}: %{{z:.3f}} {unit}"
                                               "<extra></extra>"), row=k // cols + 1, col=k % cols + 1)
        records += [{"layer": layer_name(layer), "row": r, "column": c, "value": float(m[r, c])}
                    for r in range(m.shape[0]) for c in range(m.shape[1])]
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    for k in range(len(layers)):  # square cells: a map keeps the image's proportions at any width
        fig.update_yaxes(scaleanchor=f"x{k + 1 if k else ''}", constrain="domain", row=k // cols + 1, col=k % cols + 1)
        fig.update_xaxes(constrain="domain", row=k // cols + 1, col=k % cols + 1)
    with_numbers(fig, pd.DataFrame(records, columns=["layer", "row", "column", "value"]))
    return _style(fig, title, height=135 * rows + 90, margin=dict(l=20, r=20, t=80, b=20))
