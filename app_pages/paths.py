"""Paths: interpolate between two test images layer by layer, and walk a direction between two classes' (or two
selections') mean codes, decoded live.

Interpolation: the straight line between the two images' posterior means in all layers at once (the image
then follows z1), or in one layer z_i (the layers below at p's mean given it, as a traversal), a strip
each, and a GIF of the chosen path. Directions: start + t (mean code of B - mean code of A) in one layer.
"""
from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from app_pages import common
from app_pages.computed import strips_of
from app_pages.glossary import notice
from explorer.class_names import class_name
from explorer.images import gif_bytes
from explorer.traverse import along_mean_difference, decode_layer, encode_full, summaries

SETS = "direction_sets"            # session_state: kept by the Layers page ("Keep as set A/B")
DECODED = "paths_decoded_sha1"     # session_state: digest of the last direction image (tests)


def other_class(points, row: int) -> int:
    """The first point of another class than `row`'s: a default pair that differs."""
    others = np.flatnonzero(points.labels != points.labels[row])
    return int(others[0]) if len(others) else min(row + 1, len(points.labels) - 1)


def interpolation(run, points) -> None:
    st.subheader("Interpolate between two test images")
    count = len(points.labels)
    c1, c2, c3 = st.columns([1, 1, 2])
    del count
    a = common.test_image_input("Test image A", points, "paths_a", container=c1)
    b = common.test_image_input("Test image B", points, "paths_b", container=c2, default_row=other_class(points, 0))
    steps = int(c3.slider("Steps", 3, 15, 9, key="paths_steps"))
    strips = strips_of(str(run.path), run.stamp, a, b, steps)
    ia, ib = int(points.index[a]), int(points.index[b])
    st.caption(f"A: test image {ia} (class {int(points.labels[a])}) · B: test image {ib} "
               f"(class {int(points.labels[b])}). Each row decodes the straight line between their posterior means: "
               "in all layers at once (its ends are the two reconstructions), or in z_i alone (the layers above stay "
               "at A's codes, the layers below follow p's mean, as a traversal), so a row shows what z_i alone "
               "can change.")
    common.show_images(points.images[[a, b]], points.image_shape, ncols=2, target=112,
                       caption=f"A: test image {ia} · B: test image {ib}")
    for name, strip in strips.items():
        common.show_images(strip, points.image_shape, ncols=steps, target=56, caption=f"{name}: A → B")
    notice("the rows of the layers that change the digit's identity are the layers that encode it; a row that "
           "stays the same image is a layer the model does not use.")
    g1, g2, _ = st.columns([1, 1, 2], vertical_alignment="bottom")
    which = g1.selectbox("GIF of", list(strips), key="paths_gif")
    g2.download_button("Path (GIF)", lambda: gif_bytes(strips[which], points.image_shape, scale=6),
                       file_name=f"{run.name}-{which.replace(' ', '-')}-{ia}-to-{ib}.gif", mime="image/gif",
                       key="paths_gif_download", on_click="ignore", icon=":material/download:")


def mean_codes(run, points, source: str, layer: int) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(mean of A, mean of B, description) in `layer`: two classes' mean codes, or the Layers page's two sets."""
    enc = common.encoding_of(str(run.path), run.stamp, len(points.labels))
    z = enc.means[layer]
    if source == "two classes":
        classes = [int(c) for c in np.unique(points.labels)]
        c1, c2 = st.columns(2)
        dataset = common.model_for(run).cfg.dataset
        ca = c1.selectbox("From class", classes, index=0, key="paths_class_a",
                          format_func=lambda c: class_name(dataset, c))
        cb = c2.selectbox("To class", classes, index=min(1, len(classes) - 1), key="paths_class_b",
                          format_func=lambda c: class_name(dataset, c))
        return (z[points.labels == ca].mean(axis=0), z[points.labels == cb].mean(axis=0),
                f"class {class_name(dataset, ca)}'s mean code → class {class_name(dataset, cb)}'s")
    sets = st.session_state.get(SETS, {})
    kept = {k: v for k, v in sets.items() if v.get("run") == str(run.path)}
    if set(kept) != {"A", "B"}:
        st.info("Select points with a box or lasso on the **Layers** page (this run) and keep them as set A and set B.")
        return None
    rows = {k: common.rows_of(points, v["index"]) for k, v in kept.items()}
    if not all(len(r) for r in rows.values()):
        st.info("The kept sets are not among this page's test points; select them again on the Layers page.")
        return None
    return (z[rows["A"]].mean(axis=0), z[rows["B"]].mean(axis=0),
            f"set A's mean code ({len(rows['A'])} points) → set B's ({len(rows['B'])})")


def directions(run, model, points) -> None:
    st.subheader("Walk a direction between two groups' mean codes")
    layers = model.n_layers
    c1, c2 = st.columns([1, 2])
    # Opens on the highest layer with active units: along a collapsed one |B - A| is ~0 and every image the same.
    active = common.active_units_of(run)
    layer = int(c1.selectbox("Layer", range(layers), index=common.highest_active_layer(active, layers),
                             key="paths_layer",
                             format_func=lambda i: common.layer_option(i, active, model.layer_specs()[i].summary_units)))
    common.collapsed_note(layer, active)
    source = c2.radio("Between", ["two classes", "two selections (Layers page)"], horizontal=True, key="paths_source")
    found = mean_codes(run, points, source, layer)
    if found is None:
        return
    mean_a, mean_b, what = found
    start_on = st.radio("Start from", ["A's mean code", "a test image"], horizontal=True, key="paths_start")
    if start_on == "a test image":
        idx = common.test_image_input("Test image", points, "paths_start_image")
        whole = encode_full(model, points.images[idx])  # a step moves the image's whole code: its detail stays
        start, whole, start_what = summaries(model, whole)[layer], whole[layer:], f"test image {int(points.index[idx])}"
        common.show_images(points.images[[idx]], points.image_shape, target=96, caption=f"the start: {start_what}")
    else:
        start, whole, start_what = mean_a, None, "A's mean code"
    distance = float(np.linalg.norm(mean_b - mean_a))
    st.caption(f"z{layer + 1}: start + t·(B − A), {what}; |B − A| = {distance:.2f}. Start: {start_what}; "
               "layers below at p's mean" + (", those above at the test image's codes"
                                           if whole is not None and layer + 1 < model.n_layers else "")
               + ". t = 1 from A's mean reaches B's mean.")
    ctx = hashlib.sha1(f"{run.path}|{run.stamp}|{layer}|{what}|{start_what}".encode()).hexdigest()[:8]

    @st.fragment
    def live() -> None:
        left, right = st.columns([3, 2])
        t = left.slider("t along the direction", -1.0, 2.0, 0.0, 0.05, key=f"paths_t_{ctx}")
        image = decode_layer(model, layer, along_mean_difference(start, mean_a, mean_b, t)[None], whole=whole)
        st.session_state[DECODED] = hashlib.sha1(image.tobytes()).hexdigest()
        with right:
            common.show_images(image, points.image_shape, target=160, caption=f"decoded at t = {t:.2f}")
        strip = decode_layer(model, layer, along_mean_difference(start, mean_a, mean_b, np.linspace(-0.5, 1.5, 9)),
                             whole=whole)
        with left:
            common.show_images(strip, points.image_shape, ncols=9, target=48, caption="t = -0.5 … 1.5 in 9 steps")

    live()


def main() -> None:
    st.header("Paths: interpolations and directions")
    run = common.pick_run("Run", "paths_run")
    if run is None:
        return
    try:
        model = common.model_for(run)
        points = common.points_of(str(run.path), run.stamp, common.encoded_points(run))
    except Exception as e:  # noqa: BLE001
        st.error(f"Cannot load {run.name}: {e}")
        return
    interpolation(run, points)
    directions(run, model, points)


main()
