"""Compare (landing page): two runs side by side, layer by layer, as in Sønderby et al. 2016, Sec. 3.

A shipped run's final numbers come from its eval.json (`training export`: IW-5000 on the whole test
set, BN statistics recomputed); otherwise active units and KL per layer come from the last test
evaluation in history.jsonl, and the IW log-likelihood is computed on demand.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app_pages import common
from app_pages.glossary import notice
from app_pages.computed import NEIGHBOURS, information_figures, overlaps_of, settings_frame
from explorer.figures import iw_bound_curve, per_layer_bars
from explorer.information import IW_KS, NIL_KL
from explorer.paper import PAPER, PAPER_MNIST, paper_reference, reproductions, scale_note
from explorer.runs import RunInfo, default_pair
from training.models import has_codebooks


def default_k(run: RunInfo) -> int:
    """A K whose estimate on the default points takes a few seconds on two cores (the paper's 5000 on 10,000
    MNIST images takes about half an hour per model there: `python -m training eval`)."""
    return 1000 if run.config is not None and run.config.dataset == "digits" else 20


DEFAULT_IW_POINTS = 500


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
    elbo = stored.get("test_elbo") if stored else None
    if not isinstance(elbo, (int, float)):
        elbo = common.last_with(hist, "test_elbo")
    m1, m2 = col.columns(2)
    codes = run.config is not None and has_codebooks(run.config.model)
    m1.metric("Test bound log p(x|z) + log p(z)" if codes else "Test ELBO (nats)", "–" if elbo is None else f"{elbo:.2f}",
              help=("a deterministic encoder's bound on log p(x), in the ELBO's nats (higher is better): the "
                    "reconstruction plus the prior's log p of the image's codes" if codes else
                    "single-sample ELBO on the test set (higher is better)") + ": from eval.json for a shipped run, "
                   "else at the last evaluation during training")
    iw = st.session_state.get("compare_iw", {}).get((str(run.path), run.stamp))
    if codes:  # one code map per image: importance weights over a point mass are all 1, the estimate is the bound
        m2.metric("log p(x), IW", "= the bound", help="the encoder gives each image one code map, so importance "
                  "sampling has nothing to average: log p(x) >= the bound, and the IW estimate is the bound itself")
    elif iw:
        m2.metric(f"log p(x), IW-{iw['k']}", f"{iw['iw_ll']:.2f}",
                  help="importance-weighted estimate (Burda et al. 2016) on the test points, computed below")
        col.caption(f"IW over {iw['n']} points: {iw['source']}; BN statistics: training's running averages (an "
                    "eval.json's number recomputes them over the training set, on the whole test set)")
    elif stored:
        m2.metric(f"log p(x), IW-{stored['iw_samples']}", f"{stored['iw_ll']:.2f}",
                  help="importance-weighted estimate (Burda et al. 2016), stored with the run (eval.json)")
    else:
        m2.metric("log p(x) (IW)", "–", help="importance-weighted estimate (Burda et al. 2016); compute it below")
    if stored:
        col.caption(evaluation_note(stored))
    ref = paper_reference(run.config) if run.config is not None else None
    if codes:
        col.caption("A VQ-VAE's numbers are not the Ladder VAE paper's: a model of codes has no KL rate to keep small, "
                    "so its codes carry more nats than a VAE's layers, and its bound is looser than their ELBO.")
    elif ref is not None:
        ours = f" This run: **{stored['iw_ll']:.2f}** after {stored.get('epochs', '?')} epochs" if stored else " This run:"
        col.info(f"Paper: log p(x) = **{ref:.2f}** nats (LVAE+BN+WU, 5 layers, IW-5000, MNIST, 2000 epochs; "
                 f"{PAPER}).{ours}; {scale_note(run.config)}.")
    elif run.config is not None and run.config.dataset == "mnist":
        col.caption(f"{PAPER} report for MNIST: " + "; ".join(f"{k}: {v:.2f}" for k, v in PAPER_MNIST.items())
                    + ". Their VAE vs LVAE grid at 1-5 layers (Fig. 3) has no printed numbers. This run: "
                    + f"{scale_note(run.config)}.")
    settings = common.settings_table(run)
    col.dataframe(settings_frame(tuple((k, str(v)) for k, v in settings.items())), hide_index=True, width="stretch")


def final_per_layer(run: RunInfo, hist: pd.DataFrame, key: str) -> list:
    """Active units or KL per layer: the stored evaluation's (BN statistics recomputed) when there is one,
    else the last evaluation in the history."""
    ev = stored_iw(run)
    if ev and isinstance(ev.get(key), list):
        return ev[key]
    # Test-set numbers only: a run not yet evaluated shows no bars (never the training KL under "test set").
    return common.last_with(hist, key) or []


def above_layer_2(units: dict[str, list], kl: dict[str, list]) -> str:
    """What this pair shows above layer 2, in words, from the numbers in the charts (never the paper's claim
    restated: on 8x8 digits the upper layers of both models usually carry next to nothing)."""
    parts = []
    for name, u in units.items():
        if len(u) < 3:
            return ""
        parts.append(f"{name} {sum(u[2:])} active units and {sum(kl.get(name, [])[2:]):.2f} nats of KL")
    return "This pair above layer 2: " + "; ".join(parts) + "."


def bars(values: dict[str, list], title: str, axis: str):
    """per_layer_bars, built once per (numbers, title) for every session: the page everyone opens on."""
    key = (tuple((name, tuple(v)) for name, v in values.items()), title, axis)
    return common.shared("compare_bars", key, lambda: per_layer_bars(values, title, axis))


def compare(a: RunInfo, b: RunInfo) -> None:
    names = [a.name, b.name if b.name != a.name else f"{b.name} (B)"]
    hists = [common.history_for(r) for r in (a, b)]
    # A codebook family's "used" is its codes used over the test set (the discrete twin of active units), its
    # rate the prior's -log p of the codes: the same currency, nats per layer, as a Gaussian layer's KL.
    codes = {n: final_per_layer(r, h, "test_codes_used") for n, r, h in zip(names, (a, b), hists)}
    units = {n: codes[n] or final_per_layer(r, h, "active_units") for n, r, h in zip(names, (a, b), hists)}
    kl = {n: final_per_layer(r, h, "test_kl_per_layer") for n, r, h in zip(names, (a, b), hists)}
    discrete = any(codes.values())
    c1, c2 = st.columns(2)
    with c1:
        common.chart(bars(units, "Used per layer: active units or codes used" if discrete
                          else "Active units per layer (A_u > 0.01)", "units or codes used" if discrete
                          else "active units"), "compare_units", "active-units")
    with c2:
        common.chart(bars(kl, "Nats per layer (test set): KL or -log p(codes)" if discrete
                          else "KL divergence per layer (test set)", "nats per image" if discrete
                          else "KL (nats per image)"), "compare_kl", "kl-per-layer")
    if discrete:
        st.caption("A VQ-VAE's layers are maps of codes: its \"used\" bars count the codes chosen over the test set "
                   "(of each codebook's size) where a Gaussian layer counts its active units (A_u > 0.01), and its "
                   "nats are what its PixelCNN prior pays for the codes, so that its bound log p(x|z) + log p(z) adds "
                   "up as a Gaussian model's ELBO does.")
    # NVAE's rule is about Gaussian channels: a code layer's nats are spread evenly over its code vector's numbers,
    # so every one of them would pass or fail together. A run with codebooks is left out of this chart.
    channels = {n: final_per_layer(r, h, "active_channels") for n, r, h in zip(names, (a, b), hists) if not codes[n]}
    if any(channels.values()):  # runs evaluated since the count exists
        common.chart(bars(channels, "Active channels per layer, NVAE's rule (KL > 0.1 nats per image, summed over "
                                    "positions)", "active channels"), "compare_channels", "active-channels")
        st.caption("A_u (above) asks whether a unit's mean moves with the image; NVAE's rule asks whether a channel "
                   "pays more than 0.1 nats: the two disagree, most for spatial layers (a channel is many units).")
    notice("compare the two bars of the upper layers (z3 and up): a layer at 0 active units and ≈0 KL is collapsed, "
           "ignored by the model; the model that keeps more of them used its hierarchy.")
    if any(stored_iw(r) for r in (a, b)):
        st.caption("Runs with an eval.json (the shipped pair): active units and KL on the whole test set with BN "
                   "statistics recomputed over the training set; other runs: their last evaluation in history.jsonl.")
    st.caption("The paper's finding: a plain VAE typically uses only its lowest layers (the upper ones collapse onto "
               "the prior: no active units, KL ≈ 0); the Ladder VAE with batch normalization and warm-up keeps more "
               "layers active (Sønderby et al. 2016, Sec. 3.1-3.2). " + above_layer_2(units, kl))

    try:  # the points both runs have: never ask for more than there are (a shipped run carries 1,000)
        available = min(len(common.points_of(str(r.path), r.stamp, common.TEST_POINTS).labels) for r in (a, b))
    except Exception as e:  # noqa: BLE001  e.g. missing test data: say so, keep the page
        st.error(f"Cannot load the runs' test images: {e}")
        return
    with st.form("compare_iw_form", border=False):
        k1, k2, k3 = st.columns([1, 1, 2], vertical_alignment="bottom")
        k = k1.number_input("Importance samples K", 1, 100_000, default_k(a), step=10, key="compare_k",
                            help="the time grows with K x points: the defaults take seconds; the paper's K = 5000 on "
                                 "MNIST's 10,000 test images takes about half an hour per model on two cores "
                                 "(`python -m training eval RUN --iw-samples 5000`, stored in a run's eval.json)")
        n = k2.number_input("Test points", 10, available, min(DEFAULT_IW_POINTS, available), step=100,
                            key="compare_n", help=f"at most the {available:,} test points both runs have here")
        go = k3.form_submit_button("Compute log-likelihood (IW) of both runs", icon=":material/calculate:")
    if go:
        results = st.session_state.setdefault("compare_iw", {})
        bar = common.ProgressWithTimeLeft(f"IW-{k} log-likelihood of both runs on {n:,} test points", parts=2)
        for run in (a, b):
            try:
                results[(str(run.path), run.stamp)] = common.iw_log_likelihood_of(
                    str(run.path), run.stamp, int(k), int(n), _progress=bar)
            except Exception as e:  # noqa: BLE001  e.g. missing test data: say so, keep the page
                st.error(f"{run.name}: {e}")
            bar.next_part()
        bar.done()
        st.rerun()


MI_HELP = ("I(x; z_i) = E_x E_q(z_i|x)[log q(z_i|x) − log q(z_i)], q(z_i) = the mean of q(z_i|x) over the shown "
           "test images (the aggregate posterior); estimated as He et al. 2019 do, with log q at the sample: one z per "
           "image, q(z) a mixture of the N shown images' posteriors. In a hierarchy q(z_i|x) is itself a mixture over "
           "the layers z_i depends on: 16 draws of them per image. Biased low and capped at log N (N images cannot "
           "show more than log N nats); hatched bars are within 0.1 nats of the cap, so the layer may carry more. "
           "Error bars: ±1 standard error over 1,000 query images.")


def same_points(a: RunInfo, b: RunInfo, n: int) -> bool:
    pa, pb = (common.points_of(str(r.path), r.stamp, n) for r in (a, b))
    return pa.image_shape == pb.image_shape and len(pa.index) == len(pb.index) and bool((pa.index == pb.index).all())


def neighbourhoods(a: RunInfo, b: RunInfo, names: list[str]) -> None:
    """k-NN label agreement per layer of both runs, neighbourhood overlap between layers and runs, and the
    points whose neighbourhoods change most."""
    from explorer.neighbours import most_changed
    st.subheader("Neighbourhoods, layer by layer")
    n = common.TEST_POINTS
    try:
        _, agree_a, tables_a = common.neighbour_indexes_of(str(a.path), a.stamp, n, NEIGHBOURS)
        _, agree_b, tables_b = common.neighbour_indexes_of(str(b.path), b.stamp, n, NEIGHBOURS)
        points = common.points_of(str(a.path), a.stamp, n)
        linked = same_points(a, b, n)
    except Exception as e:  # noqa: BLE001
        st.error(f"Cannot index the runs' codes: {e}")
        return
    summary = overlaps_of(str(a.path), a.stamp, str(b.path), b.stamp, linked)
    layers = max(len(tables_a), len(tables_b))
    table = pd.DataFrame({"layer": [f"z{i + 1}" for i in range(layers)],
                          f"A ({names[0]}): label agreement": agree_a + [None] * (layers - len(agree_a)),
                          f"B ({names[1]}): label agreement": agree_b + [None] * (layers - len(agree_b))})
    for col, vals in summary.items():
        table[col] = vals + [None] * (layers - len(vals))
    for col in table.columns[1:]:  # percentages, and a dash where a layer has none (never "None")
        table[col] = [("–" if v is None or v != v else f"{v:.0%}") for v in table[col]]
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption(f"On {len(points.labels)} test points ({points.source}), {NEIGHBOURS} nearest neighbours in each "
               "layer's posterior means. Label agreement: the share of neighbours of the same class (chance ≈ 10%). "
               "Overlap: the mean share of a point's neighbours two embeddings have in common (z_i vs z_i+1: between "
               "a layer and the one above, in the same run)."
               + ("" if linked else " The two runs show different test points: no overlap between them."))
    points_b = common.points_of(str(b.path), b.stamp, n)
    pairs = {f"A z{i + 1} vs A z{i + 2}": (tables_a[i], tables_a[i + 1], points) for i in range(len(tables_a) - 1)}
    if linked:
        pairs = {f"A z{i + 1} vs B z{i + 1}": (tables_a[i], tables_b[i], points)
                 for i in range(min(len(tables_a), len(tables_b)))} | pairs
    pairs |= {f"B z{i + 1} vs B z{i + 2}": (tables_b[i], tables_b[i + 1], points_b) for i in range(len(tables_b) - 1)}
    if not pairs:
        return
    pair = st.selectbox("Where do neighbourhoods change most?", list(pairs), key="compare_overlap_pair")
    first, second, pts = pairs[pair]  # linked runs share their points, so one set of images serves both
    top, overlap = most_changed(first, second, 5)
    st.caption(f"{pair}: mean overlap {overlap.mean():.0%}. The 5 points with the least overlap; each row: the point, "
               f"its {NEIGHBOURS} neighbours in the first embedding, then in the second.")
    for p in top:
        row = np.concatenate([pts.images[[p]], pts.images[first[p]], pts.images[second[p]]])
        common.show_images(row, pts.image_shape, ncols=len(row), target=40,
                           caption=f"point {int(pts.index[p])} (class {int(pts.labels[p])}): overlap "
                                   f"{overlap[p]:.0%}; classes " + " ".join(str(int(c)) for c in pts.labels[first[p]])
                                   + " | " + " ".join(str(int(c)) for c in pts.labels[second[p]]))


def information(a: RunInfo, b: RunInfo, names: list[str]) -> None:
    """Rate beside distortion, I(x; z_i) per layer, each unit's activity against its own KL, the IW-K curve."""
    st.subheader("Information per layer")
    threshold = st.select_slider("Activity threshold for 'active'", [0.001, 0.003, 0.01, 0.03, 0.1], value=0.01,
                                 key="compare_activity_threshold",
                                 help="Burda et al. 2016 count a unit active when A_u = Var_x E_q[u|x] > 0.01")
    try:
        common.information_with_progress((a, b), common.TEST_POINTS)
        rd, mi, units, through, points = information_figures(
            tuple((str(r.path), r.stamp, name) for name, r in zip(names, (a, b))), threshold)
    except Exception as e:  # noqa: BLE001
        st.error(f"Cannot measure the runs: {e}")
        return
    c1, c2 = st.columns(2)
    with c1:
        common.chart(rd, "compare_rate_distortion", "rate-distortion")
    with c2:
        common.chart(mi, "compare_mi", "mutual-information")
        st.caption(f"I(x; z_i) on {points} test images.", help=MI_HELP)
    common.chart(units, "compare_units_kl", "unit-activity-vs-kl")
    st.caption("Active units and information can disagree: a unit whose posterior mean follows p(z_i|z_i+1)'s mean "
               "varies with x (active) while its own KL is nil: it carries the layer above's information, none of its "
               f"own. Units active only through the layer above (KL < {NIL_KL} nats): "
               + ", ".join(f"{k}: {v}" for k, v in through.items()) + f". On {points} test images.")

    with st.form("compare_bounds_form", border=False):
        f1, f2 = st.columns([1, 3], vertical_alignment="bottom")
        m = f1.select_slider("Test points", [100, 200, 500, 1000], value=200, key="compare_bounds_n",
                             help="the time grows with the points and the largest K")
        big = f1.checkbox(f"also K = {IW_KS[-1]}", key="compare_bounds_big",
                          help=f"{IW_KS[-1]} passes per point: ten times the rest together (tens of seconds on "
                               "MNIST-size runs on two cores); a progress bar shows the time left")
        ks = IW_KS if big else IW_KS[:-1]
        go = f2.form_submit_button("Compute the bound L_K for K = 1, 10, 100 (and 1000 if ticked) of both runs",
                                   icon=":material/stacked_line_chart:")
    done = st.session_state.setdefault("compare_bounds", {})
    key = tuple((str(r.path), r.stamp) for r in (a, b)) + (int(m), ks)
    if go:
        bar = common.ProgressWithTimeLeft(f"IW bounds for K = {', '.join(map(str, ks))} on {m} points of both runs",
                                          parts=2)
        try:
            results = {}
            for name, r in zip(names, (a, b)):
                results[name] = common.iw_bounds_of(str(r.path), r.stamp, int(m), ks, _progress=bar)
                bar.next_part()
            done[key] = results
        except Exception as e:  # noqa: BLE001
            st.error(f"Cannot compute the bounds: {e}")
        bar.done()
    if key in done:
        common.chart(iw_bound_curve(done[key]), "compare_iw_curve", "iw-bound-curve")
        notice("each curve rises with K: L_1 is the ELBO, and what it gains by K = 100 is how loose the ELBO is.")
        st.caption("BN statistics: training's running averages, on the shown test points. "
                   "The gap between L_1 (the ELBO) and L_K shrinks as K grows: what is left at large K is what the "
                   "IW bound adds over the ELBO (Burda et al. 2016, eq. 8). Every L_K takes the first K of one draw of "
                   "importance samples per point, so each step's gain is measured on the same draws; error bars: ±1 "
                   "SE of that gain over the points (the bounds' own SE is on hover).")


# The summary's field names (training.reproduce.summarize) in words, for a table a class reads.
REPRODUCTION_COLUMNS = {"model": "model", "stage": "stage", "train M": "training samples (averaged)",
                        "train K": "training samples (importance-weighted)", "layers": "layers", "epochs": "epochs",
                        "pixel scale": "pixel scale", "seeds": "seeds", "iw_ll": "log p(x), IW (nats)",
                        "iw_ll_sd": "± sd over seeds", "eval K": "IW samples at test", "elbo": "test ELBO (nats)",
                        "active_units": "active units z1..", "paper": "the paper's log p(x)"}


def reproduction_section(datasets: set[str]) -> None:
    """The paper's grid as reproduced by `python -m training reproduce`, beside the paper's numbers: only for
    the datasets of the runs compared (an MNIST table says nothing about two digits runs)."""
    found = {d: rows for d, rows in reproductions().items() if d in datasets}
    if not found:
        return
    st.subheader("The paper's experiment, reproduced")
    for dataset, rows in found.items():
        table = pd.DataFrame([{**r, "active_units": "/".join(map(str, r["active_units"]))} for r in rows])
        table = table.rename(columns=REPRODUCTION_COLUMNS).astype(object)
        # a missing number is a dash, never "None" (nor an epochs field the summary wrote from a missing one)
        table = table.where(table.notna(), "–").replace({"None": "–", "": "–"})
        st.caption(f"`results/paper-{dataset}.json`: test log-likelihood (IW, nats, mean over seeds ± sd) per "
                   f"model, stage and depth; the paper's column is {PAPER}'s number for exactly that model, depth, "
                   "stage and training samples, else a dash. The paper's pixels are bytes/256; see `pixel scale`.")
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
        names = [picked[0].name, picked[1].name if picked[1].name != picked[0].name else f"{picked[1].name} (B)"]
        if st.toggle("Information per layer: rate, distortion, mutual information, bounds", key="compare_info"):
            information(*picked, names)
        if st.toggle("Neighbourhoods per layer: label agreement and overlap between layers and runs",
                     key="compare_neighbours"):
            neighbourhoods(*picked, names)
    else:
        st.info("Pick two usable runs to compare them.")
    common.follow_training(picked)
    reproduction_section({r.config.dataset for r in picked if r is not None and r.config is not None})


main()
