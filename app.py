"""lvae-explorer: see what each latent layer of a VAE and a Ladder VAE learned (Sønderby et al. 2016).

    streamlit run app.py [-- --runs-dir DIR [--runs-dir DIR2]]

Runs come from ./runs, every --runs-dir, the folders in $LVAE_RUNS_DIR and the shipped pretrained/
(the paper's 5-layer VAE+BN+WU and LVAE+BN+WU on MNIST, which the Compare page opens on, an NVAE, a VDVAE and a VQ-VAE). Nothing
trains by itself: the digits demo pair trains from the "Train a model" page, or `python -m training demo`.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

# Before anything else, the heavy imports included: the browser tab carries the app's name from the
# first message, and the first screen says what the app is while PyTorch loads. The tab icon is a file of
# ours: a Material or emoji icon there is fetched from a font server, which a class offline never reaches.
st.set_page_config(page_title="LVAE explorer", page_icon=str(Path(__file__).parent / "app_pages/frontend/icon.png"),
                   layout="wide")
st.sidebar.markdown("### LVAE explorer\nSee what each latent layer of a VAE and a Ladder VAE learned "
                    "(Sønderby et al. 2016, *Ladder Variational Autoencoders*).")

with st.spinner("LVAE explorer is starting: loading PyTorch and plotly…"):  # seconds on the first start only
    from app_pages import common  # noqa: E402
    from app_pages.glossary import glossary  # noqa: E402
    from explorer import jobs  # noqa: E402

PAGES = [
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:", default=True),
    st.Page("app_pages/layers.py", title="Layers", icon=":material/scatter_plot:", url_path="layers"),
    st.Page("app_pages/traverse.py", title="Traverse", icon=":material/tune:", url_path="traverse"),
    st.Page("app_pages/paths.py", title="Paths", icon=":material/timeline:", url_path="paths"),
    st.Page("app_pages/curves.py", title="Curves", icon=":material/show_chart:", url_path="curves"),
    st.Page("app_pages/samples.py", title="Samples", icon=":material/grid_view:", url_path="samples"),
    st.Page("app_pages/depth.py", title="Depth", icon=":material/layers:", url_path="depth"),
    st.Page("app_pages/codes.py", title="Codes", icon=":material/grid_on:", url_path="codes"),
    st.Page("app_pages/train.py", title="Train a model", icon=":material/model_training:", url_path="train"),
]


@st.cache_resource(show_spinner="Starting: preparing the explorer…")
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


def sidebar(runs: list) -> None:
    with st.sidebar:
        broken = sum(not r.ok for r in runs)
        st.caption(f"**{len(runs)} run{'s' if len(runs) != 1 else ''}**" + (f" ({broken} broken)" if broken else "")
                   + " in " + ", ".join(f"`{d}`" for d in common.runs_dirs()))
        running = [j.name for j in jobs.all_jobs() if j.running]
        if jobs.demo is not None and jobs.demo.running:
            running.append("the digits demo pair")
        queued = len(jobs.scheduler.waiting)
        if running or queued:
            st.caption("Training: " + (", ".join(running) or "nothing yet")
                       + (f" ({queued} queued)" if queued else ""))
        glossary()


jobs.scheduler.slots = common.training_slots()[0]
pg = st.navigation(PAGES)
sidebar(common.all_runs())
pg.run()
