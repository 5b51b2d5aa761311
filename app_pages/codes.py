"""Codes: the discrete layers of a model with codebooks (a VQ-VAE). An image's codes as a grid per layer, a cell's
code swapped for another (or for one the prior expects there) and the image decoded again: the discrete Traverse;
the lower layer resampled under the kept top layer; the codebook's use by class.

Each picture is computed once per (run, image, choice) for all sessions (app_pages/computed.py).
"""
from __future__ import annotations

import streamlit as st

from app_pages import common
from app_pages.computed import code_map_of, codebook_figure_of, decomposition_png, swapped_png
from explorer.figures import code_grid
from explorer.projections import METHODS
from training.models import has_codebooks

CELL = "codes_cell"  # session_state: (row, column) of the chosen cell, per (run, layer, image)


def codebook_runs() -> list:
    return [r for r in common.all_runs() if r.ok and r.config is not None and has_codebooks(r.config.model)]


def chosen_cell(key: tuple, shape: tuple[int, int], default: tuple[int, int]) -> tuple[int, int]:
    cells = st.session_state.setdefault(CELL, {})
    r, c = cells.get(key, default)
    return min(r, shape[0] - 1), min(c, shape[1] - 1)


def on_click(chart_key: str, key: tuple, width: int) -> None:
    """A click on a cell of the grid: it becomes the chosen one (its customdata is row * width + column)."""
    kind, ids = common.chart_selection(st.session_state.get(chart_key))
    if ids:
        st.session_state.setdefault(CELL, {})[key] = divmod(ids[0], width)


def main() -> None:
    st.header("Codes: the discrete layers of a VQ-VAE")
    runs = codebook_runs()
    if not runs:
        st.info("This page shows models whose layers are codes from a codebook (VQ-VAE); none of the runs here has "
                "one. Train one with `python -m training train --family vqvae` or on the **Train a model** page. "
                "Gaussian layers are walked on the **Traverse** page.")
        return
    run = common.pick_run("Run", "codes_run", remember="codes_run_selected", default=runs[0])
    if run is None:
        return
    if str(run.path) not in {str(r.path) for r in runs}:
        st.info(f"**{run.name}** has Gaussian layers, not codes: its layers are walked on the **Traverse** page. "
                f"Runs with codebooks: {', '.join(r.name for r in runs)}.")
        return
    model = common.model_for(run)
    points = common.test_points_or_error(run)
    if points is None:
        return
    specs = model.layer_specs()
    cats = [i for i, s in enumerate(specs) if s.codebook]
    c1, c2 = st.columns([1, 2])
    with c1:
        idx = common.test_image_input("Test image", points, "codes_index")
    layer = c2.segmented_control("Layer", cats, default=cats[-1], key="codes_layer",
                                 format_func=lambda i: f"{specs[i].name}: {specs[i].shape[1]}x{specs[i].shape[2]} "
                                                       f"codes of {specs[i].codebook}")
    layer = cats[-1] if layer is None else int(layer)
    path, stamp = str(run.path), run.stamp
    try:
        cm = code_map_of(path, stamp, idx)
    except Exception as e:  # noqa: BLE001  a run that cannot be read: a message, not a traceback
        st.error(f"Cannot read {run.name}'s codes: {e}")
        return
    index = cm.index[layer]
    h, w = index.shape
    key = (path, layer, idx)
    surprise = cm.surprise(layer)
    cell = chosen_cell(key, (h, w), tuple(int(v) for v in divmod(int(surprise.argmax()), w)))
    own = int(index[cell])
    choices = cm.top_choices(layer, cell, k=5)
    prior_pick = {c: p for c, p in choices}
    options = [own] + [c for c, _ in choices if c != own] + [c for c in range(specs[layer].codebook)
                                                              if c != own and c not in prior_pick]

    def label(c: int) -> str:
        bits = ["the image's own" if c == own else ""] + ([f"the prior's p = {prior_pick[c]:.2f}"] if c in prior_pick else [])
        return f"code {c}" + (f" ({', '.join(b for b in bits if b)})" if any(bits) else "")

    g, right = st.columns([1, 1])
    with g:
        chart_key = f"codes_grid_{layer}"
        swap_key = f"codes_swap_{run.name}_{layer}_{idx}_{cell[0]}_{cell[1]}"  # a new cell starts at its own code
        labels = [label(c) for c in options]  # the widget's options (strings: its state is one of them)
        code = options[labels.index(st.session_state[swap_key])] if st.session_state.get(swap_key) in labels else own
        st.plotly_chart(code_grid(index, surprise, layer, selected=cell, swap=(cell, code) if code != own else None),
                        key=chart_key,
                        on_select=lambda: on_click(chart_key, key, w), selection_mode="points", width="content",
                        config={"displayModeBar": False})
        st.caption(f"Click a cell to choose it (now row {cell[0]}, column {cell[1]}). Colour: the nats the prior pays "
                   f"for the image's code there, given the codes before it (raster order) and the layers above: "
                   f"{float(surprise.sum()):.1f} nats in all in {specs[layer].name}.")
    with right:
        new = options[labels.index(st.selectbox(
            f"Code at row {cell[0]}, column {cell[1]}", labels, key=swap_key,
            help="the prior's five likeliest codes there come first, then every other code of the codebook"))]
        a, b = st.columns(2)
        common.show_png(swapped_png(path, stamp, idx, layer, cell, None), "decoded from its own codes", a)
        common.show_png(swapped_png(path, stamp, idx, layer, cell, int(new)),
                        f"with code {new} at ({cell[0]}, {cell[1]})" if new != own else "(choose another code)", b)
        st.caption("The prior's view of this cell: " + ", ".join(f"code {c} {p:.0%}" for c, p in choices) + ".")

    if len(specs) > 1:
        st.subheader("The bottom level resampled under the kept upper levels")
        keep = len(specs) - 1
        temperature = st.slider("Softmax temperature of the resampled codes", 0.0, 2.0, 1.0, 0.1, key="codes_temp")
        kept = ", ".join(specs[i].name for i in range(1, len(specs)))
        common.show_png(decomposition_png(path, stamp, idx, keep, float(temperature)),
                        f"the test image, then 8 images that keep its codes in {kept} and draw z1's from the prior "
                        "given them: what stays the same is what the upper level decides")

    st.subheader(f"{specs[layer].name}'s codebook")
    n = common.encoded_points(run)
    method = st.radio("Projection of the code vectors", METHODS, horizontal=True, key="codes_projection",
                      help="UMAP and t-SNE are computed on first use (UMAP compiles itself the first time: up to half "
                           "a minute), then shared by every session")
    common.chart(codebook_figure_of(path, stamp, n, layer, method), f"codes_book_{layer}",
                 f"{run.name}-codebook-z{layer + 1}")
    st.caption(f"Each code vector ({method} of the codebook), sized by how often the first {n:,} test images chose it "
               "and coloured by the class it appears in most; grey crosses were never chosen (dead codes: the "
               "discrete twin of inactive units).")


main()
