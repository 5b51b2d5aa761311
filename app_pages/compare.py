"""Compare (landing page): two runs side by side, layer by layer, as in Sønderby et al. 2016, Sec. 3.

A shipped run's final numbers come from its eval.json (`training export`: IW-5000 on the whole test
set, BN statistics recomputed); otherwise active units and KL per layer come from the last test
evaluation in history.jsonl, and the IW log-likelihood is computed on demand.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import common
from explorer.figures import per_layer_bars
from explorer.paper import PAPER, PAPER_MNIST, paper_reference, reproductions, scale_note
from explorer.runs import RunInfo, default_pair


def default_k(run: RunInfo) -> int:
    return 1000 if run.config is not None and run.config.dataset == "digits" else 5000


def stored_iw(run: RunInfo) -> dict | None:
    """The run's eval.json when it holds an IW log-likelihood (a shipped run), else None."""
    ev = run.evaluation
    if not ev or not isinstance(ev.get("iw_ll"), (int, float)) or not isinstance(ev.get("iw_samples"), int):
        return None
    return ev


def evaluation_note(ev: dict) -> str:
    """How a stored number was obtained, in one line."""
    parts = [f"eval.json: IW-{ev['iw_samples']} on {ev.get('test_images', '?')} test images",
             f"BN statistics {ev.get('bn_stats', '?')}"]
    if ev.get("pixel_scale"):
        parts.append(f"pixels bytes/{ev['pixel_scale']}")
    if ev.get("weights_dtype"):
        parts.append(f"{ev['weights_dtype']} weights")
    parts.append(f"on {ev.get('device', '?')}" + (f", {ev['export_date']}" if ev.get("export_date") else ""))
    return ", ".join(parts)


def run_column(run: RunInfo, col) -> None:
    """One run's headline numbers and settings."""
    hist = common.history_for(run)
    stored = stored_iw(run)
    elbo = stored.get("elbo") if stored else None
    if not isinstance(elbo, (int, float)):
        elbo = common.last_with(hist, "test_elbo")
    m1, m2 = col.columns(2)
    m1.metric("Test ELBO (nats)", "–" if elbo is None else f"{elbo:.2f}",
              help="single-sample ELBO on the test set (higher is better): from eval.json for a shipped run, "
                   "else at the last evaluation during training")
    iw = st.session_state.get("compare_iw", {}).get((str(run.path), run.stamp))
    if iw:
        m2.metric(f"log p(x), IW-{iw['k']}", f"{iw['iw_ll']:.2f}",
                  help="importance-weighted estimate (Burda et al. 2016) on the test points, computed below")
        col.caption(f"IW over {iw['n']} points: {iw['source']}")
    elif stored:
        m2.metric(f"log p(x), IW-{stored['iw_samples']}", f"{stored['iw_ll']:.2f}",
                  help="importance-weighted estimate (Burda et al. 2016), stored with the run (eval.json)")
    else:
        m2.metric("log p(x) (IW)", "–", help="importance-weighted estimate (Burda et al. 2016); compute it below")
    if stored:
        col.caption(evaluation_note(stored))
    ref = paper_reference(run.config) if run.config is not None else None
    if ref is not None:
        ours = f" This run: **{stored['iw_ll']:.2f}** after {stored.get('epochs', '?')} epochs" if stored else " This run:"
        col.info(f"Paper: log p(x) = **{ref:.2f}** nats (LVAE+BN+WU, 5 layers, IW-5000, MNIST, 2000 epochs; "
                 f"{PAPER}).{ours}; {scale_note(run.config)}.")
    elif run.config is not None and run.config.dataset == "mnist":
        col.caption(f"{PAPER} report for MNIST: " + "; ".join(f"{k}: {v:.2f}" for k, v in PAPER_MNIST.items())
                    + ". Their VAE vs LVAE grid at 1-5 layers (Fig. 3) has no printed numbers. This run: "
                    + f"{scale_note(run.config)}.")
    settings = common.settings_table(run)
    col.dataframe(pd.DataFrame({"setting": list(settings), "value": [str(v) for v in settings.values()]}),
                  hide_index=True, width="stretch")


def final_per_layer(run: RunInfo, hist: pd.DataFrame, key: str) -> list:
    """Active units or KL per layer: the stored evaluation's (BN statistics recomputed) when there is one,
    else the last evaluation in the history."""
    ev = stored_iw(run)
    if ev and isinstance(ev.get(key), list):
        return ev[key]
    if key == "active_units":
        return common.last_with(hist, "active_units") or []
    return common.last_with(hist, "test_kl_per_layer") or common.last_with(hist, "kl_per_layer") or []


def compare(a: RunInfo, b: RunInfo) -> None:
    names = [a.name, b.name if b.name != a.name else f"{b.name} (B)"]
    hists = [common.history_for(r) for r in (a, b)]
    units = {n: final_per_layer(r, h, "active_units") for n, r, h in zip(names, (a, b), hists)}
    kl = {n: final_per_layer(r, h, "kl_per_layer") for n, r, h in zip(names, (a, b), hists)}
    c1, c2 = st.columns(2)
    with c1:
        common.chart(per_layer_bars(units, "Active units per layer (A_u > 0.01)", "active units"),
                     "compare_units", "active-units")
    with c2:
        common.chart(per_layer_bars(kl, "KL divergence per layer (test set)", "KL (nats per image)"),
                     "compare_kl", "kl-per-layer")
    if any(stored_iw(r) for r in (a, b)):
        st.caption("Runs with an eval.json (the shipped pair): active units and KL on the whole test set with BN "
                   "statistics recomputed over the training set; other runs: their last evaluation in history.jsonl.")
    st.caption("A plain VAE typically uses only its lowest layers (the upper ones collapse onto the prior: "
               "no active units, KL ≈ 0); the Ladder VAE with batch normalization and warm-up keeps more "
               "layers active (Sønderby et al. 2016, Sec. 3.1-3.2).")

    with st.form("compare_iw_form", border=False):
        k1, k2, k3 = st.columns([1, 1, 2], vertical_alignment="bottom")
        k = k1.number_input("Importance samples K", 1, 100_000, default_k(a), step=100, key="compare_k",
                            help="the paper uses 5000 on MNIST; cost grows linearly with K")
        n = k2.number_input("Test points", 10, 10_000, 5000, step=500, key="compare_n")
        go = k3.form_submit_button("Compute log-likelihood (IW) of both runs", icon=":material/calculate:")
    if go:
        results = st.session_state.setdefault("compare_iw", {})
        with st.spinner(f"IW-{k} log-likelihood of both runs…"):
            for run in (a, b):
                try:
                    results[(str(run.path), run.stamp)] = common.iw_log_likelihood_of(
                        str(run.path), run.stamp, int(k), int(n))
                except Exception as e:  # noqa: BLE001  e.g. missing test data: say so, keep the page
                    st.error(f"{run.name}: {e}")
        st.rerun()


def reproduction_section() -> None:
    """The paper's grid as reproduced by `python -m training reproduce`, beside the paper's numbers."""
    found = reproductions()
    if not found:
        return
    st.subheader("The paper's experiment, reproduced")
    for dataset, rows in found.items():
        table = pd.DataFrame([{**r, "active_units": "/".join(map(str, r["active_units"]))} for r in rows])
        st.caption(f"`results/paper-{dataset}.json`: test log-likelihood (IW, nats, mean over seeds ± sd) per "
                   f"model, stage and depth; `paper` is {PAPER}'s number for exactly that model, depth, stage and "
                   "training samples, else empty. The paper's pixels are bytes/256; see `pixel scale`.")
        st.dataframe(table, hide_index=True, width="stretch")


def main() -> None:
    st.header("Compare two runs layer by layer")
    runs = common.all_runs()
    vae, lvae = default_pair(runs)
    cols = st.columns(2)
    picked = []
    for col, key, remember, default in zip(cols, ("compare_run_a", "compare_run_b"), common.COMPARED, (vae, lvae)):
        with col:
            picked.append(common.pick_run("Run A" if key.endswith("a") else "Run B", key, remember, default))
    for col, run in zip(cols, picked):
        if run is not None:
            run_column(run, col)
    if all(picked):
        compare(*picked)
    else:
        st.info("Pick two usable runs to compare them.")
    common.follow_training(picked)
    reproduction_section()


main()
