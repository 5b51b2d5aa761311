"""Curves: warm-up, ELBO, KL and active units per layer over epochs for several runs, and a snapshot replay."""
from __future__ import annotations

import streamlit as st

from app_pages import common
from app_pages.glossary import notice
from app_pages.computed import snapshots_of
from explorer.figures import (CODE_USE, active_units_curves, code_use_curves, collapse_timeline, kl_balance_curves, kl_heatmap, kl_per_layer_curves,
                              rate_distortion_curves, snapshot_animation, snapshot_scatter, training_curves)
from explorer.timeline import activity_over_epochs, kl_over_epochs, transitions
from explorer.runs import default_pair
from training import checkpoint as ckpt

METRICS = ["beta", "train_elbo", "recon", "test_elbo"]


# Local helpers: explorer/ has no snapshot loader, training.checkpoint reads the files.

def curves(runs) -> dict:
    histories = {r.name: common.history_for(r) for r in runs}
    key = tuple(common.history_key(r) for r in runs)  # every figure below is built once per key for all sessions
    cols = st.columns(2)
    for i, metric in enumerate(METRICS):
        with cols[i % 2]:
            fig = common.shared("training_curves", (key, metric), lambda m=metric: training_curves(histories, m))
            common.chart(fig, f"training_{metric}", f"training-{metric}")
    c1, c2 = st.columns(2)
    with c1:
        test = st.toggle("KL on the test set", key="training_kl_test",
                         help="training KL is every epoch; test KL at the evaluation epochs")
        log_y = st.toggle("log scale", value=True, key="training_kl_log",
                          help="on by default: z1's early KL would otherwise flatten the upper layers, where collapse happens")
        fig = common.shared("kl_per_layer", (key, test, log_y),
                            lambda: kl_per_layer_curves(histories, test=test, log_y=log_y))
        common.chart(fig, "training_kl", "training-kl-per-layer")
        notice("a layer whose KL falls to the bottom of the log scale during warm-up has collapsed; one that rises "
               "again as β reaches 1 came back.")
    with c2:
        common.chart(common.shared("active_units", key, lambda: active_units_curves(histories)), "training_units",
                     "training-active-units")
    if any("kl_balance" in h for h in histories.values()):  # a family that balances its KL terms (NVAE)
        common.chart(common.shared("kl_balance", key, lambda: kl_balance_curves(histories)), "training_kl_balance",
                     "training-kl-balance")
        st.caption("NVAE's KL balancing (while β < 1): each layer's KL is weighted in proportion to its own KL "
                   "over its size, so a layer with little KL is pushed to use more; beside the KL per layer above.")
    if any("codes_used" in h for h in histories.values()):  # a family with codebooks (VQ-VAE)
        cols = st.columns(len(CODE_USE))
        for col, column in zip(cols, CODE_USE):
            with col:
                common.chart(common.shared("code_use", (key, column), lambda c=column: code_use_curves(histories, c)),
                             f"training_{column}", f"training-{column.replace('_', '-')}")
        st.caption("A codebook's twin of active units: how many of its codes the encoder chose over each epoch, how "
                   "evenly (perplexity: the number of codes used alike), and how many dead codes (an EMA use under "
                   "the threshold) were replaced by encoder outputs. In a VQ-VAE the \"KL\" above is the prior's "
                   "-log p of the codes.")
    common.chart(common.shared("rate_distortion", key, lambda: rate_distortion_curves(histories)),
                 "training_rate_distortion", "training-rate-distortion")
    st.caption("Rate (KL, the information the codes carry) against distortion (what the decoder misses), epoch by "
               "epoch: warm-up starts at low distortion and high rate and trades them as β reaches 1.")
    return histories


MEASURES = {"activity A_u (snapshots)": ("A_u", 0.01), "own KL per unit (test evaluations)": ("KL", 0.01)}


def timeline(runs, histories) -> None:
    """Per unit, when it became active or inactive, by either measure, with the threshold adjustable."""
    st.subheader("Collapse timeline: when each unit switched on or off")
    c1, c2, c3 = st.columns([2, 2, 2])
    by_name = {r.name: r for r in runs}
    name = c1.selectbox("Run", list(by_name), key="training_timeline_run")
    measure = c2.radio("Measure", list(MEASURES), key="training_timeline_measure",
                       help="A_u = Var_x of a unit's posterior mean over the run's 1,000 fixed snapshot points (mean "
                            "path); the own KL per unit comes from each test evaluation in history.jsonl")
    short, default = MEASURES[measure]
    threshold = c3.select_slider("Threshold", [0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0], value=default,
                                 key="training_timeline_threshold",
                                 help="a unit counts as active when its value is above this (Burda et al.: A_u > 0.01)")
    run = by_name[name]
    if short == "A_u":
        epochs_saved = tuple(ckpt.snapshot_epochs(run.path))
        try:  # once per server for every session, like the figures below
            epochs, values = common.shared(
                "activity_over_epochs", (str(run.path), run.stamp, epochs_saved),
                lambda: activity_over_epochs(snapshots_of(str(run.path), run.stamp, epochs_saved)[0]
                                             if epochs_saved else {}))
        except Exception as e:  # noqa: BLE001
            st.warning(f"{name}: snapshots unreadable ({e})")
            return
    else:
        epochs, values = common.shared("kl_over_epochs", common.history_key(run),
                                       lambda: kl_over_epochs(histories[name]))
    if not epochs:
        st.info(f"{name} has no {'snapshots' if short == 'A_u' else 'per-unit test KL'} yet.")
        return
    key = (common.history_key(run), short, threshold)
    common.chart(common.shared("collapse_timeline", key, lambda: collapse_timeline(epochs, values, threshold, short)),
                 "training_timeline", f"{name}-collapse-timeline")
    notice("read the rows of the upper layers: when did their units switch off, and did any switch on again?")
    table = common.shared("transitions", key, lambda: transitions(epochs, values, threshold))
    changed = table[(table["became inactive"] != "–") | (table["became active"] != str(epochs[0]))]
    st.caption(f"{len(changed)} of {len(table)} units changed state after epoch {epochs[0]}; every unit below.")
    st.dataframe(table, hide_index=True, width="stretch", height=240)


def heatmap(runs, histories) -> None:
    st.subheader("KL per unit over training")
    name = st.selectbox("Run", [r.name for r in runs], key="training_heatmap_run")
    run = next(r for r in runs if r.name == name)
    fig = common.shared("kl_heatmap", common.history_key(run), lambda: kl_heatmap(histories[name]))
    common.chart(fig, "training_heatmap", f"{name}-kl-per-unit")


def replay(runs) -> None:
    st.subheader("Replay: the latent layers forming")
    by_name = {r.name: r for r in runs}
    name = st.selectbox("Run", list(by_name), key="training_replay_run")
    run = by_name[name]
    epochs = tuple(ckpt.snapshot_epochs(run.path))
    if not epochs:
        st.info(f"{name} has no snapshots.")
        return
    try:
        snaps, labels = snapshots_of(str(run.path), run.stamp, epochs)
    except Exception as e:  # noqa: BLE001  a damaged snapshot file: say which, keep the page
        st.warning(f"{name}: snapshots unreadable ({e})")
        return
    st.caption("Each snapshot holds the posterior means along the mean path (each layer's mean given the means of "
               "the layers it depends on, nothing sampled) of 1,000 fixed test points: the quantity the Layers "
               "page plots as \"posterior means\", projected here on each epoch's own PCA.")
    mode = st.radio("View", ["epoch slider", "animation (play button)"], horizontal=True, key="training_replay_mode")
    if mode == "epoch slider":
        epoch = st.select_slider("Epoch", epochs, value=epochs[-1], key="training_replay_epoch")
        fig = common.shared("snapshot_scatter", (str(run.path), run.stamp, epochs, epoch),
                            lambda: snapshot_scatter(snaps[epoch], labels, epoch, reference=snaps[epochs[-1]]))
        common.chart(fig, "training_snapshot", f"{name}-snapshot-{epoch}")
        st.caption(f"Each epoch's PCA is rotated onto epoch {epochs[-1]}'s (Procrustes), so the axes keep their "
                   "orientation from frame to frame.")
    else:
        fig = common.shared("snapshot_animation", (str(run.path), run.stamp, epochs),
                            lambda: snapshot_animation(snaps, labels))
        common.chart(fig, "training_animation", f"{name}-snapshots")


def main() -> None:
    st.header("Curves: warm-up, KL and active units over epochs")
    ok = common.ok_runs()
    if not ok:
        st.info("No usable runs yet.")
        return
    paths = [str(r.path) for r in ok]
    by_path = {str(r.path): r for r in ok}
    # Remembered across pages (a widget's own state is dropped while another page shows).
    remembered = [p for p in st.session_state.get("training_runs_remember", []) if p in by_path]
    pair = [str(r.path) for r in default_pair(ok) if r is not None]
    chosen = st.multiselect("Runs", paths, default=remembered or pair or paths[:2], key="training_runs",
                            format_func=lambda p: by_path[p].label)
    st.session_state["training_runs_remember"] = chosen
    runs = [by_path[p] for p in chosen]
    if not runs:
        st.info("Pick at least one run.")
        return
    histories = curves(runs)
    heatmap(runs, histories)
    timeline(runs, histories)
    replay(runs)
    common.follow_training(runs)


main()
