"""Layers: every latent layer's PCA of the test points in one figure; select a point to follow it through them."""
from __future__ import annotations

import numpy as np
import streamlit as st

from app_pages import common
from explorer.figures import explained_variance, layer_scatter, layer_scatter_grid
from explorer.traverse import reconstruct

POINT = "layers_point"
CHART = "layers_grid"


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


def main() -> None:
    st.header("Latent layers in PCA")
    run = common.pick_run("Run", "layers_run")
    if run is None:
        return
    c1, c2, c3 = st.columns([2, 2, 1])
    use = c1.radio("Codes", ["posterior means", "posterior samples"], horizontal=True, key="layers_codes",
                   help="means show the structure; samples add q's noise, which hides collapsed layers' emptiness less")
    n = c2.select_slider("Test points", [500, 1000, 2000, 5000], value=common.TEST_POINTS, key="layers_n")
    try:
        points = common.points_of(str(run.path), run.stamp, n)
        pcas = common.pcas_of(str(run.path), run.stamp, n, use == "posterior means")
    except Exception as e:  # noqa: BLE001  missing data, bad run: a message, not a traceback
        st.error(f"Cannot encode {run.name}: {e}")
        return
    count = len(points.labels)
    st.caption(f"{count} points · {points.source}")
    st.session_state[POINT] = min(int(st.session_state.get(POINT, 0)), count - 1)
    c3.number_input("Point", 0, count - 1, key=POINT, help="or click a point in the chart")

    fig = layer_scatter_grid(pcas, points.labels, highlight=st.session_state[POINT])
    left, right = st.columns([4, 1])
    with left:
        common.chart(fig, CHART, f"{run.name}-layers-pca", on_select=on_select, selection_mode=("points",))
    with right:
        selected_point(run, points)
    common.chart(explained_variance(pcas), "layers_explained", f"{run.name}-explained-variance")

    if st.toggle("3-D view of one layer", key="layers_3d"):
        layer = st.selectbox("Layer", range(len(pcas)), format_func=lambda i: f"z{i + 1}", key="layers_3d_layer")
        pca3 = common.pcas_of(str(run.path), run.stamp, n, use == "posterior means", 3)[layer]
        common.chart(layer_scatter(pca3, points.labels, layer, highlight=st.session_state[POINT], three_d=True),
                     "layers_scatter3d", f"{run.name}-z{layer + 1}-pca3d")


main()
