"""Figures that no longer change, serialized without plotly's deep copies.

st.plotly_chart calls `fig.to_dict()` twice per rerun (plotly deep-copies every trace each time) and then
encodes the JSON: for a cached figure shared by every session that is the same work on every rerun, and
under a class's load it was most of the Curves page's time. A frozen figure keeps the dict taken when it
was frozen, so a chart of it only encodes JSON (about a third of the cost for a page of heatmaps).
"""
from __future__ import annotations

import plotly.graph_objects as go


class FrozenFigure(go.Figure):
    """A go.Figure whose to_dict() is the dict taken at freeze(); changing it afterwards raises.
    One made by from_spec() builds its traces only when .data or .layout is read."""

    def to_dict(self) -> dict:
        return self._frozen_dict

    @property
    def data(self):
        return self._built().data if self.__dict__.get("_lazy") else go.Figure.data.fget(self)

    @property
    def layout(self):
        return self._built().layout if self.__dict__.get("_lazy") else go.Figure.layout.fget(self)

    def _built(self) -> go.Figure:
        built = self.__dict__.get("_built_figure")
        if built is None:
            built = self._built_figure = go.Figure(self._frozen_dict, _validate=False)
        return built

    def _refuse(self, *args, **kwargs):
        raise TypeError("a frozen figure does not change (it is shared): change a copy, go.Figure(fig)")

    update = update_layout = update_traces = add_trace = add_traces = update_xaxes = update_yaxes = _refuse


def from_spec(spec: dict) -> FrozenFigure:
    """A frozen figure of a plotly dict without building its traces: plotly's constructor takes ~30 ms for
    a 5-layer grid of 1,000 points even unvalidated, and a chart only needs the dict."""
    fig = FrozenFigure()
    fig._frozen_dict = spec
    fig._lazy = True
    return fig


def freeze(fig: go.Figure, spec: dict | None = None) -> FrozenFigure:
    """The figure itself, frozen from now on; `spec`: its dict when the caller already has it."""
    if isinstance(fig, FrozenFigure):
        return fig
    spec = go.Figure.to_dict(fig) if spec is None else spec
    fig.__class__ = FrozenFigure
    fig._frozen_dict = spec
    return fig
