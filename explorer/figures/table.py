"""The numbers behind the "Numbers (CSV)" downloads.

Every builder in this package attaches the tidy DataFrame it drew its figure from (`with_numbers`),
with columns named for what they hold (run, epoch, layer, point, class, pc1, ...); `figure_frame`
returns that table. Only a figure made elsewhere is flattened trace by trace (FRAME_COLUMNS).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .style import _plain


# ---- CSV ----------------------------------------------------------------------------------------

FRAME_COLUMNS = ["trace", "subplot", "frame", "x", "y", "z", "customdata"]


def _arr(values: Any, n: int) -> list:
    if values is None:
        return [None] * n
    out = list(np.asarray(values, dtype=object).reshape(-1)) if not isinstance(values, (list, tuple)) else list(values)
    return [_plain(v) for v in out] if len(out) == n else [None] * n


def _trace_rows(trace: Any, base: Any, frame: str | None) -> pd.DataFrame:
    """Rows of one trace; `base` supplies what a frame's partial trace leaves out (name, meta, customdata)."""
    name = base.name
    subplot = base.meta if isinstance(base.meta, str) else None
    if trace.type == "heatmap":
        z = np.asarray(trace.z, dtype=float)
        ys = list(trace.y) if trace.y is not None else list(range(z.shape[0]))
        xs = list(trace.x) if trace.x is not None else list(range(z.shape[1]))
        cd = np.asarray(trace.customdata, dtype=float) if trace.customdata is not None else np.full(z.shape, np.nan)
        return pd.DataFrame({"trace": name, "subplot": subplot, "frame": frame,
                             "x": [_plain(x) for _ in ys for x in xs], "y": [y for y in ys for _ in xs],
                             "z": z.reshape(-1), "customdata": cd.reshape(-1)}, columns=FRAME_COLUMNS)
    x = trace.x if trace.x is not None else base.x
    n = len(x) if x is not None else 0
    customdata = trace.customdata if trace.customdata is not None else base.customdata
    return pd.DataFrame({"trace": [name] * n, "subplot": [subplot] * n, "frame": [frame] * n,
                         "x": _arr(x, n), "y": _arr(trace.y if trace.y is not None else base.y, n),
                         "z": _arr(getattr(trace, "z", None) if trace.type in ("scatter3d",) else None, n),
                         "customdata": _arr(customdata, n)}, columns=FRAME_COLUMNS)


def with_numbers(fig: go.Figure, frame: pd.DataFrame) -> go.Figure:
    """Attach the table a figure was built from (kept on the Python object; never sent to the browser)."""
    fig._numbers = frame.reset_index(drop=True)
    return fig


def figure_frame(fig: go.Figure) -> pd.DataFrame:
    """The figure's numbers as one tidy table (the CSV download): the table its builder drew it from,
    or, for a figure built elsewhere, one row per plotted value with trace (legend name), subplot
    (trace meta), frame (animation frame), x, y, z, customdata."""
    numbers = getattr(fig, "_numbers", None)
    if numbers is not None:
        return numbers
    parts = []
    if fig.frames:
        for fr in fig.frames:
            idx = list(fr.traces) if fr.traces is not None else list(range(len(fr.data)))
            parts += [_trace_rows(t, fig.data[j], fr.name) for j, t in zip(idx, fr.data)]
    else:
        parts = [_trace_rows(t, t, None) for t in fig.data]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=FRAME_COLUMNS)
    return pd.concat(parts, ignore_index=True)
