"""Depth figures (explorer/depth.py): every variate's KL ranked, and the share of the KL each depth holds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import KL_FLOOR, _style, layer_colours, layer_name
from .table import with_numbers

MAX_POINTS_PER_LAYER = 2000  # a 16x16x8 layer has 2,048 variates: evenly thinned past this, the ranks kept


def variate_ranking(kl: list[np.ndarray], kept: int | None = None) -> go.Figure:
    """Every variate's mean KL (nats, log scale) against its rank over all layers, coloured by layer (top first
    in the legend); a line at the last kept variate."""
    flat = np.concatenate([k.ravel() for k in kl])
    layer_of = np.concatenate([np.full(k.size, i) for i, k in enumerate(kl)])
    order = np.argsort(-flat, kind="stable")
    rank = np.empty(flat.size, dtype=np.int64)
    rank[order] = np.arange(1, flat.size + 1)
    colours = layer_colours(len(kl))
    fig = go.Figure()
    for i in reversed(range(len(kl))):
        idx = np.flatnonzero(layer_of == i)
        idx = idx[np.argsort(rank[idx])]
        if idx.size > MAX_POINTS_PER_LAYER:
            idx = idx[np.linspace(0, idx.size - 1, MAX_POINTS_PER_LAYER).round().astype(int)]
        fig.add_trace(go.Scattergl(x=rank[idx], y=np.maximum(flat[idx], KL_FLOOR), mode="markers", name=layer_name(i),
                                   marker=dict(size=4, color=colours[i]),
                                   hovertemplate=f"{layer_name(i)}<br>rank %{{x}}: %{{y:.4f}} nats<extra></extra>"))
    if kept:
        fig.update_layout(kept_line(kept))
    fig.update_yaxes(type="log")
    with_numbers(fig, pd.DataFrame({"layer": [layer_name(int(i)) for i in layer_of], "variate": np.concatenate(
        [np.arange(k.size) for k in kl]), "rank": rank, "kl_nats": flat}))
    return _style(fig, "Which variates carry the image: each variate's mean KL, ranked over all layers",
                  height=380, xaxis="rank (1: the most KL)", yaxis="mean KL (nats, log)")


def kept_line(kept: int) -> dict:
    """The layout of variate_ranking's line at the last kept variate: a dashed vertical line and its label, as
    a layout patch, so that a slider move changes the cached figure's dict instead of rebuilding 14,000 points."""
    return {"shapes": [dict(type="line", xref="x", yref="paper", x0=kept + 0.5, x1=kept + 0.5, y0=0, y1=1,
                            line=dict(color="#444444", dash="dash"))],
            "annotations": [dict(x=kept + 0.5, xref="x", y=1, yref="paper", text=f"kept: the top {kept:,}",
                                 showarrow=False, xanchor="left", yanchor="top")]}


def with_kept_line(spec: dict, kept: int) -> dict:
    """A ranking figure's dict (variate_ranking(kl) without a line, as to_dict gives it) with the kept line; the
    traces are shared, not copied."""
    return {**spec, "layout": {**spec["layout"], **kept_line(kept)}}


def kl_share_figure(share) -> go.Figure:
    """Left: the cumulative share of the KL from the top layer down (VDVAE's Fig. 4); right: each resolution's."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.1,
                        subplot_titles=["cumulative, from the top layer down", "per resolution"])
    fig.add_trace(go.Scatter(x=share.layers, y=share.by_layer, mode="lines+markers", name="cumulative share",
                             hovertemplate="down to %{x}: %{y:.1%} of the KL<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=share.resolutions, y=share.by_resolution, name="per resolution",
                         hovertemplate="%{x}: %{y:.1%} of the KL<extra></extra>"), row=1, col=2)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    fig.update_xaxes(type="category")
    frame = pd.DataFrame({"part": ["down to " + n for n in share.layers] + list(share.resolutions),
                          "share": list(share.by_layer) + list(share.by_resolution)})
    with_numbers(fig, frame)
    return _style(fig, "How much each depth decides: the share of the test KL", height=330, showlegend=False)
