"""Figures of discrete layers (explorer/codemap.py): one image's code grid and a codebook's use."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .style import _style, class_colours, layer_name
from .table import with_numbers

CELL_PX = 46  # a grid cell's side on screen: room for a three-digit code


def code_grid(index: np.ndarray, surprise: np.ndarray, layer: int, selected: tuple[int, int] | None = None,
              swap: tuple[tuple[int, int], int] | None = None) -> go.Figure:
    """An image's codes in one layer as a grid of squares (rows top to bottom as the image's), each showing its code
    and coloured by the nats the prior pays for it there; a cell's customdata is its number row * w + column, so a
    click selects it. `selected` is outlined; `swap` ((row, column), code) shows that cell as "own→new"."""
    h, w = index.shape
    rows, cols = np.divmod(np.arange(h * w), w)
    nats = np.asarray(surprise, dtype=np.float64).ravel()
    line_w = np.zeros(h * w)
    if selected is not None:
        line_w[selected[0] * w + selected[1]] = 4
    text = [str(int(c)) + (f"→{swap[1]}" if swap is not None and (r, k) == tuple(swap[0]) else "")
            for c, r, k in zip(index.ravel(), rows, cols)]
    fig = go.Figure(go.Scatter(
        x=cols, y=rows, mode="markers+text", text=text, customdata=np.arange(h * w),
        textfont=dict(size=12, color="white"),
        marker=dict(symbol="square", size=CELL_PX - 4, color=nats, colorscale="Viridis", cmin=0.0,
                    cmax=max(float(nats.max()), 1e-6), line=dict(color="#ff2b2b", width=line_w),
                    colorbar=dict(title=dict(text="-log p (nats)"), len=0.9, thickness=12)),
        hovertemplate="row %{y}, column %{x}<br>code %{text}<br>-log p under the prior %{marker.color:.2f} nats"
                      "<extra></extra>"))
    fig.update_xaxes(range=[-0.5, w - 0.5], showticklabels=False, showgrid=False, zeroline=False, fixedrange=True)
    fig.update_yaxes(range=[h - 0.5, -0.5], showticklabels=False, showgrid=False, zeroline=False, fixedrange=True)
    with_numbers(fig, pd.DataFrame({"layer": layer_name(layer), "row": rows, "column": cols,
                                    "code": index.ravel().astype(int), "nats": nats}))
    fig = _style(fig, f"{layer_name(layer)}: the image's codes ({h}x{w})", height=CELL_PX * h + 70,
                 margin=dict(l=10, r=10, t=40, b=10))
    fig.update_layout(width=CELL_PX * w + 110, dragmode=False, clickmode="event+select")
    return fig


def codebook_scatter(xy: np.ndarray, counts: np.ndarray, top_class: np.ndarray, share: np.ndarray, layer: int,
                     class_names: dict[int, str] | None = None, axes: tuple[str, str] = ("PC1", "PC2")) -> go.Figure:
    """A layer's code vectors projected to two axes (PCA, UMAP, ...), each sized by how often it was chosen and
    coloured by the class it most often appears in; codes never chosen are grey crosses."""
    fig = go.Figure()
    colours = class_colours(sorted(int(c) for c in set(top_class.tolist()) if c >= 0))
    size = 6 + 26 * np.sqrt(counts / max(int(counts.max()), 1))
    for c in sorted(set(top_class.tolist())):
        m = top_class == c
        name = "never chosen" if c < 0 else (class_names or {}).get(int(c), str(int(c)))
        fig.add_trace(go.Scatter(
            x=xy[m, 0], y=xy[m, 1], mode="markers", name=name, customdata=np.c_[np.flatnonzero(m), counts[m], share[m]],
            marker=dict(size=size[m], color="#bbbbbb" if c < 0 else colours[int(c)],
                        symbol="x" if c < 0 else "circle", line=dict(width=0.5, color="#333")),
            hovertemplate="code %{customdata[0]}<br>chosen %{customdata[1]:,} times<br>"
                          f"{name}: %{{customdata[2]:.0%}} of its uses<extra></extra>"))
    with_numbers(fig, pd.DataFrame({"code": np.arange(len(counts)), axes[0]: xy[:, 0], axes[1]: xy[:, 1],
                                    "uses": counts, "top_class": top_class, "share": share}))
    used = int((counts > 0).sum())
    return _style(fig, f"{layer_name(layer)}: its codebook, {used} of {len(counts)} codes chosen by these images",
                  height=420, xaxis=f"{axes[0]} of the code vectors", yaxis=axes[1])
