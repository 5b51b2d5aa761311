"""Shared look of every explorer figure: palettes, layer names, layout, the modebar's export."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.colors as pcolors
import plotly.graph_objects as go

TEMPLATE = "plotly_white"
MARGIN = dict(l=55, r=20, t=70, b=50)
GRID_MARGIN = dict(l=55, r=20, t=100, b=120)  # room for the class legend under the layer subplots
CLASS_PALETTE: list[str] = list(pcolors.qualitative.Plotly) + [
    c for c in pcolors.qualitative.Dark24 if c not in pcolors.qualitative.Plotly]
RUN_PALETTE: list[str] = list(pcolors.qualitative.Plotly)
RUN_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
# Above this many classes (e.g. Omniglot characters) one trace per class would mean thousands of
# traces and an unreadable legend: the points then go into one trace per layer coloured by label.
MAX_CLASS_TRACES = 40
KL_FLOOR = 1e-4  # nats; log10 of a collapsed unit's KL would be -inf, so the heatmap floors it here
HIGHLIGHT_SIZE = 16

METRICS: dict[str, tuple[str, str]] = {  # history column -> (chart title, y-axis label with units)
    "beta": ("KL weight β (deterministic warm-up)", "β"),
    "train_elbo": ("Training ELBO", "ELBO (nats per image)"),
    "recon": ("Training reconstruction term log p(x|z1)", "log p(x|z1) (nats per image)"),
    "test_elbo": ("Test ELBO", "ELBO (nats per image)"),
    "test_recon": ("Test reconstruction term log p(x|z1)", "log p(x|z1) (nats per image)"),
    "seconds": ("Seconds per epoch", "seconds"),
}


# ---- colours and shared styling --------------------------------------------------------------

def class_colours(labels: Sequence[Any] | np.ndarray) -> dict[Any, str]:
    """One hex colour per distinct label; an integer label's colour depends on its value only,
    so class 3 is the same colour in every subplot, figure and run."""
    uniq = np.unique(np.asarray(labels).ravel())
    integer = np.issubdtype(uniq.dtype, np.integer)
    return {_plain(c): CLASS_PALETTE[(int(c) if integer else i) % len(CLASS_PALETTE)]
            for i, c in enumerate(uniq)}


def run_colours(names: Sequence[str]) -> dict[str, str]:
    """The i-th run gets the i-th colour: pages pass runs in the same order to every chart."""
    return {n: RUN_PALETTE[i % len(RUN_PALETTE)] for i, n in enumerate(names)}


def layer_colours(n_layers: int) -> list[str]:
    """Ordered Viridis colours (dark = z1 at the bottom, light = top layer): layer order reads as hue."""
    points = [0.0] if n_layers <= 1 else list(np.linspace(0.0, 0.85, n_layers))  # skip the pale yellow end
    return [_hex(t) for t in pcolors.sample_colorscale("Viridis", points, colortype="tuple")]


def layer_name(layer: int) -> str:
    """0-based code index -> the paper's name z1..zL."""
    return f"z{layer + 1}"


def export_config(filename: str = "lvae-explorer", fmt: str = "png") -> dict:
    """A plotly `config` for st.plotly_chart: the modebar camera saves PNG (2x) or SVG under filename."""
    return {"displaylogo": False,
            "toImageButtonOptions": {"format": fmt, "filename": filename, "scale": 2}}


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{int(round(min(max(v, 0.0), 1.0) * 255)):02x}" for v in rgb)


def _plain(value: Any) -> Any:
    """numpy scalar -> Python scalar, so dict keys and trace names are JSON-friendly."""
    return value.item() if isinstance(value, np.generic) else value


def _style(fig: go.Figure, title: str, height: int, xaxis: str | None = None, yaxis: str | None = None,
           margin: dict | None = None, **layout: Any) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=dict(text=title, x=0.01, xanchor="left"), height=height,
                      margin=margin or MARGIN, **layout)
    if xaxis is not None:
        fig.update_xaxes(title_text=xaxis)
    if yaxis is not None:
        fig.update_yaxes(title_text=yaxis)
    return fig


def _note(fig: go.Figure, text: str) -> go.Figure:
    """An empty chart says why it is empty instead of showing blank axes."""
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                       font=dict(size=15, color="#666666"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


