"""Traverse: walk one layer's code along its principal directions and decode it live.

The sliders and the decoded image live in a fragment: moving a slider reruns
only that fragment (one decode from the chosen layer down, shared by every session
that asks for the same image), not the page.
"""
from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from app_pages import common
from app_pages.glossary import notice
from app_pages.computed import STEPS, decoded_png, traversal_gif, traversal_png
from explorer.images import read_upload
from explorer.encode import prior_sd_along
from explorer.traverse import encode_full, prior_whole, summaries

MAX_DIRECTIONS = 6
MIN_EXPLAINED = 0.01  # directions with less of the layer's variance decode to the same image: no slider for them
DECODED = "traverse_decoded_sha1"   # session_state: digest of the last decoded image (for tests and debugging)
SEED = "traverse_start_seed"        # session_state: the prior sample's seed (a second run starts from its own)


def points_and_directions(run, model, layer: int):
    """The run's shown test points and the principal directions of `layer`'s posterior means (up to
    MAX_DIRECTIONS); None (after a message) when the run cannot be encoded."""
    try:
        n = common.encoded_points(run)
        points = common.points_of(str(run.path), run.stamp, n)
        k = min(MAX_DIRECTIONS, model.layer_specs()[layer].summary_units)
        return points, common.pcas_of(str(run.path), run.stamp, n, True, k)[layer]
    except Exception as e:  # noqa: BLE001  missing data, bad run: a message, not a traceback
        st.error(f"Cannot encode {run.name}: {e}")
        return None


def used_directions(pca) -> int:
    """How many directions get a slider: those with at least MIN_EXPLAINED of the variance (PCA sorts them)."""
    return max(1, int((pca.explained >= MIN_EXPLAINED).sum()))


def beside(other, layer: int, start_image, shape):
    """What a second run needs to follow the first one's moves: (run, layer, pca, start code, its digest,
    directions, image shape), from the same start (the same seed, or the same image), in the same layer or
    its top one; None (after a message) when the start cannot be shared."""
    model = common.model_for(other)
    layer_b = min(layer, model.n_layers - 1)
    found = points_and_directions(other, model, layer_b)
    if found is None:
        return None
    points, pca = found
    if start_image is not None and points.image_shape != shape:
        st.info(f"{other.name} works on {points.image_shape[0]}x{points.image_shape[1]} images: it cannot start from "
                "this one. Start from a prior sample to see both.")
        return None
    whole = prior_whole(model, int(st.session_state.get(SEED, 0))) if start_image is None else \
        encode_full(model, start_image)
    base = summaries(model, whole)[layer_b]
    n_dirs = used_directions(pca)
    return other, layer_b, pca, base, start_digest(whole, layer_b), n_dirs, points.image_shape, whole[layer_b:]


def start_digest(whole, layer: int) -> str:
    """The start's whole codes in the layer and those above (the decoded image depends on them), as one digest."""
    return hashlib.sha1(b"".join(np.ascontiguousarray(c.cpu().numpy()).tobytes() for c in whole[layer:])).hexdigest()


def start_codes(run, model, points):
    """Per-layer whole codes to start from (explorer.traverse.encode_full or prior_whole), a description and the
    start's image (None for a prior sample); None (after a message) if there is none."""
    c1, c2 = st.columns([2, 1])
    start = c1.radio("Start from", ["prior sample", "test image", "uploaded image"], horizontal=True,
                     key="traverse_start")
    if start == "prior sample":
        seed = int(c2.number_input("Seed", 0, 1_000_000, 0, key="traverse_seed"))
        st.session_state[SEED] = seed
        return prior_whole(model, seed), f"prior sample, seed {seed}", None
    if start == "test image":
        with c2:
            idx = common.test_image_input("Test image", points, "traverse_index")
        return (encode_full(model, points.images[idx]), f"test image {int(points.index[idx])} "
                f"(class {int(points.labels[idx])})", points.images[idx])
    upload = c2.file_uploader("Image (PNG or JPEG)", type=["png", "jpg", "jpeg"], key="traverse_upload")
    if upload is None:
        st.info("Upload a picture of a digit (any size; it is turned grey and resized to the run's images).")
        return None, "", None
    try:
        image = read_upload(upload.getvalue(), points.image_shape)
    except ValueError as e:  # UploadError: not an image, damaged, too large
        st.error(f"Cannot use {upload.name}: {e}")
        return None, "", None
    return encode_full(model, image), f"uploaded {upload.name}", image


def main() -> None:
    st.header("Traverse a latent layer")
    run = common.pick_run("Run", "traverse_run")
    if run is None:
        return
    model = common.model_for(run)
    layers = model.n_layers
    # Default: the highest layer with active units (a collapsed layer decodes to the same image everywhere).
    active = common.active_units_of(run)
    default = common.highest_active_layer(active, layers)
    layer = st.segmented_control("Layer", list(range(layers)), default=default, key="traverse_layer",
                                 format_func=lambda i: common.layer_option(i, active, model.layer_specs()[i].summary_units))
    layer = default if layer is None else int(layer)
    common.collapsed_note(layer, active)
    found = points_and_directions(run, model, layer)
    if found is None:
        return
    points, pca = found
    whole, what, start_image = start_codes(run, model, points)
    if whole is None:
        return
    codes = summaries(model, whole)
    other = common.second_run(run, "traverse", "Beside a second run (the same start, the same moves)",
                              "a second run's decoding beside the first: the same seed or image, the same layer "
                              "(or its top one), each slider moving the same principal component of its own layer")
    second = beside(other, layer, start_image, points.image_shape) if other is not None else None
    base = codes[layer]
    shape = points.image_shape
    n_dirs = used_directions(pca)
    # One step is one sd of the data along a direction; in prior sd (the Layers page's unit) that is:
    prior_sd = prior_sd_along(pca.components[:n_dirs],
                              common.encoding_of(str(run.path), run.stamp, len(points.labels)).prior_variances[layer])
    step_in_prior = [float(pca.sd[j] / prior_sd[j]) if prior_sd[j] > 0 else float("nan") for j in range(n_dirs)]
    hidden = pca.components.shape[0] - n_dirs
    st.caption(f"Start: {what}. Directions: the principal components of z{layer + 1}'s posterior means over "
               f"{len(points.labels)} test images; one step = one standard deviation of the data along it. "
               "Layers below are decoded at p's mean, those above keep the start's codes."
               + (f" {hidden} direction{'s' if hidden > 1 else ''} with under {MIN_EXPLAINED:.0%} of the variance "
                  "(unused by the data) not shown." if hidden else ""))
    # Slider keys carry the context, so a new run/layer/start begins at 0 again.
    ctx = hashlib.sha1(f"{run.path}|{run.stamp}|{layer}|{what}".encode()).hexdigest()[:8]
    digest = start_digest(whole, layer)  # the start, for the shared images
    moved = whole[layer:]  # the start's whole codes from this layer up: what a step moves from
    keys = [f"traverse_pc{j}_{ctx}" for j in range(n_dirs)]

    @st.fragment
    def live() -> None:
        left, right = st.columns([3, 2], vertical_alignment="top")
        with left:
            offsets = []
            for j, key in enumerate(keys):
                offsets.append(st.slider(f"PC{j + 1} of z{layer + 1} ({pca.explained[j]:.0%} of its variance; 1 sd = "
                                         f"{step_in_prior[j]:.2g} prior sd)", -3.0, 3.0, 0.0, 0.25, key=key,
                                         format="%.2f sd"))

            def reset() -> None:
                for key in keys:
                    st.session_state[key] = 0.0
            st.button("Back to the start", key=f"traverse_reset_{ctx}", on_click=reset, icon=":material/restart_alt:")
        png, st.session_state[DECODED] = decoded_png(str(run.path), run.stamp, layer, digest, tuple(offsets), pca,
                                                     base, shape, moved)
        with right:
            if start_image is not None:  # the start beside its decoding: what the traversal starts from
                common.show_images(start_image[None], shape, target=112, caption="the start")
            common.show_png(png, caption="decoded E[x|z]" if second is None else f"{run.name}: decoded E[x|z]")
            if second is not None:
                run_b, layer_b, pca_b, base_b, digest_b, n_b, shape_b, whole_b = second
                moves = (tuple(offsets) + (0.0,) * n_b)[:n_b]  # its own first PCs; the ones it lacks stay at 0
                png_b, _ = decoded_png(str(run_b.path), run_b.stamp, layer_b, digest_b, moves, pca_b, base_b, shape_b,
                                       whole_b)
                common.show_png(png_b, caption=f"{run_b.name}, z{layer_b + 1}: the same start and moves")

    sliders, grid_col = st.columns([3, 2], gap="large")
    with sliders:
        live()
    with grid_col:
        st.markdown("**Traversal grid**")
        notice("in the higher layers a step changes the digit's kind or style; in the lowest, stroke details.")
        grid = traversal_png(str(run.path), run.stamp, layer, n_dirs, digest, pca, base, shape, moved)
        common.show_png(grid, caption=f"rows: PC1..PC{n_dirs} of z{layer + 1}; columns: "
                                      + ", ".join(f"{v:+g}" for v in STEPS) + " sd of the data along it, from the start; "
                                      "one sd is " + ", ".join(f"{v:.2g}" for v in step_in_prior)
                                      + " prior sd on PC1" + (f"..PC{n_dirs}" if n_dirs > 1 else ""))
        d1, d2 = st.columns(2)
        name = f"{run.name}-z{layer + 1}-traversal"
        d1.download_button("Grid (PNG)", lambda: grid, file_name=f"{name}.png", mime="image/png", key="traverse_grid_png",
                           on_click="ignore", icon=":material/download:")
        d2.download_button("PC1 walk (GIF)", lambda: traversal_gif(str(run.path), run.stamp, layer, digest, pca, base,
                                                                   shape, moved),
                           file_name=f"{name}-pc1.gif", mime="image/gif", key="traverse_gif", on_click="ignore",
                           icon=":material/download:")


main()
