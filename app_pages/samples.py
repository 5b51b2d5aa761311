"""Samples: prior samples at a temperature, reconstructions, and what each layer controls (hierarchy decomposition).

Each section is a fragment (a slider reruns its own section only) and every picture is computed once per
(run, choice) for all sessions: sampling is seeded, so a class moving the same temperature slider shares
one model pass per position instead of one per student.
"""
from __future__ import annotations

import streamlit as st

from app_pages import common
from app_pages.glossary import notice
from explorer.encode import image_shape
from explorer.traverse import temperature_ramp, temperatures_by_resolution
from app_pages.computed import N_RECON, decomposition_png, layer_maps_of, reconstructions_png, samples_png



PER_ROW = 8  # per-layer temperature sliders in a row: a 20-40-layer model gets several rows
SAME, RAMP, PER_RESOLUTION = "same in every layer", "a ramp from top to bottom", "one per resolution"


def layer_temperatures(model, temperature: float, per_layer: bool) -> tuple[float | tuple[float, ...], str]:
    """The temperatures the samples use, one value or one per layer (z1 first), and how the caption says it:
    one value, a ramp from z_L to z_1, one per spatial resolution, or (behind the toggle) a slider per layer."""
    specs = model.layer_specs()
    layers = len(specs)
    if per_layer:
        temps = []
        for start in range(0, layers, PER_ROW):
            cols = st.columns(min(PER_ROW, layers - start))
            temps += [float(cols[i - start].slider(f"z{i + 1}", 0.0, 2.0, float(temperature), 0.1,
                                                   key=f"samples_temperature_z{i + 1}"))
                      for i in range(start, min(layers, start + PER_ROW))]
        return tuple(temps), "per layer " + " · ".join(f"z{i + 1} {t:.1f}" for i, t in enumerate(temps))
    resolutions = [spec.resolution for spec in specs]
    modes = [SAME, RAMP] + ([PER_RESOLUTION] if len(set(resolutions)) > 1 else [])
    mode = st.radio("Across the layers", modes, horizontal=True, key="samples_temperature_mode",
                    help="the one temperature above in every layer; or a ramp from it at the top (z_L) to another at "
                         "the bottom (z_1); or one per spatial resolution of the layers")
    if mode == RAMP and layers > 1:
        bottom = st.slider("Temperature at z1 (the ramp's bottom; the one above is z_L's)", 0.0, 2.0, 1.0, 0.1,
                           key="samples_temperature_bottom")
        return (tuple(temperature_ramp(float(temperature), float(bottom), layers)),
                f"a ramp from {temperature:.1f} at z{layers} to {bottom:.1f} at z1")
    if mode == PER_RESOLUTION:
        distinct = sorted(set(resolutions), key=lambda r: -1 if r is None else r)
        cols = st.columns(len(distinct))
        chosen = {r: float(col.slider("vector layers" if r is None else f"{r}x{r} layers", 0.0, 2.0, float(temperature),
                                      0.1, key=f"samples_temperature_res{r}")) for r, col in zip(distinct, cols)}
        return (tuple(temperatures_by_resolution(resolutions, chosen)),
                "per resolution " + " · ".join(f"{'vector' if r is None else f'{r}x{r}'} {t:.1f}" for r, t in chosen.items()))
    return float(temperature), f"{temperature:.1f} in every layer"


@st.fragment
def samples(run, model, shape, other=None) -> None:
    st.subheader("Samples from the prior")
    per_layer = bool(st.session_state.get("samples_per_layer", False))  # the toggle below, as last set
    c1, c2, c3 = st.columns(3)
    temperature = c1.slider("Temperature", 0.0, 2.0, 1.0, 0.1, key="samples_temperature", disabled=per_layer,
                            help="one temperature per layer is on: its sliders below decide" if per_layer else
                            ("divides the prior's logits over the codes (softmax temperature); 0 = the likeliest "
                             "code at every position" if model.has_codebooks else
                             "scales every sampled layer's standard deviation; 0 = the mean path"))
    n = c2.select_slider("Samples", [16, 36, 64, 100], value=36, key="samples_n")
    seed = c3.number_input("Seed", 0, 1_000_000, 0, key="samples_seed")
    st.toggle("One temperature per layer", key="samples_per_layer",
              help="noise in one layer at a time: a layer at 0 takes p's mean, so its sliders show "
                   "what that layer's randomness adds to the samples")
    temps, label = layer_temperatures(model, float(temperature), per_layer)
    caption = f"{n} samples z_L → … → z_1 → E[x|z], temperature {label}"
    png = samples_png(str(run.path), run.stamp, int(n), temps, int(seed), shape)
    if other is None:
        common.show_png(png, caption=caption)
    else:
        left, right = st.columns(2)
        common.show_png(png, caption=f"{run.name}: {caption}", container=left)
        other_cfg = common.model_for(other).cfg
        if st.session_state.get("samples_temperature_mode") == RAMP and not per_layer and isinstance(temps, tuple):
            temps = tuple(temperature_ramp(temps[-1], temps[0], other_cfg.layers))  # the same ramp over its layers
        if isinstance(temps, tuple) and other_cfg.layers != len(temps):
            right.info(f"{other.name} has {other_cfg.layers} layers, not {len(temps)}: one temperature per layer cannot "
                       "be the same for both; turn it off to compare them.")
        else:
            common.show_png(samples_png(str(other.path), other.stamp, int(n), temps, int(seed), image_shape(other_cfg)),
                            caption=f"{other.name}: the same seed and temperature", container=right)
    notice("at temperature 0 every sample is the mean path; raising one layer's temperature alone shows what "
           "that layer's randomness decides.")
    st.download_button("Samples (PNG)", lambda: png, file_name=f"{run.name}-samples-seed{int(seed)}.png", mime="image/png",
                       key="samples_png", on_click="ignore", icon=":material/download:")


@st.fragment
def reconstructions(run, points) -> None:
    st.subheader("Reconstructions")
    start = st.number_input("From the shown point", 0, max(0, len(points.labels) - N_RECON), 0, step=N_RECON,
                            key="samples_recon_start",
                            help=f"the shown points are a class-balanced {len(points.labels):,} of the test set, "
                                 f"{N_RECON} at a time; the caption names them by their position in the test set")
    shown = points.index[int(start):int(start) + N_RECON]
    common.show_png(reconstructions_png(str(run.path), run.stamp, int(start)),
                    caption="top: test images " + ", ".join(str(int(i)) for i in shown) + " · bottom: reconstructions")


@st.fragment
def decomposition(run, model, points) -> None:
    st.subheader("Hierarchy decomposition: what the top layers decide")
    layers = model.n_layers
    c1, c2, c3 = st.columns(3)
    with c1:
        idx = common.test_image_input("Test image", points, "samples_decomp_index")
    keep = c2.slider("Keep the top k layers of its code", 0, layers, min(1, layers), key="samples_keep_top",
                     help="the image's posterior sample in z_L..z_{L-k+1}; every layer below resampled from p")
    temperature = float(c3.slider("Temperature of the redrawn layers", 0.0, 1.5, 1.0, 0.1,
                                  key="samples_decomp_temperature",
                                  help="scales the standard deviation of every layer drawn from p (0: its mean)"))
    common.show_png(decomposition_png(str(run.path), run.stamp, int(idx), int(keep), temperature),
                    caption=f"test image {int(points.index[idx])}, then 8 images that share its top {keep} layer(s); "
                            f"the rest at temperature {temperature:.1f}")
    with st.expander("Every k at once"):
        common.show_png(decomposition_png(str(run.path), run.stamp, int(idx), None, temperature),
                        caption=f"rows: keep the top {layers} … 0 layers (last row: plain prior samples), the rest "
                                f"at temperature {temperature:.1f}")


@st.fragment
def layer_maps_section(run, model, points) -> None:
    st.subheader("Where each layer spends its nats, and what it controls")
    idx = common.test_image_input("Test image", points, "samples_maps_index")
    common.show_images(points.images[[idx]], points.image_shape, target=96,
                       caption=f"test image {int(points.index[idx])}")
    if any(len(spec.shape) == 3 for spec in model.layer_specs()):
        common.chart(layer_maps_of(str(run.path), run.stamp, int(idx), "kl"), "samples_kl_maps",
                     f"{run.name}-kl-maps")
    else:
        st.caption("KL maps apply to layers that are spatial maps (NVAE, VDVAE); this model's layers are vectors.")
    common.chart(layer_maps_of(str(run.path), run.stamp, int(idx), "control"), "samples_control_maps",
                 f"{run.name}-control-maps")
    notice("a bright place in a layer's control map is what that layer decides there; the lowest layers usually "
           "decide strokes' edges, the upper ones the digit's shape.")


def main() -> None:
    st.header("Samples")
    run = common.pick_run("Run", "samples_run")
    if run is None:
        return
    model = common.model_for(run)
    points = common.test_points_or_error(run)
    if points is None:
        return
    samples(run, model, points.image_shape,
            common.second_run(run, "samples", "Beside a second run (the same seed and temperature)",
                              "two models' samples side by side, drawn with the same seed: what each hierarchy makes "
                              "of the same noise"))
    reconstructions(run, points)
    decomposition(run, model, points)
    layer_maps_section(run, model, points)


main()
