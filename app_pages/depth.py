"""Depth: which variates carry the image, and how much each depth decides (any family; made for deep ones).

Every variate's KL over the test points (Efficient-VDVAE's div_stats), ranked; a slider keeps the top q% of
them and decodes a test image with the rest drawn from the prior (its masked reconstruction); the share of the
KL from the top layer down and per resolution (VDVAE's Fig. 4).
"""
from __future__ import annotations

import streamlit as st

from app_pages import common
from app_pages.computed import DIV_STATS_POINTS, depth_figures_of, layers_in_use_of, masked_png
from app_pages.glossary import notice

# Percent of all variates kept: dense where few variates carry most of the KL (Efficient-VDVAE: about 3%).
KEEP_PERCENT = (0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 20, 30, 50, 75, 100)


@st.fragment
def variates(run, points) -> None:
    st.subheader("Which variates carry the image")
    c1, c2, c3 = st.columns([2, 2, 1])
    percent = c1.select_slider("Keep the top % of variates (by their mean KL)", KEEP_PERCENT, value=3,
                               key="depth_keep_percent",
                               help="the variates with the most KL over the test points; the others are drawn from "
                                    "the prior in the same top-down pass (or set to its mean)")
    rest = c2.radio("The other variates", ["prior samples", "prior mean"], horizontal=True, key="depth_rest")
    with c3:
        idx = common.test_image_input("Test image", points, "depth_index")
    png, count, total, share = masked_png(str(run.path), run.stamp, int(idx), percent / 100, rest == "prior mean")
    common.show_png(png, caption=f"test image {int(points.index[idx])}, then decoded keeping the top {count:,} of {total:,} "
                                 f"variates ({share:.1%} of the KL), the rest as {rest}")
    ranking, _ = depth_figures_of(str(run.path), run.stamp, percent / 100)
    common.chart(ranking, "depth_ranking", f"{run.name}-variate-kl")
    notice("a steep fall in the ranking means a few variates carry the image: keeping them alone often redraws it "
           "nearly whole (Efficient-VDVAE found about 3% enough).")


def main() -> None:
    st.header("Depth: which variates and layers decide the image")
    run = common.pick_run("Run", "depth_run")
    if run is None:
        return
    points = common.test_points_or_error(run)
    if points is None:
        return
    _, share = depth_figures_of(str(run.path), run.stamp, 0.03)
    st.subheader("How much each depth decides")
    common.chart(share, "depth_share", f"{run.name}-kl-share")
    in_use = layers_in_use_of(str(run.path), run.stamp)
    st.caption(f"{in_use} of {common.model_for(run).n_layers} layers in use: a mean KL of at least 0.0001 nats per "
               f"image over the first {DIV_STATS_POINTS:,} test points (Efficient-VDVAE's \"active groups\").")
    variates(run, points)


main()
