"""Train: a form that starts `python -m training train` in the background, then its progress and live curves."""
from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from app_pages import common
from app_pages.computed import datasets_at_hand
from explorer import jobs
from explorer import runs as runs_mod
from explorer.runs import load_history
from training.demo import DEMO_RUNS
import dataclasses

from training.config import DATASETS, DEVICES, RunConfig
from training.models import arch_class, family_names, family_title
from training.options import default_of, options_of

POLL_SECONDS = 2.0


def free_name(dataset: str, model: str, layers: int) -> str:
    """The first free "<dataset>-<model>-<layers>l-<n>": the name a run gets when the form's is left empty."""
    taken = {r.name for r in common.all_runs()} | {j.name for j in jobs.all_jobs()}
    n = 1
    while f"{dataset}-{model}-{layers}l-{n}" in taken:
        n += 1
    return f"{dataset}-{model}-{layers}l-{n}"


def _layers_of(model: str, arch: dict, dataset: str) -> int:
    """The number of latent layers the form's architecture gives (for a run's default name); 0 if it cannot
    tell (the server's checks then say what is wrong)."""
    try:
        options = jobs.arch_options({k: v for k, v in arch.items() if v is not None}, model)
        return int(arch_class(model)(**options).completed(dataset).layers)
    except Exception:  # noqa: BLE001  any bad value: validate_request's message is the one shown
        return 0


def _arch_input(container, f: dataclasses.Field, label: str):
    """One widget for one of the family's architecture options, from its type, default and help; None for
    a list left empty (the family's default sizes)."""
    default = default_of(f)
    key, help = f"train_{f.name}", f.metadata["help"]
    if isinstance(default, bool):
        return container.checkbox(label, value=default, key=key, help=help)
    if isinstance(default, int):
        return int(container.number_input(label, 0, 100_000, default, key=key, help=help))
    if isinstance(default, list):
        text = container.text_input(label, ",".join(map(str, default)), key=key, help=help,
                                    placeholder="empty: the family's default for the dataset")
        return text.strip() or None
    if f.metadata.get("choices"):
        choices = list(f.metadata["choices"])
        return container.selectbox(label, choices, index=choices.index(default), key=key, help=help)
    if isinstance(default, float):
        return float(container.number_input(label, 0.0, 100_000.0, default, key=key, help=help, format="%g"))
    text = container.text_input(label, default, key=key, help=help, placeholder="empty: the family's default")
    return text.strip()


def form() -> None:
    dirs = common.writable_runs_dirs()  # never into the shipped pretrained/
    at_hand = datasets_at_hand(str(jobs.data_dir()))
    offered = [d for d in DATASETS if at_hand[d][0]]
    families = list(family_names())
    # Outside the form: choosing a family reruns the page with that family's architecture options.
    model = st.selectbox("Model family", families, index=families.index("lvae"), key="train_model",
                         help=RunConfig.help("model"), format_func=family_title)
    arch_fields = options_of(arch_class(model))
    main = getattr(arch_class(model), "FORM", {"layers": "Stochastic layers"})
    with st.form("train_form"):
        c1, c2, c3 = st.columns(3)
        # Help texts are the `train` options' own; defaults suit digits on a CPU.
        arch = {f.name: _arch_input(c1, f, main[f.name]) for f in arch_fields if f.name in main}
        with st.expander("More architecture options"):
            arch.update({f.name: _arch_input(st, f, f.name.replace("_", " ").capitalize())
                         for f in arch_fields if f.name not in main})
        # The family's own defaults where it has them (VQ-VAE: no warm-up, batch 128); keyed by family, so that
        # choosing another family shows its defaults, not the last one's values.
        own = getattr(arch_class(model), "RUN_DEFAULTS", {})
        warmup = c2.number_input("Warm-up epochs", 0, 5000, int(own.get("warmup_epochs", 50)), key=f"train_warmup_{model}",
                                 help=RunConfig.help("warmup_epochs"))
        epochs = c2.number_input("Epochs", 1, 5000, 150, key="train_epochs", help=RunConfig.help("epochs"))
        batch_size = c2.number_input("Batch size", 2, 4096, int(own.get("batch_size", 64)), key=f"train_batch_{model}",
                                     help=RunConfig.help("batch_size"))
        dataset = c3.selectbox("Dataset", offered, key="train_dataset",
                               help="the datasets whose files are on this server (digits is built in: 8x8, trains in "
                                    "seconds); where to put the others is said under the form")
        device = c3.selectbox("Device", DEVICES, key="train_device", help=RunConfig.help("device"))
        name = c3.text_input("Run name", value="", key="train_name", max_chars=64,
                             placeholder="empty: <dataset>-<model>-<layers>l-<n>",
                             help="left empty, the run is named after its dataset, model and layers")
        out_dir = st.selectbox("Runs folder", [str(d) for d in dirs], key="train_dir") if len(dirs) > 1 else str(dirs[0])
        submitted = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")
    missing = [f"**{d}**: {where}" for d, (found, where) in at_hand.items() if not found]
    if missing:
        st.caption("Not offered, their files are not on this server (`$LVAE_DATA_DIR`, else the repository's "
                   "`data/`; nothing is downloaded from here): " + "; ".join(missing) + ". They appear here "
                   "within seconds of being put there.")
    if not submitted:
        return
    request = {"model": model, **{k: v for k, v in arch.items() if v is not None}, "warmup_epochs": int(warmup),
               "dataset": dataset, "epochs": int(epochs), "batch_size": int(batch_size), "device": device,
               "name": name.strip() or free_name(dataset, model, _layers_of(model, arch, dataset))}
    try:
        cfg, out = jobs.validate_request(request, out_dir)
        job = jobs.submit_job(cfg, out)
    except (ValueError, OSError) as e:
        st.error(f"Not started: {e}")
        return
    what = f"**{out.name}** ({cfg.label}, {cfg.layers} layers, {cfg.dataset}) into `{out}`"
    if job.state == "queued":
        st.info(f"Queued {what}: {queue_text(job)}", icon=":material/hourglass_top:")
    elif job.state == "failed":
        st.error(f"Not started: {job.error_line()}")
    else:
        st.success(f"Started {what}.")


def queue_text(job: jobs.Queued) -> str:
    """Where a queued job stands, in words."""
    slots = jobs.scheduler.slots
    ahead = (job.position or 1) - 1
    line = "next in line" if not ahead else f"{ahead} job{'s' if ahead > 1 else ''} ahead of it"
    at_a_time = "one job trains" if slots == 1 else f"{slots} jobs train"
    return f"{line}; {at_a_time} at a time on this server, so the explorer stays quick for everyone. It starts by itself."


def show_job(job: jobs.Job) -> None:
    done, total = job.progress()
    status = job.state
    with st.container(border=True):
        head, stop = st.columns([5, 1])
        shown = f"queued, #{job.position} in line" if status == "queued" else status
        head.markdown(f"**{job.name}** · {job.cfg.label}, {job.cfg.layers} layers, {job.cfg.dataset} · {shown}")
        if status == "running":
            stop.button("Stop", key=f"train_stop_{job.name}", on_click=job.stop,
                        help="interrupt; the last checkpoint is kept")
        elif status == "queued":
            stop.button("Cancel", key=f"train_stop_{job.name}", on_click=job.stop, help="take it out of the queue")
            st.caption(f"Waiting: {queue_text(job)}")
            return
        if status == "cancelled":
            st.caption("Cancelled before it started.")
            return
        st.progress(done / total, text=f"{done} of {total} epochs" if done or status != "running" else
                    f"0 of {total} epochs: starting (loading PyTorch and the data, a few seconds)…")
        if status == "failed":
            st.error(f"Training failed: {job.error_line()}")
        elif status == "stopped":
            st.warning("Stopped; the last checkpoint is kept.")
        elif status == "done":
            took = f" in {elapsed(job)}" if elapsed(job) else ""
            st.success(f"Finished: {done} epochs{took}. The run is in every run list.", icon=":material/check_circle:")
            partner = partner_for(job.out, job.cfg)
            compare_button(str(job.out), partner, f"train_compare_{job.name}",
                           f"Compare {job.name} with {Path(partner).name}" if partner else f"Open {job.name} in Compare")
        try:
            size = (job.out / "history.jsonl").stat().st_size
        except OSError:
            return
        # While it runs: built at most once per LIVE_SECONDS for every session polling the page (a class
        # watches one job); then once for good.
        key = (str(job.out), common.LIVE, int(time.time() // common.LIVE_SECONDS)) if status == "running" \
            else (str(job.out), size)
        fig = common.shared("train_live", key, lambda: live_curve(job))
        if fig is not None:
            st.plotly_chart(fig, key=f"train_live_{job.name}", width="stretch")


def live_curve(job: jobs.Job):
    """The job's training ELBO so far, or None before its first epoch (or mid-write: the next poll)."""
    return elbo_curves({job.name: job.out})


def elbo_curves(runs: dict[str, Path]):
    """The runs' training ELBO so far, one curve each; None before any epoch (or mid-write: the next poll)."""
    hists = {}
    for name, out in runs.items():
        try:
            hist = load_history(out)
        except Exception:  # noqa: BLE001  a torn file mid-write, or not started yet
            continue
        if not hist.empty and "train_elbo" in hist:
            hists[name] = hist
    if not hists:
        return None
    from explorer.figures import training_curves
    fig = training_curves(hists, "train_elbo")
    fig.update_layout(height=260, margin=dict(t=30, b=10))
    return fig


def elapsed(job: jobs.Queued) -> str | None:
    """How long a job ran, in words (None if it never started)."""
    if job.started is None:
        return None
    seconds = (job.finished or time.time()) - job.started
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def partner_for(path: Path, cfg: RunConfig) -> str | None:
    """A run to compare a new one with: on the same dataset, preferably of the other model (VAE vs LVAE)."""
    others = [r for r in common.ok_runs() if r.path.resolve() != Path(path).resolve()
              and r.config is not None and r.config.dataset == cfg.dataset]
    others.sort(key=lambda r: (r.config.model == cfg.model, r.config.layers != cfg.layers))
    return str(others[0].path) if others else None


def compare_button(a: str, b: str | None, key: str, label: str) -> None:
    """A button that opens the Compare page with run a (and b) picked."""
    if st.button(label, key=key, icon=":material/compare_arrows:", type="primary"):
        st.session_state[common.COMPARED[0]] = a
        if b is not None:
            st.session_state[common.COMPARED[1]] = b
        for widget in ("compare_run_a", "compare_run_b"):  # the pickers follow compare_a/b, not an old choice
            st.session_state.pop(widget, None)
        runs_mod.forget_discovery()  # the new run is in Compare's lists at once
        st.switch_page("app_pages/compare.py")


DEMO_LESSON = ("What to expect: over five seeds of these settings (`python benchmarks/active_units_digits.py`) the "
               "Ladder VAE kept more active units above layer 2 than the VAE on three, and more KL there on three; "
               "on 8x8 digits those layers carry tenths of a nat at most, so the lesson is fragile here. The pair "
               "trains with seed 1, where it is clearest; the shipped MNIST pair shows it on every measure.")


def demo() -> None:
    """The digits demo pair (`python -m training demo`): trained only when asked for, one job per server."""
    out = common.writable_runs_dirs()[0]
    job = jobs.demo
    if job is None or not job.pending:
        if job is not None and job.state == "done":
            paths = [str(job.out / name) for name in DEMO_RUNS]
            took = f" in {elapsed(job)}" if elapsed(job) else ""
            st.success(f"The digits demo pair is trained{took}, into `{job.out}`.", icon=":material/check_circle:")
            compare_button(paths[0], paths[1], "train_demo_compare", "Compare the pair")
        st.caption(f"VAE+BN+WU and LVAE+BN+WU with 5 layers on scikit-learn's 8x8 digits, into `{out}`: about a "
                   "minute on two cores, offline. Runs already there are kept. " + DEMO_LESSON)
        if st.button("Train the digits demo pair", key="train_demo", icon=":material/play_arrow:"):
            try:
                jobs.start_demo_once(out)
            except OSError as e:  # e.g. a read-only folder: say so, the app still works
                st.error(f"Cannot start the demo training in {out}: {e}")
                return
            st.rerun()
        if job is not None and job.state == "failed":
            st.error(f"Demo training failed: {job.error_line()} (log: {job.log})")
        return

    @st.fragment(run_every=1.0)
    def progress() -> None:
        if not job.pending:
            common.rerun_with_new_runs()  # ended: the whole app, so every run list has the pair
        if job.state == "queued":
            st.caption(f"The digits demo pair is queued: {queue_text(job)}")
            return
        ready = job.ready_runs()
        if ready != st.session_state.setdefault("demo_ready", set()):
            st.session_state["demo_ready"] = ready
            common.rerun_with_new_runs()  # a demo run saved its first checkpoint: let every list show it
        done, total = job.progress()
        text = (f"Training the digits demo pair into {job.out}: {done} of {total} epochs. The other pages show it "
                "as its checkpoints arrive.") if done else \
            "Starting the two training processes (loading PyTorch, a few seconds)…"
        st.progress(done / total, text=text)
        runs = {name: job.out / name for name in DEMO_RUNS}
        fig = common.shared("train_demo_live", (str(job.out), common.LIVE, int(time.time() // common.LIVE_SECONDS)),
                            lambda: elbo_curves(runs))
        if fig is not None:
            st.plotly_chart(fig, key="train_demo_live", width="stretch")

    progress()


def job_list() -> None:
    if not jobs.submitted:
        st.caption("No runs started from the form above yet.")
        return
    pending = sum(j.pending for j in jobs.all_jobs())

    @st.fragment(run_every=POLL_SECONDS if pending else None)
    def live() -> None:
        for job in sorted(jobs.all_jobs(), key=lambda j: -j.submitted):
            show_job(job)
        if sum(j.pending for j in jobs.all_jobs()) < pending:
            # A job ended (the next may have started): the whole page, so its run is in every list and the
            # timer stops when nothing is left.
            common.rerun_with_new_runs()

    live()


st.header("Train a model")
if (problem := common.training_slots()[1]) is not None:
    st.warning(problem)
st.caption("Trains in a background process (`python -m training train`); the app stays usable and the new run "
           "appears in every run list when it has saved a checkpoint. The server trains "
           + ("one job" if jobs.scheduler.slots == 1 else f"{jobs.scheduler.slots} jobs")
           + " at a time, at low priority; later ones wait in a queue and start by themselves.")
form()
st.subheader("The digits demo pair")
demo()
st.subheader("Jobs")
job_list()
