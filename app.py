"""lvae-explorer: see what each latent layer of a VAE and a Ladder VAE learned (Sønderby et al. 2016).

    streamlit run app.py [-- --runs-dir DIR [--runs-dir DIR2]]

Runs come from ./runs, every --runs-dir and the folders in $LVAE_RUNS_DIR.
On first start, with no usable run anywhere, the demo pair
(`python -m training demo`) trains in the background with a progress bar;
the pages fill in as soon as it has saved checkpoints.
"""
from __future__ import annotations

import streamlit as st

from app_pages import common
from explorer import trainer

st.set_page_config(page_title="LVAE explorer", page_icon=":material/layers:", layout="wide")

PAGES = [
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:", default=True),
    st.Page("app_pages/layers.py", title="Layers", icon=":material/scatter_plot:", url_path="layers"),
    st.Page("app_pages/traverse.py", title="Traverse", icon=":material/tune:", url_path="traverse"),
    st.Page("app_pages/history.py", title="Training", icon=":material/show_chart:", url_path="training"),
    st.Page("app_pages/samples.py", title="Samples", icon=":material/grid_view:", url_path="samples"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
]


@st.cache_resource
def freeze_heap() -> bool:
    """Streamlit runs gc.collect(2) after every script and fragment run (runner.postScriptGC); with torch,
    plotly and pandas loaded that full collection costs ~150 ms of CPU per slider move. Moving the objects
    that live as long as the process (modules, cached models) into the permanent generation makes it cheap
    (measured with benchmarks/load_test.py: slider p50 2.1 s -> 0.37 s under 20 sessions)."""
    import gc

    import plotly.graph_objects  # noqa: F401  the heavy imports the pages make, loaded before the freeze
    import sklearn.decomposition  # noqa: F401

    import explorer.figures  # noqa: F401
    from explorer.encode import limit_threads
    limit_threads()  # once per process: per-request thread changes would leak between sessions
    gc.collect()
    gc.freeze()
    return True


freeze_heap()


@st.cache_resource
def demo_holder() -> dict:
    """The first-run demo job, one per server process (shared by every browser session)."""
    return {"job": None}


def first_run(runs: list) -> None:
    """Train the demo pair when there is no usable run anywhere; show its progress while it trains."""
    holder = demo_holder()
    job = holder["job"]
    if job is None and not any(r.ok for r in runs) and not holder.get("failed"):
        try:
            job = holder["job"] = trainer.start_demo(common.runs_dirs()[0])
        except OSError as e:  # e.g. a read-only folder: say so once, the app still works
            holder["failed"] = f"cannot start the demo training in {common.runs_dirs()[0]}: {e}"
    if holder.get("failed"):
        st.error(holder["failed"])
    if job is None:
        return

    @st.fragment(run_every=1.0 if job.poll() is None else None)
    def progress() -> None:
        code = job.poll()
        if code is None:
            ready = job.ready_runs()
            if ready != st.session_state.setdefault("demo_ready", set()):
                st.session_state["demo_ready"] = ready
                st.rerun()  # a demo run saved its first checkpoint: let the page show it
            done, total = job.progress()
            st.progress(done / total, text=f"First start: training the demo pair (VAE+BN+WU and LVAE+BN+WU, "
                                           f"5 layers, digits) into {job.out}: {done} of {total} epochs. "
                                           "The pages fill in as checkpoints arrive.")
        elif code == 0:
            holder["job"] = None
            st.rerun()  # the whole app: every run list now has the pair
        else:
            st.error(f"Demo training failed: {job.error_line()} (log: {job.log})")
            if st.button("Try again", key="demo_retry"):
                holder["job"] = None
                st.rerun()

    progress()


def sidebar(runs: list) -> None:
    with st.sidebar:
        broken = sum(not r.ok for r in runs)
        st.caption(f"**{len(runs)} run{'s' if len(runs) != 1 else ''}**" + (f" ({broken} broken)" if broken else "")
                   + " in " + ", ".join(f"`{d}`" for d in common.runs_dirs()))
        running = [j for j in trainer.jobs.values() if j.running]
        if running:
            st.caption("Training: " + ", ".join(j.name for j in running))


pg = st.navigation(PAGES)
runs = common.all_runs()
sidebar(runs)
first_run(runs)
pg.run()
