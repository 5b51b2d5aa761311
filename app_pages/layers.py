"""Layers: every latent layer of the test points in one figure (PCA, UMAP or t-SNE); a box or lasso
selection is coloured in every layer and in a linked second run, the rest grey; a click follows one point.

"Show images on hover" (issue #3) draws the same figure as a self-contained HTML frame
(explorer.hover) that shows each point's test image on hover: plotly's own hover labels
are text only and st.plotly_chart reports no hover events.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from app_pages import common
from app_pages.computed import (HOVER_HEIGHT, NEIGHBOURS, base_grid_of, explained_variance_of, hover_page_of,
                                neighbour_rows_png, point_png)
from app_pages.glossary import notice
from app_pages.linked_selection import drawn_selection, link_charts, selection_from_chart, union_sent
from explorer.class_names import class_name
from explorer.depth import layer_groups
from explorer.figures import layer_scatter, projection_scatter3d, with_selection
from explorer.hover import MAX_HOVER_POINTS
from explorer.projections import METHODS

POINT = "layers_point"          # session_state: the followed point, by its position in the test set
CHART = "layers_grid"
CHART_LINKED = "layers_grid_linked"
HOVER = "layers_hover"
SELECTION = "layers_selection"  # session_state: test-set positions of the box/lasso selection (shared by runs)
LINKER = "layers_linker"          # the linked-selection component (app_pages/linked_selection.py)
DRAWN = "layers_drawn_selection"  # session_state: what the grids were last sent with (linked_selection)
SETS = "direction_sets"         # session_state: {"A"/"B": test-set positions} for the Paths page's directions
STRIP = 40          # selected images shown under the plots
LAYERS_PER_VIEW = 8  # a grid shows at most this many layers side by side; a deeper model shows them in groups
GROUP = "layers_group"  # session_state: the first layer of the group shown


def selection_callback(points, key: str):
    """A box or lasso selects points in every layer and run (a new one replaces the selection, with Shift it
    adds: frontend/linked_selection.js); a double-click on the chart (an empty selection) clears it."""
    def on_select() -> None:
        kind, rows = common.chart_selection(st.session_state.get(key))
        if kind == "click":  # plotly's click selection is off (selection_mode): clicks come through the linker
            return
        if union_sent(LINKER):  # a Shift drag: the linker's report is the whole selection
            return
        if kind == "clear":
            st.session_state.pop(SELECTION, None)
        else:
            st.session_state[SELECTION] = rows  # the charts' customdata: test-set positions
        selection_from_chart()  # the browser has recoloured the linked charts itself
    return on_select


def clear_selection() -> None:
    st.session_state.pop(SELECTION, None)


def pick_point(test_image: int) -> None:
    """A click on a point of either grid (reported by the linker, in every drag mode) follows it."""
    st.session_state[POINT] = int(test_image)


def selected_point(run, points, n: int, row: int) -> None:
    dataset = common.model_for(run).cfg.dataset
    st.markdown(f"**Test image {int(points.index[row])}** · class {class_name(dataset, points.labels[row])}")
    common.show_png(point_png(str(run.path), run.stamp, n, row), caption="the test image · its reconstruction")


def hover_chart(run, points, n: int, use_means: bool, row: int) -> None:
    """The grid figure in a frame that shows the hovered point's image (no click-to-select there)."""
    count = len(points.labels)
    m = min(count, MAX_HOVER_POINTS)
    try:
        html = hover_page_of(str(run.path), run.stamp, n, use_means, m, row, run.name)
    except Exception as e:  # noqa: BLE001  the plain chart is one untick away: a message, not a traceback
        st.error(f"Cannot draw the hover images of {run.name}: {e}")
        return
    st.iframe(html, height=HOVER_HEIGHT, alt="PCA of every latent layer; hovering a point shows its test image")
    note = f"the first {m:,} of {count:,} points (hover mode is capped at {MAX_HOVER_POINTS:,} to keep the page light)" \
        if m < count else f"all {count:,} points"
    st.caption(f"Hover mode: {note}. Pick a test image with the number input; clicking selects nothing here.")




def neighbours(run, points, n: int, idx: int) -> None:
    """The selected point's nearest neighbours in every layer (posterior means, Euclidean), a row each."""
    _, agreement, tables = common.neighbour_indexes_of(str(run.path), run.stamp, n, NEIGHBOURS)
    dataset = common.model_for(run).cfg.dataset
    st.caption(f"Test image {int(points.index[idx])} (class {class_name(dataset, points.labels[idx])}), then, after a gap, its "
               f"{NEIGHBOURS} nearest test points in each "
               "layer's posterior means. Label agreement: the share of all points' neighbours that share their "
               "class (chance is about 1/10); a collapsed layer groups nothing.")
    rows = neighbour_rows_png(str(run.path), run.stamp, n, idx)
    for i, (png, table) in enumerate(zip(rows, tables)):
        common.show_png(png, caption=f"z{i + 1}: label agreement {agreement[i]:.0%}; neighbours: test images "
                                     + ", ".join(f"{int(points.index[j])} ({class_name(dataset, points.labels[j])})"
                                                 for j in table[idx]))


def codes_downloads(run, points, n: int, rows: np.ndarray) -> None:
    """Every layer's posterior means and variances of the shown points (or of the selection), as .npz and
    CSV (made on click), the test-set positions, run and selection recorded."""
    from explorer.codes import codes_frame, codes_npz, subset
    enc = common.encoding_of(str(run.path), run.stamp, n)
    what = f"the {len(points.labels)} points shown: {points.source}"
    d1, d2, d3, _ = st.columns([1, 1, 2, 1])
    labels, index = points.labels, points.index
    if len(rows) and d3.checkbox(f"only the selection ({len(rows)} points)", value=True, key="layers_codes_sel"):
        enc, labels, index = subset(enc, rows), labels[rows], index[rows]
        what = f"a box/lasso selection of {len(rows)} of {what}"
    d1.download_button("Codes (.npz)", lambda: codes_npz(enc, labels, run.name, what, index),
                       file_name=f"{run.name}-codes.npz", mime="application/octet-stream", key="layers_codes_npz",
                       on_click="ignore", icon=":material/download:",
                       help="posterior means and variances of every layer (mean path), labels, run and selection")
    d2.download_button("Codes (CSV)", lambda: codes_frame(enc, labels, run.name, what, index).to_csv(index=False).encode(),
                       file_name=f"{run.name}-codes.csv", mime="text/csv", key="layers_codes_csv",
                       on_click="ignore", icon=":material/download:",
                       help="one row per point, layer and unit: mean and variance")


def selection_strip(run, points, rows: np.ndarray) -> None:
    """The selected images as one strip, the class mix, and buttons that keep it for the Paths page."""
    classes = np.bincount(points.labels[rows])
    dataset = common.model_for(run).cfg.dataset
    mix = ", ".join(f"{class_name(dataset, c)}: {k}" for c, k in enumerate(classes) if k)
    st.markdown(f"**Selection: {len(rows)} of {len(points.labels)} points** (grey elsewhere, in every layer"
                f" and in the linked run) · classes {mix}")
    shown = rows[:STRIP]
    common.show_images(points.images[shown], points.image_shape, ncols=20, target=40,
                       caption=f"the selected images{'' if len(rows) <= STRIP else f' (first {STRIP})'}")
    b1, b2, b3, _ = st.columns([1, 1, 1, 2])
    # A callback, before the page runs: the charts are then sent once, without the selection.
    b1.button("Clear the selection", key="layers_clear", icon=":material/deselect:",
              on_click=clear_selection)
    for col, name in ((b2, "A"), (b3, "B")):
        if col.button(f"Keep as set {name}", key=f"layers_set_{name}", icon=":material/bookmark_add:",
                      help="the Paths page walks the direction from set A's mean code to set B's"):
            st.session_state.setdefault(SETS, {})[name] = {"run": str(run.path), "index": points.index[rows].tolist()}
            st.toast(f"Set {name}: {len(rows)} points kept for the Paths page's directions")


def groups_of(model) -> list[tuple[int, int, str]]:
    """A deep model's layers in groups of at most LAYERS_PER_VIEW, one resolution to a group."""
    return layer_groups([spec.resolution for spec in model.layer_specs()], LAYERS_PER_VIEW)


def shown_layers(model) -> tuple[int, ...] | None:
    """The layers the grids show: all of them up to LAYERS_PER_VIEW, else the group picked (None: all)."""
    if model.n_layers <= LAYERS_PER_VIEW:
        return None
    groups = groups_of(model)
    picked = int(st.session_state.get(GROUP) or 0)
    first, last, _ = next((g for g in groups if g[0] <= picked < g[1]), groups[0])
    return tuple(range(first, last))


def group_picker(model, active: list[int] | None) -> None:
    """For a model deeper than LAYERS_PER_VIEW: which group of layers the grids show (by resolution, at most
    LAYERS_PER_VIEW to a group: z1–z4 · 16x16, z5–z12 · 8x8, ...)."""
    n_layers = model.n_layers
    if n_layers <= LAYERS_PER_VIEW:
        return
    groups = groups_of(model)
    names = {s: name for s, _, name in groups}
    ends = {s: e for s, e, _ in groups}

    def name(s: int) -> str:
        quiet = active is not None and len(active) == n_layers and not any(active[s:ends[s]])
        return names[s] + (" · collapsed" if quiet else "")
    st.segmented_control(f"Layers shown ({n_layers} in all, at most {LAYERS_PER_VIEW} at a time)", list(names),
                         default=0, format_func=name, key=GROUP, help="the grids show one group of layers side by "
                         "side, one resolution to a group; the selection and the followed point carry over between "
                         "groups")


def grid_figure(run, n: int, use_means: bool, method: str, selected, followed: int, revision: int = 0,
                title: str | None = None):
    """The one-figure grid of every layer (or the group shown) in the chosen projection, the selection
    coloured, the point marked (selected and followed: test-set positions, the grids' customdata)."""
    projs = common.projections(run, n, use_means, method) if method != "PCA" else None
    shown = shown_layers(common.model_for(run))
    base = base_grid_of(str(run.path), run.stamp, n, use_means, method, title, projs, shown)
    return with_selection(base, selected, revision, highlight=followed)


def linked_run(run, points, n: int, use_means: bool, method: str, selected, revision: int, row: int) -> None:
    """A second run's grid with the same selection (same test points, matched by test-set position)."""
    others = [r for r in common.ok_runs() if r.path != run.path]
    if not others:
        st.info("No other run to link with.")
        return
    default = common.default_other(run, others)
    paths = [str(r.path) for r in others]
    by_path = {str(r.path): r for r in others}
    choice = st.selectbox("Linked run", paths, index=paths.index(str(default.path)), key="layers_linked_run",
                          format_func=lambda p: by_path[p].label)
    other = by_path[choice]
    try:
        other_points = common.points_of(str(other.path), other.stamp, n)
    except Exception as e:  # noqa: BLE001
        st.error(f"Cannot encode {other.name}: {e}")
        return
    if not np.array_equal(other_points.index, points.index) or other_points.image_shape != points.image_shape:
        st.warning(f"{other.name} shows other test points ({other_points.source}): its plots cannot be linked.")
        return
    codes = "posterior means" if use_means else "one posterior sample per point"
    fig = grid_figure(other, n, use_means, method, selected, int(points.index[row]), revision,
                      title=f"{other.name}: {codes} of every latent layer ({method}), the same points")
    common.chart(fig, CHART_LINKED, f"{other.name}-layers-{method.lower()}",
                 on_select=selection_callback(points, CHART_LINKED), selection_mode=("box", "lasso"))


def main() -> None:
    st.header("Latent layers: PCA, UMAP, t-SNE")
    run = common.pick_run("Run", "layers_run")
    if run is None:
        return
    c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
    use = c1.radio("Codes", ["posterior means", "posterior samples"], horizontal=True, key="layers_codes",
                   help="means show the structure; samples add q's noise, which hides collapsed layers' emptiness less")
    method = c2.radio("Projection", list(METHODS), horizontal=True, key="layers_method",
                      help="PCA: instant, linear, axes in the codes' units. UMAP and t-SNE keep neighbourhoods and "
                           "lose distances and axes; computed on first use (seconds per layer), then shared by "
                           "every session")
    use_means = use == "posterior means"
    try:
        sizes = common.point_sizes(run)  # never more than the test set has
        # The default encodes within common.ENCODE_BUDGET_S on this server: all of them for the MLP pair, fewer
        # for a convolutional hierarchy; more are a slider move away (once encoded, shared by every session).
        n = sizes[0] if len(sizes) == 1 else c3.select_slider(
            "Test points", sizes, value=common.encoded_points(run), key="layers_n",
            help=f"the default is the most that encode within {common.ENCODE_BUDGET_S:g} s with this model here")
        points = common.points_of(str(run.path), run.stamp, n)
        pcas = common.pcas_of(str(run.path), run.stamp, n, use_means)
    except Exception as e:  # noqa: BLE001  missing data, bad run: a message, not a traceback
        st.error(f"Cannot encode {run.name}: {e}")
        return
    count = len(points.labels)
    st.caption(f"{count} points · {points.source}" + (" · posterior means along the mean path (nothing sampled), "
               "the quantity the Curves page's snapshot replay shows" if use_means else
               " · one posterior sample per point")
               + (". Axes: the principal components in units of the layer's prior standard deviation along them "
                  "(±1 = as wide as p(z_i|z_i+1) expects)" if method == "PCA" else f". {method} axes have no units: only "
                  "who is near whom means something") + ". A box or lasso selects points in every layer; a click "
               "picks one; a double-click clears." + (f" {pooled}." if (pooled := common.pooling_note_of(run)) else ""))
    row = common.test_image_input("Test image", points, POINT, container=c4,
                                  help="the followed point, by its position in the test set; or click a point")
    selected = common.rows_of(points, st.session_state.get(SELECTION))  # empty: nothing greyed
    drawn, revision = drawn_selection(st.session_state.get(SELECTION), DRAWN)  # the grids' colouring
    drawn = np.asarray(drawn or [], dtype=np.int64)  # test-set positions, as the grids' customdata

    group_picker(common.model_for(run), common.active_units_of(run))
    t1, t2 = st.columns(2)
    hover = t1.checkbox("Show images on hover", key=HOVER,
                        help=f"redraws the PCA chart in a frame that shows each point's test image on hover "
                             f"(at most the first {MAX_HOVER_POINTS:,} points; no selection there)")
    linked = t2.toggle("Link a second run (the same points, the same selection)", key="layers_link")
    left, right = st.columns([4, 1])
    with left:
        if hover:
            hover_chart(run, points, n, use_means, row)
        else:
            try:
                fig = grid_figure(run, n, use_means, method, drawn, int(points.index[row]), revision)
            except Exception as e:  # noqa: BLE001  e.g. a projection library missing: say so, keep the page
                st.error(f"Cannot compute the {method} of {run.name}: {e}")
                return
            common.chart(fig, CHART, f"{run.name}-layers-{method.lower()}",
                         on_select=selection_callback(points, CHART), selection_mode=("box", "lasso"))
    with right:
        selected_point(run, points, n, row)
    if linked:
        linked_run(run, points, n, use_means, method, drawn, revision, row)
    if not hover:
        link_charts([CHART, CHART_LINKED], key=LINKER, on_point=pick_point, on_clear=clear_selection,
                    on_union=lambda chosen: st.session_state.__setitem__(SELECTION, sorted(chosen)))
    if not hover:
        notice("where the classes separate, the layer encodes the digit's identity; a layer that is one blob "
               "(or 'no active units') tells nothing; box a cluster in z1 and see where its points land higher up.")
    if len(selected):
        selection_strip(run, points, selected)
    if method == "PCA":
        common.chart(explained_variance_of(str(run.path), run.stamp, n, use_means), "layers_explained",
                     f"{run.name}-explained-variance")
    if st.toggle("Nearest neighbours of the point in every layer", key="layers_neighbours"):
        neighbours(run, points, n, row)
    codes_downloads(run, points, n, selected)

    if st.toggle("3-D view of one layer", key="layers_3d"):
        final = common.active_units_of(run)
        layer = st.selectbox("Layer", range(len(pcas)), index=common.highest_active_layer(final, len(pcas)),
                             format_func=lambda i: common.layer_option(i, final), key="layers_3d_layer")
        active, _ = common.layer_stats_of(str(run.path), run.stamp, n, use_means)
        if method == "PCA":
            pca3 = common.pcas_of(str(run.path), run.stamp, n, use_means, 3)[layer]
            fig3 = layer_scatter(pca3, points.labels, layer, highlight=row, three_d=True,
                                 selected=points.index[selected], active=active[layer], ids=points.index)
        else:
            with st.spinner(f"{method} of z{layer + 1} in 3-D (once, then shared)…"):
                proj = common.projection_of(str(run.path), run.stamp, n, use_means, method, layer, 3)
            fig3 = projection_scatter3d(proj, points.labels, layer, row, points.index[selected], active[layer],
                                        ids=points.index)
        common.chart(fig3, "layers_scatter3d", f"{run.name}-z{layer + 1}-{method.lower()}3d")


main()
