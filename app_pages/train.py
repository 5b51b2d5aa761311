"""Train: a form that starts `python -m training train` in the background, then its progress and live curves."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import common
from explorer import jobs
from explorer.runs import load_history
from training.config import DATASETS, DEVICES, MAX_LAYERS, MODELS, RunConfig

POLL_SECONDS = 2.0


def free_name(model: str, layers: int) -> str:
    taken = {r.name for r in common.all_runs()} | set(jobs.started)
    n = 1
    while f"digits-{model}-{layers}l-{n}" in taken:
        n += 1
    return f"digits-{model}-{layers}l-{n}"


def form() -> None:
    dirs = common.writable_runs_dirs()  # never into the shipped pretrained/
    with st.form("train_form"):
        c1, c2, c3 = st.columns(3)
        # Help texts are RunConfig's own (the `train` options'); defaults suit digits on a CPU.
        model = c1.selectbox("Model", MODELS, index=MODELS.index("lvae"), key="train_model", help=RunConfig.help("model"),
                             format_func=lambda m: {"vae": "VAE (bottom-up inference)", "lvae": "Ladder VAE"}[m])
        layers = c1.number_input("Stochastic layers", 1, MAX_LAYERS, 5, key="train_layers", help=RunConfig.help("layers"))
        batch_norm = c1.checkbox("Batch normalization", value=True, key="train_bn", help=RunConfig.help("batch_norm"))
        warmup = c2.number_input("Warm-up epochs", 0, 5000, 50, key="train_warmup", help=RunConfig.help("warmup_epochs"))
        epochs = c2.number_input("Epochs", 1, 5000, 150, key="train_epochs", help=RunConfig.help("epochs"))
        batch_size = c2.number_input("Batch size", 2, 4096, 64, key="train_batch", help=RunConfig.help("batch_size"))
        dataset = c3.selectbox("Dataset", DATASETS, key="train_dataset",
                               help=RunConfig.help("dataset") + " (digits: 8x8, trains in seconds)")
        device = c3.selectbox("Device", DEVICES, key="train_device", help=RunConfig.help("device"))
        name = c3.text_input("Run name", value=free_name("lvae", 5), key="train_name", max_chars=64)
        out_dir = st.selectbox("Runs folder", [str(d) for d in dirs], key="train_dir") if len(dirs) > 1 else str(dirs[0])
        submitted = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")
    if not submitted:
        return
    request = {"model": model, "layers": int(layers), "batch_norm": batch_norm, "warmup_epochs": int(warmup),
               "dataset": dataset, "epochs": int(epochs), "batch_size": int(batch_size), "device": device,
               "name": name.strip()}
    try:
        cfg, out = jobs.validate_request(request, out_dir)
        jobs.start_job(cfg, out)
    except (ValueError, OSError) as e:
        st.error(f"Not started: {e}")
        return
    st.success(f"Started **{out.name}** ({cfg.label}, {cfg.layers} layers, {cfg.dataset}) into `{out}`.")


def show_job(job: jobs.Job) -> None:
    done, total = job.progress()
    status = job.status
    with st.container(border=True):
        head, stop = st.columns([5, 1])
        head.markdown(f"**{job.name}** · {job.cfg.label}, {job.cfg.layers} layers, {job.cfg.dataset} · {status}")
        if status == "running":
            stop.button("Stop", key=f"train_stop_{job.name}", on_click=job.stop,
                        help="interrupt; the last checkpoint is kept")
        st.progress(done / total, text=f"{done} of {total} epochs")
        if status == "failed":
            st.error(f"Training failed: {job.error_line()}")
        elif status == "stopped":
            st.warning("Stopped; the last checkpoint is kept.")
        try:
            hist = load_history(job.out)
        except Exception:  # noqa: BLE001  a torn file mid-write: next poll
            hist = pd.DataFrame()
        if not hist.empty and "train_elbo" in hist:
            from explorer.figures import training_curves
            fig = training_curves({job.name: hist}, "train_elbo")
            fig.update_layout(height=260, margin=dict(t=30, b=10))
            st.plotly_chart(fig, key=f"train_live_{job.name}", width="stretch")


def demo() -> None:
    """The digits demo pair (`python -m training demo`): trained only when asked for, one job per server."""
    out = common.writable_runs_dirs()[0]
    job = jobs.demo
    if job is None or job.poll() is not None:
        st.caption(f"VAE+BN+WU and LVAE+BN+WU with 5 layers on scikit-learn's 8x8 digits, into `{out}`: about a "
                   "minute on two cores, offline. Runs already there are kept.")
        if st.button("Train the digits demo pair", key="train_demo", icon=":material/play_arrow:"):
            try:
                jobs.start_demo_once(out)
            except OSError as e:  # e.g. a read-only folder: say so, the app still works
                st.error(f"Cannot start the demo training in {out}: {e}")
                return
            st.rerun()
        if job is not None and job.poll() not in (None, 0):
            st.error(f"Demo training failed: {job.error_line()} (log: {job.log})")
        return

    @st.fragment(run_every=1.0)
    def progress() -> None:
        if job.poll() is not None:
            st.rerun()  # ended: the whole app, so every run list has the pair
        ready = job.ready_runs()
        if ready != st.session_state.setdefault("demo_ready", set()):
            st.session_state["demo_ready"] = ready
            st.rerun()  # a demo run saved its first checkpoint: let every list show it
        done, total = job.progress()
        st.progress(done / total, text=f"Training the digits demo pair into {job.out}: {done} of {total} epochs. "
                                       "The other pages show it as its checkpoints arrive.")

    progress()


def job_list() -> None:
    if not jobs.started:
        st.caption("No jobs started from this app yet.")
        return
    running = any(j.running for j in jobs.started.values())

    @st.fragment(run_every=POLL_SECONDS if running else None)
    def live() -> None:
        for job in sorted(jobs.started.values(), key=lambda j: -j.started):
            show_job(job)
        if running and not any(j.running for j in jobs.started.values()):
            st.rerun()  # a job ended: rerun the app so the new run appears in every list

    live()


st.header("Train a model")
st.caption("Trains in a background process (`python -m training train`); the app stays usable and the new run "
           "appears in every run list when it has saved a checkpoint.")
form()
st.subheader("The digits demo pair")
demo()
st.subheader("Jobs")
job_list()
