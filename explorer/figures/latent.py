"""Latent-space figures: every layer's PCA scatter (2-D/3-D, one figure per layer or all layers), explained
variance, per-layer bars, and the training snapshots replayed (slider frames and animation)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .frozen import from_spec
from .table import with_numbers
from .style import (CLASS_PALETTE, GRID_MARGIN, HIGHLIGHT_SIZE, MAX_CLASS_TRACES, _note, _plain, _style, class_colours,
                    layer_name, run_colours)


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


def _activity_note(active: int | None) -> str:
    """A layer with no active units says so in its title, "collapsed", as every layer picker does: its plot shows
    the prior's noise or one point."""
    return "" if active is None else (" · collapsed (0 active)" if active == 0 else f" · {active} active")


def _layer_title(pca: Any, layer: int, k: int = 2, active: int | None = None) -> str:
    """Short enough for five subplots side by side on a 1280-pixel projector: "z1 (16 units)", "PC1–2 70%"
    (explained variance) and the layer's active units when known ("collapsed (0 active)"), a line each."""
    head = f"{layer_name(layer)} ({_units(pca)} units)<br>PC1–{k} {_explained(pca, k).sum():.0%}"
    return head + ("" if active is None else "<br>" + _activity_note(active).removeprefix(" · "))


def _in_prior_sd(pca: Any, prior_sd: Sequence[float] | None, k: int = 2) -> tuple[np.ndarray, list[str]]:
    """The PCA coordinates in units of the prior's standard deviation along each component, and axis titles
    that say so ("PC1 (prior sd)"), so the ticks read as multiples of what p(z_i|z_i+1) expects; an axis the
    prior's sd is unknown or nil for stays in the codes' units and its title says only "PC1" (issue 27: an
    axis says prior sd only where it is in prior sd)."""
    coords = _columns(np.asarray(pca.coords, dtype=float), k).copy()
    titles = []
    for j in range(k):
        p = float(prior_sd[j]) if prior_sd is not None and j < len(prior_sd) else 0.0
        if p > 0 and np.isfinite(p):
            coords[:, j] /= p
            titles.append(f"PC{j + 1} (prior sd)")
        else:
            titles.append(f"PC{j + 1}")
    return coords, titles


UNSELECTED = "#c9c9c9"
UNSELECTED_STYLE = {"marker": {"color": UNSELECTED, "opacity": 0.35}}  # points outside a linked selection


def _point_traces(coords: np.ndarray, labels: np.ndarray, layer: int, trace_cls: type, showlegend: bool,
                  colours: dict[Any, str], marker_size: float,
                  axis_names: Sequence[str] = ("PC1", "PC2", "PC3"), ids: np.ndarray | None = None) -> list:
    """The points of one layer: one trace per class (legendgroup = class, so a legend click hides
    that class in every layer), or one label-coloured trace when there are too many classes.
    customdata names each point: `ids` (its position in the test set, the one number the pages, hovers and
    files use) when given, else its row in the arrays passed; selections and clicks report it."""
    three_d = trace_cls is go.Scatter3d
    a = list(axis_names)
    hover = f"{a[0]} %{{x:.2f}}, {a[1]} %{{y:.2f}}" + (f", {a[2]} %{{z:.2f}}" if three_d and len(a) > 2 else "")
    tag = layer_name(layer)
    index = np.arange(labels.shape[0])
    names = index if ids is None else np.asarray(ids, dtype=np.int64)  # numbers, sent as one typed array
    if len(colours) > MAX_CLASS_TRACES:
        xyz = dict(x=coords[:, 0], y=coords[:, 1], **({"z": coords[:, 2]} if three_d else {}))
        codes = np.unique(labels, return_inverse=True)[1]
        return [trace_cls(**xyz, mode="markers", name="points", legendgroup="points", showlegend=showlegend,
                          meta=tag, customdata=names, text=[str(_plain(c)) for c in labels],
                          marker=dict(size=marker_size, color=codes, colorscale="Turbo", opacity=0.75),
                          hovertemplate=f"class %{{text}} · test image %{{customdata}}<br>{hover}<extra>{tag}</extra>")]
    traces = []
    for c, colour in colours.items():
        idx = index[labels == c]
        xyz = dict(x=coords[idx, 0], y=coords[idx, 1], **({"z": coords[idx, 2]} if three_d else {}))
        traces.append(trace_cls(
            **xyz, mode="markers", name=str(c), legendgroup=f"class {c}", showlegend=showlegend, meta=tag,
            customdata=names[idx], marker=dict(size=marker_size, color=colour, opacity=0.75),
            hovertemplate=f"class {c} · test image %{{customdata}}<br>{hover}<extra>{tag}</extra>"))
    return traces


def _highlight_trace(coords: np.ndarray, labels: np.ndarray, point: int, layer: int, trace_cls: type,
                     showlegend: bool, colours: dict[Any, str], ids: np.ndarray | None = None) -> Any:
    three_d = trace_cls is go.Scatter3d
    xyz = dict(x=coords[[point], 0], y=coords[[point], 1], **({"z": coords[[point], 2]} if three_d else {}))
    c = _plain(labels[point])
    name = point if ids is None else int(ids[point])
    return trace_cls(**_highlight_spec(xyz, c, name, layer, three_d, showlegend, colours.get(c, "#000000")))


def _highlight_spec(xyz: dict, label: Any, point: int, layer: int, three_d: bool, showlegend: bool,
                    colour: str) -> dict:
    """The "selected point" marker's properties (plotly's names), for a trace object or a figure's dict;
    `point` is its customdata (its test-set position, or its row)."""
    return dict(**xyz, mode="markers", name="selected point", legendgroup="selected", showlegend=showlegend,
                meta=layer_name(layer), customdata=[point],
                marker=dict(size=HIGHLIGHT_SIZE if not three_d else 9, color=colour, symbol="circle",
                            line=dict(color="#000000", width=3)),
                hovertemplate=f"selected: class {label} · test image %{{customdata}}<extra>{layer_name(layer)}</extra>")


def _points_table(coords: Sequence[np.ndarray], labels: np.ndarray, layers: Sequence[int], k: int = 2,
                  epoch: int | None = None, ids: np.ndarray | None = None) -> pd.DataFrame:
    """Long table of the plotted points: (epoch,) layer, point (its test-set position when `ids` are given,
    as in the codes' files), class, pc1..pck."""
    parts = []
    for xy, layer in zip(coords, layers):
        xy = _columns(xy, k)
        part = {"layer": layer_name(layer), "point": np.arange(xy.shape[0]) if ids is None else np.asarray(ids),
                "class": labels,
                **{f"pc{j + 1}": xy[:, j] for j in range(k)}}
        parts.append(pd.DataFrame(({"epoch": epoch} if epoch is not None else {}) | part))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["layer", "point", "class"])


def _valid_point(highlight: int | None, n: int) -> int | None:
    """A stale selection (index out of range after the point set changed) is dropped, not an error."""
    if highlight is None:
        return None
    h = int(highlight)
    return h if 0 <= h < n else None


def with_selection(fig: go.Figure, selected: Sequence[int] | np.ndarray | None, revision: int = 0,
                   highlight: int | None = None) -> go.Figure:
    """A copy of a points figure (the layer grids, the 3-D scatter) with the points whose customdata is in
    `selected` (their test-set positions, or rows for a figure built without ids) in colour in every subplot
    and the rest grey (a linked selection), and the point whose customdata is `highlight` marked in every subplot;
    the figure itself is left alone, so one cached figure serves every selection and followed point.

    2-D traces get plotly's own `selectedpoints` (their positions within the trace) and an `unselected`
    grey, which plotly.js draws without new traces; Scatter3d has no selection, so its points get one
    colour each. The copy is made from the figure's dict, taken once and kept on the figure (figures passed
    here are cached ones, never changed after they were built), and skips plotly's validation: ~5 ms for a
    5-layer grid of 1,000 points, where fig.to_dict() alone deep-copies for ~9 ms and building the grid
    again costs ~0.1 s. revision > 0 goes into layout.datarevision: a figure otherwise equal to the last
    one sent then still replaces what the browser recoloured by itself. Nothing to add: the figure as it is.
    """
    rows = np.asarray([] if selected is None else selected, dtype=np.int64).ravel()
    if not rows.size and not revision and highlight is None:
        return fig
    spec, arrays = _as_dict(fig)
    chosen = set(rows.tolist())
    data = []
    for t, (cells, _) in zip(spec["data"], arrays):
        t = dict(t)  # changed at the top level only (and a fresh marker where its colours change)
        if rows.size and cells is not None and t.get("name") != "selected point":
            if t.get("type") == "scatter3d":
                colour = t.get("marker", {}).get("color")
                if isinstance(colour, str):  # a class trace; the one label-coloured trace keeps its colour scale
                    t["marker"] = dict(t["marker"], color=[colour if p in chosen else UNSELECTED for p in cells])
            else:
                t["selectedpoints"] = [i for i, p in enumerate(cells) if p in chosen]
                t["unselected"] = UNSELECTED_STYLE
        data.append(t)
    if highlight is not None:
        data += _highlight_overlay(spec["data"], arrays, int(highlight))
    layout = dict(spec["layout"], **({"datarevision": revision} if revision else {}))
    # Sent once, never changed: frozen, so the chart serializes this dict (its traces are built only if read).
    out = from_spec({"data": data, "layout": layout})
    numbers = getattr(fig, "_numbers", None)
    return with_numbers(out, numbers) if numbers is not None else out


def _as_dict(fig: go.Figure) -> tuple[dict, list[tuple[list | None, np.ndarray | None]]]:
    """The figure's dict and, per trace, its customdata rows and point coordinates (columns x, y(, z)),
    taken once and kept on the figure (the dict holds its arrays base64-encoded)."""
    cached = getattr(fig, "_as_dict", None)
    if cached is None:
        arrays = []
        for t in fig.data:
            if t.customdata is None:
                arrays.append((None, None))
                continue
            axes = [t.x, t.y] + ([t.z] if t.type == "scatter3d" else [])
            arrays.append((np.asarray(t.customdata).ravel().tolist(), np.column_stack([np.asarray(a) for a in axes])))
        cached = fig._as_dict = (fig.to_dict(), arrays)
    return cached


def _highlight_overlay(traces: Sequence[dict], arrays: Sequence[tuple], point: int) -> list[dict]:
    """The "selected point" marker of row `point` in every subplot of a points figure, from its traces."""
    out, done = [], set()
    for t, (cells, coords) in zip(traces, arrays):
        if cells is None or t.get("name") == "selected point":
            continue
        axes = (t.get("xaxis", "x"), t.get("yaxis", "y"))
        if axes in done or point not in cells:
            continue
        done.add(axes)
        j, kind = cells.index(point), t.get("type", "scatter")
        colour = t.get("marker", {}).get("color")
        colour = colour if isinstance(colour, str) else "#000000"
        label = t.get("name") if t.get("name") != "points" else list(t.get("text") or ["?"] * (j + 1))[j]
        meta = str(t.get("meta", "z1"))
        layer = int(meta[1:]) - 1 if meta[:1] == "z" and meta[1:].isdigit() else 0
        # A dict, not a validated plotly trace: building one per subplot was most of a followed point's rerun.
        xyz = dict(zip("xyz", ([float(v)] for v in coords[j])))
        marker = {"type": kind, **_highlight_spec(xyz, _plain(label), point, layer, kind == "scatter3d",
                                                  len(done) == 1, colour)}
        if kind != "scatter3d":
            marker["xaxis"], marker["yaxis"] = axes
        out.append(marker)
    return out


def _layer_grid(coords: Sequence[np.ndarray], titles: Sequence[str], labels: Sequence[Any] | np.ndarray,
                highlight: int | None = None, trace_cls: type = go.Scattergl, marker_size: float = 4,
                layers: Sequence[int] | None = None,
                axis_titles: Sequence[Sequence[str]] | None = None, ids: np.ndarray | None = None) -> go.Figure:
    """One row of 2-D subplots, one per layer, in ONE figure: Scattergl traces of all subplots share
    a single WebGL context (browsers allow ~16 per page, one figure per layer would exhaust them).
    axis_titles: per layer (x title, y title), default PC1 and PC2; ids: the points' test-set positions
    (hovers and the CSV name points by them), default their rows."""
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
    traces = []
    for col, (xy, layer) in enumerate(zip(coords, layers), start=1):
        xy = _columns(xy, 2)
        if xy.shape[0] != n:
            raise ValueError(f"layer {layer_name(layer)} has {xy.shape[0]} points, the first layer {n}")
        x_title, y_title = axis_titles[col - 1] if axis_titles else ("PC1", "PC2")
        names = [t.split(" · ")[0] for t in (x_title, y_title)]
        ref = "" if col == 1 else str(col)  # make_subplots' axes of column col: x/y, x2/y2, ...
        for tr in _point_traces(xy, lab, layer, trace_cls, col == 1, colours, marker_size, names, ids):
            # grey outside a selection, as with_selection draws it, also where plotly.js itself or the
            # browser-side linker (app_pages/linked_selection.py) draws one
            traces.append(tr.update(xaxis=f"x{ref}", yaxis=f"y{ref}", unselected=UNSELECTED_STYLE))
        if point is not None:
            traces.append(_highlight_trace(xy, lab, point, layer, trace_cls, col == 1, colours, ids)
                          .update(xaxis=f"x{ref}", yaxis=f"y{ref}"))
    fig.add_traces(traces)  # once: one add_trace per trace re-validates the figure every time (2x slower)
    for col in range(1, len(coords) + 1):
        x_title, y_title = axis_titles[col - 1] if axis_titles else ("PC1", "PC2")
        fig.update_xaxes(title_text=x_title, row=1, col=col)
        fig.update_yaxes(title_text=y_title, row=1, col=col, title_standoff=2)
    fig.update_annotations(font_size=12)
    # A horizontal legend under the plots: a side legend would take a sixth of the width from the layers.
    fig.update_layout(legend=dict(title=dict(text="class "), itemsizing="constant", orientation="h",
                                  x=0, xanchor="left", y=-0.2, yanchor="top"), hovermode="closest")
    return with_numbers(fig, _points_table(coords, lab, layers, ids=ids))


def layer_scatter(pca: Any, labels: Sequence[Any] | np.ndarray, layer: int, highlight: int | None = None,
                  three_d: bool = False, hover_images: list[str] | None = None,
                  selected: Sequence[int] | np.ndarray | None = None, active: int | None = None,
                  ids: np.ndarray | None = None) -> go.Figure:
    """One layer's posterior means in PCA coordinates, coloured by class (ids: as in _layer_grid).

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
        fig = _layer_grid([coords], [_layer_title(pca, layer, active=active)], labels, highlight, layers=[layer],
                          ids=ids)
        return with_selection(_style(fig, f"Latent layer {layer_name(layer)}: posterior means, first two principal "
                                          "components", height=540, margin=GRID_MARGIN), selected)
    ev = _explained(pca, 3)
    return _scatter3d(coords, labels, layer, [f"PC{j + 1} ({ev[j]:.0%})" for j in range(3)],
                      f"Latent layer {_layer_title(pca, layer, 3, active).replace('<br>', ' · ')}", highlight,
                      selected, ids)


def projection_scatter3d(projection: Any, labels: Sequence[Any] | np.ndarray, layer: int,
                         highlight: int | None = None, selected: Sequence[int] | np.ndarray | None = None,
                         active: int | None = None, ids: np.ndarray | None = None) -> go.Figure:
    """One layer's 3-D map (explorer.projections.Projection with k = 3: PCA, UMAP or t-SNE)."""
    axes = list(projection.axes) + [""] * (3 - len(projection.axes))
    return _scatter3d(projection.coords, labels, layer, axes[:3],
                      f"Latent layer {layer_name(layer)} · {projection.method} in 3-D" + _activity_note(active),
                      highlight, selected, ids)


def _scatter3d(coords: np.ndarray, labels: Sequence[Any] | np.ndarray, layer: int, axes: Sequence[str], title: str,
               highlight: int | None, selected: Sequence[int] | np.ndarray | None,
               ids: np.ndarray | None = None) -> go.Figure:
    xyz = _columns(coords, 3)
    lab = _labels(labels, xyz.shape[0])
    colours = class_colours(lab)
    names = [a.split(" (")[0] for a in axes]
    fig = go.Figure(_point_traces(xyz, lab, layer, go.Scatter3d, True, colours, 2.5, names, ids))
    point = _valid_point(highlight, xyz.shape[0])
    if point is not None:
        fig.add_trace(_highlight_trace(xyz, lab, point, layer, go.Scatter3d, True, colours, ids))
    fig.update_layout(scene=dict(xaxis_title=axes[0], yaxis_title=axes[1], zaxis_title=axes[2]),
                      legend=dict(title=dict(text="class"), itemsizing="constant"))
    with_numbers(fig, _points_table([xyz], lab, [layer], k=3, ids=ids))
    return with_selection(_style(fig, title, height=600), selected)


def layer_scatter_grid(pcas: Sequence[Any], labels: Sequence[Any] | np.ndarray, highlight: int | None = None,
                       selected: Sequence[int] | np.ndarray | None = None, active: Sequence[int] | None = None,
                       prior_sd: Sequence[Sequence[float]] | None = None, title: str | None = None,
                       ids: np.ndarray | None = None, layers: Sequence[int] | None = None) -> go.Figure:
    """All layers side by side in ONE figure (one WebGL context), one column per layer.
    active: units per layer (titles say "no active units" for 0); prior_sd: per layer the prior's
    standard deviation along PC1, PC2 (explorer.encode.prior_sd_along): the axes are then in prior sd.
    layers: the layers shown (0-based, default all): a model of 20-40 layers shows a group at a time."""
    shown = list(range(len(pcas))) if layers is None else list(layers)
    titles = [_layer_title(pcas[i], i, active=None if active is None else active[i]) for i in shown]
    scaled = [_in_prior_sd(pcas[i], None if prior_sd is None else prior_sd[i]) for i in shown]
    fig = _layer_grid([c for c, _ in scaled], titles, labels, highlight, layers=shown, axis_titles=[a for _, a in scaled],
                      ids=ids)
    return with_selection(_style(fig, title or "Posterior means of every latent layer (PCA, PC1 vs PC2)", height=480,
                                 margin=GRID_MARGIN), selected)


def projection_grid(projections: Sequence[Any], labels: Sequence[Any] | np.ndarray, highlight: int | None = None,
                    selected: Sequence[int] | np.ndarray | None = None, active: Sequence[int] | None = None,
                    title: str | None = None, ids: np.ndarray | None = None,
                    layers: Sequence[int] | None = None) -> go.Figure:
    """Every layer's non-linear map (explorer.projections.Projection: UMAP or t-SNE) side by side, as the
    PCA grid: the axes have no units, only neighbourhoods mean something. layers: the layers shown."""
    shown = list(range(len(projections))) if layers is None else list(layers)
    titles = [f"{layer_name(i)} · {projections[i].method}" + ("" if active is None else "<br>" + _activity_note(active[i])
                                                                .removeprefix(" · ")) for i in shown]
    axes = [tuple(projections[i].axes[:2]) for i in shown]
    fig = _layer_grid([projections[i].coords for i in shown], titles, labels, highlight, layers=shown,
                      axis_titles=axes, ids=ids)
    method = projections[0].method if projections else "projection"
    return with_selection(_style(fig, title or f"Posterior means of every latent layer ({method})", height=480,
                                 margin=GRID_MARGIN), selected)


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
    with_numbers(fig, pd.DataFrame([{"layer": layer_name(i), "component": f"PC{j + 1}",
                                     "explained_percent": 100 * _explained(p, k)[j]}
                                    for i, p in enumerate(pcas) for j in range(k)],
                                   columns=["layer", "component", "explained_percent"]))
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
    with_numbers(fig, pd.DataFrame([{"run": name, "layer": layer_name(i), yaxis: float(v)}
                                    for name, vals in values.items() for i, v in enumerate(vals)],
                                   columns=["run", "layer", yaxis]))
    fig.update_xaxes(categoryorder="array", categoryarray=[layer_name(i) for i in range(n_layers)])
    return _style(fig, title, height=380, xaxis="latent layer (z1 = closest to the data)", yaxis=yaxis,
                  barmode="group", legend=dict(title=dict(text="run")))


# ---- snapshots (posterior means of fixed test points during training) -------------------------

def _layer_pca(z: np.ndarray) -> Any:
    # Imported here so the figures stay importable without the torch-side explorer modules; the PCA
    # itself lives in one place (explorer.encode.layer_pca).
    from ..encode import layer_pca
    return layer_pca(np.asarray(z, dtype=np.float32), k=2)


def _project(z: np.ndarray, pca: Any, k: int = 2) -> np.ndarray:
    """z in a fixed PCA basis: (z - mean) @ components[:k].T, zero-padded to k columns."""
    comps = np.asarray(pca.components, dtype=float)[:k]
    coords = (np.asarray(z, dtype=float) - np.asarray(pca.mean, dtype=float)) @ comps.T
    return _columns(coords, k)


def snapshot_scatter(points_by_layer: Sequence[np.ndarray], labels: Sequence[Any] | np.ndarray,
                     epoch: int | None = None, reference: Sequence[np.ndarray] | None = None) -> go.Figure:
    """One snapshot epoch: each layer's raw posterior means (N, units_i), reduced here to 2-D PCA
    (explorer.encode.layer_pca, fitted on this epoch) and drawn in one figure, one subplot per layer.
    With `reference` (another epoch's means of the same points, e.g. the last), each layer's PCA
    coordinates are rotated onto the reference's by Procrustes, so axes do not flip between epochs."""
    from ..align import procrustes_align
    pcas = [_layer_pca(z) for z in points_by_layer]
    coords = [p.coords for p in pcas]
    if reference is not None:
        coords = [procrustes_align(c, _layer_pca(r).coords) for c, r in zip(coords, reference)]
    from ..encode import active_counts
    active = active_counts(list(points_by_layer))
    fig = _layer_grid(coords, [_layer_title(p, i, active=active[i]) for i, p in enumerate(pcas)], labels)
    with_numbers(fig, _points_table(coords, _labels(labels, len(coords[0]) if coords else 0), range(len(pcas)),
                                    epoch=epoch))
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
    from ..encode import active_counts
    active = active_counts(list(snapshots[epochs[-1]]))  # at the last epoch, whose basis every frame uses
    titles = [_layer_title(p, i, active=active[i]) for i, p in enumerate(pcas)]
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
    with_numbers(fig, pd.concat([_points_table(coords[e], _labels(labels, coords[e][0].shape[0]), range(n_layers),
                                               epoch=e) for e in epochs], ignore_index=True))
    fig = _style(fig, f"Latent layers forming during training (fixed test points; PCA basis of epoch {epochs[-1]})",
                 height=620, margin=dict(l=55, r=20, t=70, b=230))  # below the plots: legend, slider, buttons
    return fig


