"""Plotly figure builders for the explorer pages (no streamlit here, so every figure is unit-testable).

Conventions shared by every builder:
- layers are 0-based in code and titled z1..zL as in Sønderby et al. 2016;
- a class keeps one colour everywhere (`class_colours`), a run keeps one colour across charts
  (`run_colours`: the i-th run of the dict a page passes gets the i-th colour, so pages pass
  runs in the same order to every chart);
- colours are hex strings (plotly.js 4 parses colours with culori and rejects invalid CSS ones);
- every figure uses the "plotly_white" template, a set height and compact margins, so the
  modebar's PNG/SVG export (see `export_config`) gives a tidy image;
- `figure_frame(fig)` flattens any figure built here into a tidy DataFrame for the
  "download the numbers (CSV)" buttons.

`LayerPCA` (explorer/encode.py) is only duck-typed here: builders read its `coords` (N, k),
`explained` (k,), `components` (k, units), `mean` (units,) attributes.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.colors as pcolors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

TEMPLATE = "plotly_white"
MARGIN = dict(l=55, r=20, t=70, b=50)
GRID_MARGIN = dict(l=55, r=20, t=70, b=120)  # room for the class legend under the layer subplots
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


# ---- latent-space scatter plots ----------------------------------------------------------------

def _labels(labels: Sequence[Any] | np.ndarray, n: int) -> np.ndarray:
    out = np.asarray(labels).ravel()
    if out.shape[0] != n:
        raise ValueError(f"{out.shape[0]} labels for {n} points")
    return out


def _units(pca: Any) -> int:
    return int(np.asarray(pca.mean).reshape(-1).shape[0])


def _columns(coords: np.ndarray, k: int) -> np.ndarray:
    """The first k columns of coords, zero-padded (a 1- or 2-unit layer has fewer PCs than the plot).
    float32: plotly ships arrays to the browser as typed arrays, half the bytes of float64."""
    coords = np.asarray(coords, dtype=np.float32)
    if coords.ndim == 1:
        coords = coords[:, None]
    if coords.shape[1] >= k:
        return coords[:, :k]
    return np.hstack([coords, np.zeros((coords.shape[0], k - coords.shape[1]), np.float32)])


def _explained(pca: Any, k: int) -> np.ndarray:
    ev = np.asarray(pca.explained, dtype=float).ravel()
    return np.concatenate([ev, np.zeros(max(0, k - ev.shape[0]))])[:k]


def _layer_title(pca: Any, layer: int, k: int = 2) -> str:
    """Short enough for five subplots side by side: "z1 (16 units) · PC1–2 70%" (explained variance)."""
    return f"{layer_name(layer)} ({_units(pca)} units) · PC1–{k} {_explained(pca, k).sum():.0%}"


def _point_traces(coords: np.ndarray, labels: np.ndarray, layer: int, trace_cls: type, showlegend: bool,
                  colours: dict[Any, str], marker_size: float) -> list:
    """The points of one layer: one trace per class (legendgroup = class, so a legend click hides
    that class in every layer), or one label-coloured trace when there are too many classes.
    customdata is the point's row index in the arrays the page passed (maps selections back)."""
    three_d = trace_cls is go.Scatter3d
    hover = "PC1 %{x:.2f}, PC2 %{y:.2f}" + (", PC3 %{z:.2f}" if three_d else "")
    tag = layer_name(layer)
    index = np.arange(labels.shape[0])
    if len(colours) > MAX_CLASS_TRACES:
        xyz = dict(x=coords[:, 0], y=coords[:, 1], **({"z": coords[:, 2]} if three_d else {}))
        codes = np.unique(labels, return_inverse=True)[1]
        return [trace_cls(**xyz, mode="markers", name="points", legendgroup="points", showlegend=showlegend,
                          meta=tag, customdata=index, text=[str(_plain(c)) for c in labels],
                          marker=dict(size=marker_size, color=codes, colorscale="Turbo", opacity=0.75),
                          hovertemplate=f"class %{{text}} · point %{{customdata}}<br>{hover}<extra>{tag}</extra>")]
    traces = []
    for c, colour in colours.items():
        idx = index[labels == c]
        xyz = dict(x=coords[idx, 0], y=coords[idx, 1], **({"z": coords[idx, 2]} if three_d else {}))
        traces.append(trace_cls(
            **xyz, mode="markers", name=str(c), legendgroup=f"class {c}", showlegend=showlegend, meta=tag,
            customdata=idx, marker=dict(size=marker_size, color=colour, opacity=0.75),
            hovertemplate=f"class {c} · point %{{customdata}}<br>{hover}<extra>{tag}</extra>"))
    return traces


def _highlight_trace(coords: np.ndarray, labels: np.ndarray, point: int, layer: int, trace_cls: type,
                     showlegend: bool, colours: dict[Any, str]) -> Any:
    three_d = trace_cls is go.Scatter3d
    xyz = dict(x=coords[[point], 0], y=coords[[point], 1], **({"z": coords[[point], 2]} if three_d else {}))
    c = _plain(labels[point])
    return trace_cls(**xyz, mode="markers", name="selected point", legendgroup="selected", showlegend=showlegend,
                     meta=layer_name(layer), customdata=[point],
                     marker=dict(size=HIGHLIGHT_SIZE if not three_d else 9, color=colours.get(c, "#000000"),
                                 symbol="circle", line=dict(color="#000000", width=3)),
                     hovertemplate=f"selected: class {c} · point %{{customdata}}<extra>{layer_name(layer)}</extra>")


def _valid_point(highlight: int | None, n: int) -> int | None:
    """A stale selection (index out of range after the point set changed) is dropped, not an error."""
    if highlight is None:
        return None
    h = int(highlight)
    return h if 0 <= h < n else None


def _layer_grid(coords: Sequence[np.ndarray], titles: Sequence[str], labels: Sequence[Any] | np.ndarray,
                highlight: int | None = None, trace_cls: type = go.Scattergl, marker_size: float = 4,
                layers: Sequence[int] | None = None) -> go.Figure:
    """One row of 2-D subplots, one per layer, in ONE figure: Scattergl traces of all subplots share
    a single WebGL context (browsers allow ~16 per page, one figure per layer would exhaust them)."""
    n_cols = len(coords)
    layers = list(range(n_cols)) if layers is None else list(layers)
    fig = make_subplots(rows=1, cols=max(n_cols, 1), subplot_titles=list(titles) or None,
                        horizontal_spacing=min(0.06, 0.5 / max(n_cols - 1, 1)))
    if n_cols == 0:
        return _note(fig, "no layers to show")
    n = np.asarray(coords[0]).shape[0]
    lab = _labels(labels, n)
    colours = class_colours(lab)
    point = _valid_point(highlight, n)
    for col, (xy, layer) in enumerate(zip(coords, layers), start=1):
        xy = _columns(xy, 2)
        if xy.shape[0] != n:
            raise ValueError(f"layer {layer_name(layer)} has {xy.shape[0]} points, the first layer {n}")
        for tr in _point_traces(xy, lab, layer, trace_cls, col == 1, colours, marker_size):
            fig.add_trace(tr, row=1, col=col)
        if point is not None:
            fig.add_trace(_highlight_trace(xy, lab, point, layer, trace_cls, col == 1, colours), row=1, col=col)
        fig.update_xaxes(title_text="PC1", row=1, col=col)
    fig.update_yaxes(title_text="PC2", row=1, col=1)
    fig.update_annotations(font_size=12)
    # A horizontal legend under the plots: a side legend would take a sixth of the width from the layers.
    fig.update_layout(legend=dict(title=dict(text="class "), itemsizing="constant", orientation="h",
                                  x=0, xanchor="left", y=-0.2, yanchor="top"), hovermode="closest")
    return fig


def layer_scatter(pca: Any, labels: Sequence[Any] | np.ndarray, layer: int, highlight: int | None = None,
                  three_d: bool = False, hover_images: list[str] | None = None) -> go.Figure:
    """One layer's posterior means in PCA coordinates, coloured by class.

    2-D: go.Scattergl; 3-D: go.Scatter3d (PC1-3; a layer with fewer PCs is padded with 0).
    customdata = the point's index; `highlight` draws that point as a big black-edged marker.
    `hover_images` (data URIs, one per point) are deliberately NOT put into the figure: plotly's
    hover labels cannot render images, and thousands of URIs would bloat every figure sent to the
    browser. The hover names class and index instead, and the page shows the image of the selected
    point (customdata) next to the chart; the parameter stays so the page's call keeps one shape.
    """
    del hover_images  # see the docstring: shown by the page, not by plotly
    coords = np.asarray(pca.coords, dtype=float)
    if not three_d:
        fig = _layer_grid([coords], [_layer_title(pca, layer)], labels, highlight, layers=[layer])
        return _style(fig, f"Latent layer {layer_name(layer)}: posterior means, first two principal components",
                      height=540, margin=GRID_MARGIN)
    xyz = _columns(coords, 3)
    lab = _labels(labels, xyz.shape[0])
    colours = class_colours(lab)
    fig = go.Figure(_point_traces(xyz, lab, layer, go.Scatter3d, True, colours, marker_size=2.5))
    point = _valid_point(highlight, xyz.shape[0])
    if point is not None:
        fig.add_trace(_highlight_trace(xyz, lab, point, layer, go.Scatter3d, True, colours))
    ev = _explained(pca, 3)
    fig.update_layout(scene=dict(xaxis_title=f"PC1 ({ev[0]:.0%})", yaxis_title=f"PC2 ({ev[1]:.0%})",
                                 zaxis_title=f"PC3 ({ev[2]:.0%})"),
                      legend=dict(title=dict(text="class"), itemsizing="constant"))
    return _style(fig, f"Latent layer {_layer_title(pca, layer, 3)}", height=600)


def layer_scatter_grid(pcas: Sequence[Any], labels: Sequence[Any] | np.ndarray,
                       highlight: int | None = None) -> go.Figure:
    """All layers side by side in ONE figure (one WebGL context), one column per layer."""
    fig = _layer_grid([p.coords for p in pcas], [_layer_title(p, i) for i, p in enumerate(pcas)], labels, highlight)
    return _style(fig, "Posterior means of every latent layer (PCA, PC1 vs PC2)", height=480, margin=GRID_MARGIN)


def explained_variance(pcas: Sequence[Any]) -> go.Figure:
    """Per layer, the share of the posterior means' variance each principal component explains."""
    fig = go.Figure()
    k = max((np.asarray(p.explained).size for p in pcas), default=0)
    x = [layer_name(i) for i in range(len(pcas))]
    for j in range(k):
        y = [100 * _explained(p, k)[j] for p in pcas]
        fig.add_trace(go.Bar(x=x, y=y, name=f"PC{j + 1}", marker_color=CLASS_PALETTE[j % len(CLASS_PALETTE)],
                             hovertemplate=f"%{{x}} PC{j + 1}: %{{y:.1f}}%<extra></extra>"))
    if not pcas:
        _note(fig, "no layers to show")
    return _style(fig, "Variance of the posterior means explained by each principal component", height=360,
                  xaxis="latent layer", yaxis="explained variance (%)", barmode="group",
                  legend=dict(title=dict(text="component")))


def per_layer_bars(values: Mapping[str, Sequence[float]], title: str, yaxis: str) -> go.Figure:
    """Grouped bars: x = layer z1..zL, one bar group per run label (e.g. active units, KL per layer)."""
    fig = go.Figure()
    colours = run_colours(list(values))
    n_layers = max((len(v) for v in values.values()), default=0)
    for name, vals in values.items():
        vals = [float(v) for v in vals]
        fig.add_trace(go.Bar(x=[layer_name(i) for i in range(len(vals))], y=vals, name=name,
                             marker_color=colours[name], texttemplate="%{y:.3~g}", textposition="outside",
                             cliponaxis=False,
                             hovertemplate=f"{name}<br>%{{x}}: %{{y:.4g}}<extra></extra>"))
    if n_layers == 0:
        _note(fig, "no data yet")
    fig.update_xaxes(categoryorder="array", categoryarray=[layer_name(i) for i in range(n_layers)])
    return _style(fig, title, height=380, xaxis="latent layer (z1 = closest to the data)", yaxis=yaxis,
                  barmode="group", legend=dict(title=dict(text="run")))


# ---- training history --------------------------------------------------------------------------

def _integer_epochs(fig: go.Figure) -> go.Figure:
    """Epoch axes tick at whole epochs: plotly would label a 6-epoch run 2, 2.5, 3, ..."""
    xs = [float(v) for t in fig.data if t.x is not None for v in np.asarray(t.x, dtype=float).ravel()]
    if xs and max(xs) - min(xs) <= 12:
        fig.update_xaxes(tick0=0, dtick=1)
    return fig


def _metric_rows(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(epoch, metric) rows where the metric was recorded: test metrics exist only every eval_every epochs."""
    if df is None or df.empty or metric not in df.columns or "epoch" not in df.columns:
        return pd.DataFrame({"epoch": [], metric: []})
    out = pd.DataFrame({"epoch": pd.to_numeric(df["epoch"], errors="coerce"),
                        metric: pd.to_numeric(df[metric], errors="coerce")})
    return out.dropna().sort_values("epoch")


def _list_rows(df: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Epochs and an (epochs, L) array from a per-layer list column; rows without a list are skipped,
    a ragged row is padded with NaN."""
    if df is None or df.empty or column not in df.columns or "epoch" not in df.columns:
        return np.zeros(0), np.zeros((0, 0))
    rows = [(e, list(v)) for e, v in zip(df["epoch"], df[column]) if isinstance(v, (list, tuple, np.ndarray))]
    rows.sort(key=lambda r: r[0])
    width = max((len(v) for _, v in rows), default=0)
    values = np.full((len(rows), width), np.nan)
    for i, (_, v) in enumerate(rows):
        values[i, :len(v)] = np.asarray(v, dtype=float)
    return np.asarray([e for e, _ in rows], dtype=float), values


def training_curves(histories: Mapping[str, pd.DataFrame], metric: str) -> go.Figure:
    """One metric against epoch, runs overlaid (one colour per run). Epochs without the metric are
    dropped; sparse (test) metrics are drawn as markers+lines so single evaluations stay visible."""
    title, ylabel = METRICS.get(metric, (metric, metric))
    colours = run_colours(list(histories))
    fig = go.Figure()
    for name, df in histories.items():
        rows = _metric_rows(df, metric)
        if rows.empty:
            continue
        sparse = metric.startswith("test_") or len(rows) < len(df)
        fig.add_trace(go.Scatter(x=rows["epoch"], y=rows[metric], name=name, mode="lines+markers" if sparse else "lines",
                                 line=dict(color=colours[name]), marker=dict(size=6),
                                 hovertemplate=f"{name}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>"))
    if not fig.data:
        _note(fig, f"no {metric} values yet")
    return _style(_integer_epochs(fig), title, height=380, xaxis="epoch", yaxis=ylabel, hovermode="x unified",
                  legend=dict(title=dict(text="run")))


def _per_layer_lines(histories: Mapping[str, pd.DataFrame], column: str, title: str, ylabel: str,
                     log_y: bool = False) -> go.Figure:
    """One line per (run, layer): colour = layer (ordered Viridis), dash = run; legend grouped per run
    so one click hides a whole run."""
    series = {name: _list_rows(df, column) for name, df in histories.items()}
    n_layers = max((v.shape[1] for _, v in series.values()), default=0)
    colours = layer_colours(n_layers)
    fig = go.Figure()
    for r, (name, (epochs, values)) in enumerate(series.items()):
        sparse = len(epochs) < (0 if histories[name] is None else len(histories[name]))
        for i in range(values.shape[1]):
            ok = ~np.isnan(values[:, i])
            if not ok.any():
                continue
            fig.add_trace(go.Scatter(
                x=epochs[ok], y=values[ok, i], name=layer_name(i), legendgroup=name,
                legendgrouptitle=dict(text=name), mode="lines+markers" if sparse else "lines",
                line=dict(color=colours[i], dash=RUN_DASHES[r % len(RUN_DASHES)], width=2), marker=dict(size=5),
                hovertemplate=f"{name} · {layer_name(i)}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>"))
    if not fig.data:
        _note(fig, f"no {column} values yet")
    fig = _style(_integer_epochs(fig), title, height=420, xaxis="epoch", yaxis=ylabel,
                 legend=dict(groupclick="togglegroup"))
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def kl_per_layer_curves(histories: Mapping[str, pd.DataFrame], test: bool = False, log_y: bool = False) -> go.Figure:
    """KL(q(z_i|·) || p(z_i|z_{i+1})) per layer against epoch (training average, or test set if `test`)."""
    column = "test_kl_per_layer" if test else "kl_per_layer"
    which = "test set" if test else "training"
    return _per_layer_lines(histories, column, f"KL divergence per latent layer ({which})",
                            "KL (nats per image)", log_y)


def active_units_curves(histories: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Active units per layer (Burda et al.: Cov_x(E_q[z_u]) > 0.01) at the evaluation epochs."""
    return _per_layer_lines(histories, "active_units", "Active units per latent layer",
                            "active units (A_u > 0.01)")


def kl_heatmap(history: pd.DataFrame, zmax: float | None = None) -> go.Figure:
    """KL per unit (test set) over the evaluation epochs: rows "z{i} u{u}" layer-major (z1 on top),
    columns = epochs with kl_per_unit, colour = log10(max(KL, 1e-4)). Collapsed units stay dark
    rows, which is how the paper's "inactive units" look over training. Pass the same `zmax` to
    two runs' heatmaps to share one colour scale."""
    fig = go.Figure()
    rows = []
    if history is not None and not history.empty and {"epoch", "kl_per_unit"} <= set(history.columns):
        rows = sorted(((int(e), v) for e, v in zip(history["epoch"], history["kl_per_unit"])
                       if isinstance(v, (list, tuple, np.ndarray)) and len(v) > 0), key=lambda r: r[0])
    if not rows:
        return _style(_note(fig, "no evaluation epochs yet"), "KL per latent unit", height=320)
    sizes = [max(len(r[1][i]) if i < len(r[1]) else 0 for r in rows) for i in range(max(len(r[1]) for r in rows))]
    labels = [f"z{i + 1} u{u}" for i, n in enumerate(sizes) for u in range(n)]
    kl = np.full((len(labels), len(rows)), np.nan)
    for j, (_, per_layer) in enumerate(rows):
        start = 0
        for i, n in enumerate(sizes):
            vals = np.asarray(per_layer[i] if i < len(per_layer) else [], dtype=float)
            kl[start:start + len(vals), j] = vals
            start += n
    z = np.log10(np.maximum(kl, KL_FLOOR))  # NaN (missing) stays NaN
    zmin = math.log10(KL_FLOOR)
    if zmax is None:  # plotly ignores zmin unless zmax is set too: fix both so the floor is always the bottom
        zmax = max(float(np.nanmax(z)) if np.isfinite(z).any() else zmin, zmin + 1.0)
    text = [[("–" if np.isnan(v) else f"{v:.4g}") for v in row] for row in kl]
    epochs = [e for e, _ in rows]
    # Hover reads raw KL from `text`: heatmap customdata in hovertemplates broke across plotly 6.x
    # (plotly.js #7607); customdata still carries the raw values for figure_frame's CSV.
    fig.add_trace(go.Heatmap(z=z, x=epochs, y=labels, customdata=kl, text=text, colorscale="Viridis",
                             zmin=zmin, zmax=zmax, name="KL per unit",
                             colorbar=dict(title=dict(text="log10 KL (nats)")),
                             hovertemplate="epoch %{x} · %{y}<br>KL %{text} nats<extra></extra>"))
    starts = np.cumsum([0] + sizes[:-1])
    fig.update_yaxes(autorange="reversed", tickmode="array", tickvals=[labels[s] for s, n in zip(starts, sizes) if n],
                     ticktext=[layer_name(i) for i, n in enumerate(sizes) if n])
    for s in starts[1:]:  # white rules between layers
        fig.add_shape(type="line", xref="paper", x0=0, x1=1, y0=s - 0.5, y1=s - 0.5,
                      line=dict(color="#ffffff", width=2))
    height = int(np.clip(110 + 4 * len(labels), 320, 1000))
    return _style(_integer_epochs(fig), "KL per latent unit (test set) over training", height=height,
                  xaxis="epoch", yaxis="latent unit (layer-major)")


# ---- snapshots (posterior means of fixed test points during training) -------------------------

def _layer_pca(z: np.ndarray) -> Any:
    # Imported here so figures.py stays importable without the torch-side explorer modules; the PCA
    # itself lives in one place (explorer.encode.layer_pca).
    from .encode import layer_pca
    return layer_pca(np.asarray(z, dtype=np.float32), k=2)


def _project(z: np.ndarray, pca: Any, k: int = 2) -> np.ndarray:
    """z in a fixed PCA basis: (z - mean) @ components[:k].T, zero-padded to k columns."""
    comps = np.asarray(pca.components, dtype=float)[:k]
    coords = (np.asarray(z, dtype=float) - np.asarray(pca.mean, dtype=float)) @ comps.T
    return _columns(coords, k)


def snapshot_scatter(points_by_layer: Sequence[np.ndarray], labels: Sequence[Any] | np.ndarray,
                     epoch: int | None = None) -> go.Figure:
    """One snapshot epoch: each layer's raw posterior means (N, units_i), reduced here to 2-D PCA
    (explorer.encode.layer_pca, fitted on this epoch) and drawn in one figure, one subplot per layer."""
    pcas = [_layer_pca(z) for z in points_by_layer]
    fig = _layer_grid([p.coords for p in pcas], [_layer_title(p, i) for i, p in enumerate(pcas)], labels)
    when = f" at epoch {epoch}" if epoch is not None else ""
    return _style(fig, f"Posterior means of the snapshot points{when}", height=480, margin=GRID_MARGIN)


def _padded_range(values: list[np.ndarray]) -> list[float]:
    lo = min(float(np.nanmin(v)) for v in values)
    hi = max(float(np.nanmax(v)) for v in values)
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    return [lo - pad, hi + pad]


def snapshot_animation(snapshots: Mapping[int, Sequence[np.ndarray]], labels: Sequence[Any] | np.ndarray,
                       frame_ms: int = 400) -> go.Figure:
    """The snapshot points' posterior means over training, one subplot per layer, with play/pause and an
    epoch slider. Each layer's PCA basis is fitted on the LAST epoch and every epoch is projected into it,
    so the motion shows the layer forming, not the basis rotating; axis ranges are fixed to all epochs.
    Every epoch becomes a frame sent to the browser: for long runs snapshotted often, pass a subset.

    SVG go.Scatter (not Scattergl) on purpose: only SVG traces interpolate between frames, the
    snapshots are few (1000 points per layer), and the animation then uses no WebGL context.
    """
    epochs = sorted(int(e) for e in snapshots)
    if not epochs:
        return _style(_note(go.Figure(), "no snapshots yet"), "Latent layers forming during training", height=320)
    n_layers = len(snapshots[epochs[-1]])
    for e in epochs:
        if len(snapshots[e]) != n_layers:
            raise ValueError(f"snapshot of epoch {e} has {len(snapshots[e])} layers, the last one {n_layers}")
    pcas = [_layer_pca(z) for z in snapshots[epochs[-1]]]
    coords = {e: [_project(snapshots[e][i], pcas[i]) for i in range(n_layers)] for e in epochs}
    titles = [_layer_title(p, i) for i, p in enumerate(pcas)]
    fig = _layer_grid(coords[epochs[0]], titles, labels, trace_cls=go.Scatter, marker_size=4)
    # Each trace's (layer, points) stays fixed across frames; frames only move x and y.
    layer_of = [int(str(tr.meta)[1:]) - 1 for tr in fig.data]
    points_of = [np.asarray(tr.customdata, dtype=int) for tr in fig.data]
    fig.frames = [go.Frame(name=str(e), traces=list(range(len(fig.data))),
                           data=[go.Scatter(x=coords[e][layer][p, 0], y=coords[e][layer][p, 1])
                                 for layer, p in zip(layer_of, points_of)])
                  for e in epochs]
    for i in range(n_layers):
        fig.update_xaxes(range=_padded_range([coords[e][i][:, 0] for e in epochs]), autorange=False, row=1, col=i + 1)
        fig.update_yaxes(range=_padded_range([coords[e][i][:, 1] for e in epochs]), autorange=False, row=1, col=i + 1)
    play = dict(frame=dict(duration=frame_ms, redraw=False), transition=dict(duration=int(frame_ms * 0.7)),
                fromcurrent=True, mode="immediate")
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    fig.update_layout(
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=-0.5, xanchor="left", yanchor="top",
                          showactive=False, pad=dict(t=0, r=10),
                          buttons=[dict(label="▶ play", method="animate", args=[None, play]),
                                   dict(label="❚❚ pause", method="animate", args=[[None], pause])])],
        sliders=[dict(active=0, x=0.16, len=0.84, y=-0.4, xanchor="left", yanchor="top",
                      currentvalue=dict(prefix="epoch ", font=dict(size=13)), pad=dict(t=10),
                      steps=[dict(label=str(e), method="animate", args=[[str(e)], pause]) for e in epochs])])
    fig = _style(fig, f"Latent layers forming during training (fixed test points; PCA basis of epoch {epochs[-1]})",
                 height=620, margin=dict(l=55, r=20, t=70, b=230))  # below the plots: legend, slider, buttons
    return fig


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


def figure_frame(fig: go.Figure) -> pd.DataFrame:
    """Every figure built here as one tidy table (the CSV download): one row per plotted value with
    trace (legend name: class, run, component, layer), subplot (layer z1..zL for scatter plots),
    frame (animation epoch, else empty), x, y, z, customdata. customdata is the point index in
    scatter plots and the raw KL (nats) in kl_heatmap, whose z is log10 of it. An animation's
    rows are those of its frames (every epoch), not the initial state."""
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
