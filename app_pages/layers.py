"""Layers: every latent layer's PCA of the test points in one figure; select a point to follow it through them.

"Show images on hover" (issue #3) draws the same figure as a self-contained HTML frame
(explorer.hover) that shows each point's test image on hover: plotly's own hover labels
are text only and st.plotly_chart reports no hover events.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from app_pages import common
from explorer.figures import explained_variance, export_config, layer_scatter, layer_scatter_grid
from explorer.hover import MAX_HOVER_POINTS, first_points, hover_html
from explorer.images import image_data_uris
from explorer.traverse import reconstruct

POINT = "layers_point"
CHART = "layers_grid"
HOVER = "layers_hover"
HOVER_HEIGHT = 480  # px: the grid figure's own height, so the frame shows it without scrolling


def on_select() -> None:
    """A click/lasso on the chart picks the point (the first selected one) for the number input."""
    event = st.session_state.get(CHART)
    points = (event or {}).get("selection", {}).get("points", [])
    for p in points:
        data = p.get("customdata")
        data = data[0] if isinstance(data, (list, tuple)) else data
        if data is not None:
            st.session_state[POINT] = int(data)
            return


def selected_point(run, points) -> None:
    """The selected test image next to its reconstruction (posterior mean path)."""
    idx = st.session_state[POINT]
    image = points.images[idx]
    model = common.model_for(run)
    recon = reconstruct(model, image[None])[0]
    st.markdown(f"**Point {idx}** · class {int(points.labels[idx])}")
    common.show_images(np.stack([image, recon]), points.image_shape, ncols=2, target=96,
                       caption="test image · reconstruction")


@st.cache_resource(max_entries=4, show_spinner="Drawing the hover images…")
def hover_page_of(path: str, stamp: float, n: int, use_means: bool, m: int, highlight: int, name: str) -> str:
    """The hover-mode HTML of the first m points; cached as a resource (a multi-MB string, never copied)."""
    points = common.points_of(path, stamp, n)
    pcas = common.pcas_of(path, stamp, n, use_means)
    fig = layer_scatter_grid(first_points(pcas, m), points.labels[:m], highlight=highlight)
    # scale=1: the smallest PNGs; the page scales them up with crisp pixels.
    uris = image_data_uris(points.images[:m], points.image_shape, scale=1)
    return hover_html(fig, uris, HOVER_HEIGHT, config=export_config(f"{name}-layers-pca"))


def hover_chart(run, points, n: int, use_means: bool) -> None:
    """The grid figure in a frame that shows the hovered point's image (no click-to-select there)."""
    count = len(points.labels)
    m = min(count, MAX_HOVER_POINTS)
    try:
        html = hover_page_of(str(run.path), run.stamp, n, use_means, m, int(st.session_state[POINT]), run.name)
    except Exception as e:  # noqa: BLE001  the plain chart is one untick away: a message, not a traceback
        st.error(f"Cannot draw the hover images of {run.name}: {e}")
        return
    st.iframe(html, height=HOVER_HEIGHT, alt="PCA of every latent layer; hovering a point shows its test image")
    note = f"the first {m:,} of {count:,} points (hover mode is capped at {MAX_HOVER_POINTS:,} to keep the page light)" \
        if m < count else f"all {count:,} points"
    st.caption(f"Hover mode: {note}. Pick a point with the number input; clicking selects nothing here.")


NEIGHBOURS = 8


def neighbours(run, points, n: int) -> None:
    """The selected point's nearest neighbours in every layer (posterior means, Euclidean), a row each."""
    idx = int(st.session_state[POINT])
    indexes, agreement = common.neighbour_indexes_of(str(run.path), run.stamp, n, NEIGHBOURS)
    st.caption(f"Point {idx} (class {int(points.labels[idx])}), then its {NEIGHBOURS} nearest test points in each "
               "layer's posterior means. Label agreement: the share of all points' neighbours that share their "
               "class (chance is about 1/10); a collapsed layer groups nothing.")
    for i, ix in enumerate(indexes):
        near = ix.neighbours([idx], NEIGHBOURS)[0]
        row = np.concatenate([points.images[[idx]], points.images[near]])
        common.show_images(row, points.image_shape, ncols=NEIGHBOURS + 1, target=48,
                           caption=f"z{i + 1}: label agreement {agreement[i]:.0%}; classes "
                                   + " ".join(str(int(c)) for c in points.labels[near]))


def codes_downloads(run, points, n: int) -> None:
    """Every layer's posterior means and variances of the shown points, as .npz and CSV (made on click)."""
    from explorer.codes import codes_frame, codes_npz
    enc = common.encoding_of(str(run.path), run.stamp, n)
    what = f"the {len(points.labels)} points shown: {points.source}"
    d1, d2, _ = st.columns([1, 1, 3])
    d1.download_button("Codes (.npz)", lambda: codes_npz(enc, points.labels, run.name, what),
                       file_name=f"{run.name}-codes.npz", mime="application/octet-stream", key="layers_codes_npz",
                       on_click="ignore", icon=":material/download:",
                       help="posterior means and variances of every layer (mean path), labels, run and selection")
    d2.download_button("Codes (CSV)", lambda: codes_frame(enc, points.labels, run.name, what).to_csv(index=False).encode(),
                       file_name=f"{run.name}-codes.csv", mime="text/csv", key="layers_codes_csv",
                       on_click="ignore", icon=":material/download:",
                       help="one row per point, layer and unit: mean and variance")


def main() -> None:
    st.header("Latent layers in PCA")
    run = common.pick_run("Run", "layers_run")
    if run is None:
        return
    c1, c2, c3 = st.columns([2, 2, 1])
    use = c1.radio("Codes", ["posterior means", "posterior samples"], horizontal=True, key="layers_codes",
                   help="means show the structure; samples add q's noise, which hides collapsed layers' emptiness less")
    try:
        available = len(common.points_of(str(run.path), run.stamp, common.TEST_POINTS).labels)
        sizes = [v for v in (500, 1000, 2000) if v < available] + [available]  # never more than the test set has
        n = sizes[0] if len(sizes) == 1 else c2.select_slider("Test points", sizes, value=sizes[-1], key="layers_n")
        points = common.points_of(str(run.path), run.stamp, n)
        pcas = common.pcas_of(str(run.path), run.stamp, n, use == "posterior means")
    except Exception as e:  # noqa: BLE001  missing data, bad run: a message, not a traceback
        st.error(f"Cannot encode {run.name}: {e}")
        return
    count = len(points.labels)
    st.caption(f"{count} points · {points.source}" + (" · posterior means along the mean path (nothing sampled), "
               "the quantity the Curves page's snapshot replay shows" if use == "posterior means" else
               " · one posterior sample per point"))
    st.session_state[POINT] = min(int(st.session_state.get(POINT, 0)), count - 1)
    c3.number_input("Point", 0, count - 1, key=POINT, help="or click a point in the chart")

    hover = st.checkbox("Show images on hover", key=HOVER,
                        help=f"redraws the chart in a frame that shows each point's test image on hover "
                             f"(at most the first {MAX_HOVER_POINTS:,} points)")
    left, right = st.columns([4, 1])
    with left:
        if hover:
            hover_chart(run, points, n, use == "posterior means")
        else:
            fig = layer_scatter_grid(pcas, points.labels, highlight=st.session_state[POINT])
            common.chart(fig, CHART, f"{run.name}-layers-pca", on_select=on_select, selection_mode=("points",))
    with right:
        selected_point(run, points)
    common.chart(explained_variance(pcas), "layers_explained", f"{run.name}-explained-variance")
    if st.toggle("Nearest neighbours of the point in every layer", key="layers_neighbours"):
        neighbours(run, points, n)
    codes_downloads(run, points, n)

    if st.toggle("3-D view of one layer", key="layers_3d"):
        layer = st.selectbox("Layer", range(len(pcas)), format_func=lambda i: f"z{i + 1}", key="layers_3d_layer")
        pca3 = common.pcas_of(str(run.path), run.stamp, n, use == "posterior means", 3)[layer]
        common.chart(layer_scatter(pca3, points.labels, layer, highlight=st.session_state[POINT], three_d=True),
                     "layers_scatter3d", f"{run.name}-z{layer + 1}-pca3d")


main()
