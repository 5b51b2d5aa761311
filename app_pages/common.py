"""What every page shares: the runs folders, run pickers, cached models/encodings, charts with CSV, images.

Caches are keyed on (run path, checkpoint mtime, ...) so a run that trains on
in the background is reloaded when it saves, and nothing else ever is.
Models and arrays are cached as resources (one shared object per process, no
copies on a hit): callers never modify what they get.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from explorer import encode as encode_mod
from explorer import runs as runs_mod
from explorer.figures.frozen import freeze
from explorer.runs import RunInfo, default_pair

SELECTED = "selected_run"          # session_state: the run the single-run pages show (its path)
COMPARED = ("compare_a", "compare_b")  # session_state: the Compare page's two runs (paths)
TEST_POINTS = 5000                 # test points the Layers/Traverse pages encode (fewer if the test set is smaller)


# ---- runs --------------------------------------------------------------------

def _app_args() -> argparse.Namespace:
    """`streamlit run app.py -- --runs-dir DIR --training-slots N`; anything else is ignored."""
    return _parse_app_args(tuple(sys.argv[1:]))


@functools.lru_cache(maxsize=4)  # every rerun asks: building the parser was 4 of the landing page's 50 ms
def _parse_app_args(argv: tuple[str, ...]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs-dir", action="append", default=[])
    parser.add_argument("--training-slots", default=None)
    args, _ = parser.parse_known_args(argv)
    return args


def cli_runs_dirs() -> list[str]:
    """`--runs-dir DIR` (repeatable)."""
    return list(_app_args().runs_dir)  # a copy: the parsed arguments are shared by every rerun


def training_slots() -> tuple[int, str | None]:
    """How many training jobs run at once (`--training-slots N`, else $LVAE_TRAINING_SLOTS, else 1; the rest
    queue): one suits a two-core server shared by a class. A value that is not a whole number from 1 to 64
    counts as 1, with the reason (the Train page shows it)."""
    value = _app_args().training_slots or os.environ.get("LVAE_TRAINING_SLOTS") or "1"
    try:
        slots = int(value)
    except ValueError:
        slots = 0
    if 1 <= slots <= 64:
        return slots, None
    return 1, f"training slots must be a whole number from 1 to 64, not {value!r}: using 1"


def runs_dirs() -> list[Path]:
    return runs_mod.runs_dirs(cli_runs_dirs())


def writable_runs_dirs() -> list[Path]:
    """Where the app may train: every runs folder but the shipped pretrained/."""
    return runs_mod.writable_runs_dirs(cli_runs_dirs())


# A new, changed or removed run shows within this many seconds; every session's reruns share one look.
DISCOVERY_SECONDS = 1.0


def rerun_with_new_runs() -> None:
    """st.rerun() after a run changed on disk (a checkpoint saved, a job ended): the rerun looks afresh."""
    runs_mod.forget_discovery()
    st.rerun()


def all_runs() -> list[RunInfo]:
    """Every run under the runs folders, broken ones included (discovery caches its validation itself)."""
    return runs_mod.discover_runs(runs_dirs(), max_age=DISCOVERY_SECONDS)


def ok_runs() -> list[RunInfo]:
    return [r for r in all_runs() if r.ok]


def _option_label(run: RunInfo) -> str:
    return run.label if run.ok else f"⚠ {run.name} · broken"


def pick_run(label: str, key: str, remember: str = SELECTED, default: RunInfo | None = None,
             container: Any = st) -> RunInfo | None:
    """A run selectbox over every run (broken ones marked); the choice is remembered across pages.

    Returns None (after a warning) when there are no runs or a broken one is chosen, so the caller shows nothing.
    """
    runs = all_runs()
    if not runs:
        container.info("No runs yet: the shipped MNIST pair is not in `pretrained/`. Train the digits demo pair "
                       "(about a minute) or any run on the **Train a model** page.")
        return None
    paths = [str(r.path) for r in runs]
    wanted = st.session_state.get(remember) or (str(default.path) if default else None)
    if wanted not in paths:
        wanted = next((str(r.path) for r in runs if r.ok), paths[0])
    by_path = {str(r.path): r for r in runs}
    choice = container.selectbox(label, paths, index=paths.index(wanted), key=key,
                                 format_func=lambda p: _option_label(by_path[p]))
    st.session_state[remember] = choice
    run = by_path[choice]
    if not run.ok:
        container.warning(f"**{run.name}** cannot be shown: {run.error}")
        return None
    return run


def default_other(run: RunInfo, others: list[RunInfo]) -> RunInfo | None:
    """The run to show beside `run` first: one of Compare's pair as last picked, else of the pair Compare opens
    on (the shipped VAE and LVAE), else the first other run."""
    compared = [st.session_state.get(k) for k in COMPARED]
    pair = [r for r in default_pair(others + [run]) if r is not None and r.path != run.path]
    return next((r for r in others if str(r.path) in compared), (pair or others or [None])[0])


def second_run(run: RunInfo, page: str, label: str, help: str) -> RunInfo | None:
    """A run to show beside `run` on a page, or None: a toggle, then a picker (default: the other run of the
    Compare page's pair); keys "<page>_beside" and "<page>_run_b"."""
    if not st.toggle(label, key=f"{page}_beside", help=help):
        return None
    default = default_other(run, [r for r in ok_runs() if r.path != run.path])
    other = pick_run("Second run", f"{page}_run_b", remember=f"{page}_second", default=default)
    if other is not None and other.path == run.path:
        st.info("Pick another run than the first to see the two side by side.")
        return None
    return other


def layer_names(n: int) -> list[str]:
    return [f"z{i + 1}" for i in range(n)]


def active_units_of(run: RunInfo) -> list[int]:
    """Active units per layer as the run's final numbers have them: its eval.json (BN statistics recomputed)
    when it holds them, else the last evaluation in its history; [] when neither does."""
    ev = run.evaluation
    if ev and isinstance(ev.get("active_units"), list):
        return [int(u) for u in ev["active_units"]]
    return [int(u) for u in (last_with(history_for(run), "active_units") or [])]


def highest_active_layer(active: list[int], layers: int) -> int:
    """The highest layer with active units (active_units_of; a collapsed layer decodes to one image whatever
    its code): where Traverse and Paths open. The top layer when nothing is known."""
    return max((i for i, n in enumerate(active[:layers]) if n > 0), default=layers - 1)


def layer_option(i: int, active: list[int], units: int | None = None) -> str:
    """A layer as offered in pickers: "z3 (16 units)", or "z5 (4 units) · collapsed" when none is active."""
    size = f" ({units} units)" if units is not None else ""
    return f"z{i + 1}{size}" + (" · collapsed" if i < len(active) and active[i] == 0 else "")


def collapsed_note(i: int, active: list[int]) -> None:
    """A warning when layer i has no active unit: whatever is done to its code, the images barely change."""
    if i < len(active) and active[i] == 0:
        st.warning(f"z{i + 1} is collapsed: none of its units is active (A_u > 0.01), so the posterior ignores the "
                   "image there and moving its code changes the decoded image little or not at all. The layers "
                   "marked collapsed in the picker are such layers.", icon=":material/blur_off:")


def follow_training(runs: list[RunInfo], seconds: float = 2.0) -> None:
    """While a background job ("Train a model" page) writes any of `runs`, rerun the page when it saves a checkpoint,
    so charts follow the training instead of staying at the checkpoint the page first saw."""
    from explorer import jobs
    watched = {r.path.resolve(): r.stamp for r in runs if r is not None and jobs.is_training(r.path)}
    if not watched:
        return

    @st.fragment(run_every=seconds)
    def watch() -> None:
        if any(runs_mod.checkpoint_stamp(path) != stamp for path, stamp in watched.items()) \
                or not any(jobs.is_training(path) for path in watched):
            rerun_with_new_runs()  # the whole page, with the new checkpoint (or the final one)

    watch()


# ---- cached computations ----------------------------------------------------------

@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def model_of(path: str, stamp: float) -> Any:
    """The run's model in eval mode, loaded once per process per checkpoint version."""
    model, _, _ = runs_mod.load_model(Path(path), "cpu")
    return model


def model_for(run: RunInfo) -> Any:
    return model_of(str(run.path), run.stamp)


def pooling_note_of(run: RunInfo) -> str:
    """What the Layers projections plot of a spatial hierarchy's large layers (explorer.spatial.pooling_note)."""
    from explorer.spatial import pooling_note
    return pooling_note(model_for(run))


@st.cache_resource(max_entries=8, show_spinner="Loading test images…")
def points_of(path: str, stamp: float, n: int) -> Any:
    from explorer.encode import test_points
    return test_points(model_of(path, stamp).cfg, Path(path), n)


def test_points_or_error(run: RunInfo) -> Any:
    """The run's TEST_POINTS test points, or None after an error box saying why there are none."""
    try:
        return points_of(str(run.path), run.stamp, TEST_POINTS)
    except Exception as e:  # noqa: BLE001 - no test images at hand is the user's situation: said, not a crash
        st.error(f"Cannot load test images for {run.name}: {e}")
        return None


@st.cache_resource(max_entries=8, show_spinner="Encoding the test images layer by layer…")
def encoding_of(path: str, stamp: float, n: int) -> Any:
    """The posterior means and variances of the first n points (samples: samples_of, only when shown)."""
    from explorer.encode import encode
    with torch.inference_mode():
        return encode(model_of(path, stamp), points_of(path, stamp, n).images, samples=False)


@st.cache_resource(max_entries=8, show_spinner="Drawing one posterior sample of each test image…")
def samples_of(path: str, stamp: float, n: int) -> list:
    from explorer.encode import posterior_samples
    with torch.inference_mode():
        return posterior_samples(model_of(path, stamp), points_of(path, stamp, n).images)


def codes_of(path: str, stamp: float, n: int, use_means: bool) -> list:
    """Per layer the plotted codes of the first n points: posterior means, or one posterior sample each."""
    return encoding_of(path, stamp, n).means if use_means else samples_of(path, stamp, n)


ENCODE_BUDGET_S = encode_mod.ENCODE_BUDGET_S


@st.cache_resource(max_entries=16, show_spinner=False)
def encode_cost_of(path: str, stamp: float) -> float:
    """Seconds per image to encode with the run's model on this server (measured once per model)."""
    from explorer.encode import encode_seconds_per_image
    with torch.inference_mode():
        return encode_seconds_per_image(model_of(path, stamp), points_of(path, stamp, 256).images)


def points_within_budget(path: str, stamp: float, sizes: list[int]) -> int:
    """The largest of `sizes` whose encoding takes at most ENCODE_BUDGET_S (the smallest if none does)."""
    return encode_mod.points_within_budget(encode_cost_of(path, stamp), sizes)


POINT_SIZES = encode_mod.POINT_SIZES


def point_sizes(run: RunInfo) -> list[int]:
    """The numbers of test points a page may encode for a run: POINT_SIZES below what it has, and all of them."""
    available = len(points_of(str(run.path), run.stamp, TEST_POINTS).labels)
    return [v for v in POINT_SIZES if v < available] + [available]


def encoded_points(run: RunInfo) -> int:
    """How many test points Traverse and Paths encode for a run (and Layers opens on): all of them (up to
    TEST_POINTS), or fewer where its model encodes them slower than ENCODE_BUDGET_S allows."""
    return points_within_budget(str(run.path), run.stamp, point_sizes(run))


@st.cache_resource(max_entries=16, show_spinner="PCA of every layer…")
def pcas_of(path: str, stamp: float, n: int, use_means: bool, k: int = 3) -> list:
    from explorer.encode import layer_pca
    return [layer_pca(z, k) for z in codes_of(path, stamp, n, use_means)]


_projected: set[tuple] = set()  # projection_of's keys computed in this process: no progress bar for those


@st.cache_resource(max_entries=64, show_spinner=False)
def projection_of(path: str, stamp: float, n: int, use_means: bool, method: str, layer: int, k: int = 2) -> Any:
    """One layer's projection (explorer.projections), once per server for every session."""
    from explorer.projections import project
    out = project(codes_of(path, stamp, n, use_means)[layer], method, k)
    _projected.add((path, stamp, n, use_means, method, layer, k))
    return out


def projections(run: RunInfo, n: int, use_means: bool, method: str, k: int = 2) -> list:
    """Every layer's projection; a progress bar while UMAP or t-SNE runs (seconds per layer, then cached),
    none when all were computed before (a bar on every rerun would flash)."""
    layers = model_for(run).n_layers
    keys = [(str(run.path), run.stamp, n, use_means, method, i, k) for i in range(layers)]
    fresh = method != "PCA" and not all(key in _projected for key in keys)
    bar = st.progress(0.0, text=f"{method} of every layer…") if fresh else None
    out, started = [], time.perf_counter()
    for i in range(layers):
        if bar is not None:
            spent = time.perf_counter() - started
            left = f", about {spent / i * (layers - i):.0f} s left" if i else ""  # at the pace of the layers done
            bar.progress(i / layers, text=f"{method} of z{i + 1} ({i + 1} of {layers}{left}; computed once, then "
                                          "shared)…")
        out.append(projection_of(*keys[i]))
    if bar is not None:
        bar.empty()
    return out


@st.cache_resource(max_entries=16, show_spinner=False)
def layer_stats_of(path: str, stamp: float, n: int, use_means: bool) -> tuple[list[int], list[np.ndarray]]:
    """Per layer: units active (from the posterior means, whichever codes are plotted: a sample's own noise is
    not activity, and would make every collapsed layer look used), and the prior's sd along PC1-3 of the
    plotted codes (axis yardsticks)."""
    from explorer.encode import active_counts, prior_sd_along
    enc = encoding_of(path, stamp, n)
    pcas = pcas_of(path, stamp, n, use_means)
    return (active_counts(enc.means),
            [prior_sd_along(p.components, v) for p, v in zip(pcas, enc.prior_variances)])


def rows_of(points: Any, test_indices: Any) -> np.ndarray:
    """The rows of `points` whose test-set positions are in test_indices (in row order)."""
    if test_indices is None or not len(test_indices):
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.isin(points.index, np.asarray(test_indices, dtype=np.int64)))


def row_of_test_image(points: Any, test_index: int) -> int:
    """The row of the shown point that is test image `test_index` (it must be one of them)."""
    return int(np.flatnonzero(points.index == int(test_index))[0])


def snap_to_shown(points: Any, wanted: int, last: int | None) -> int:
    """The shown test image nearest to `wanted` in the direction it moved from `last` (so the number input's
    - and + step through the shown ones), or `wanted` itself when it is shown."""
    shown = np.sort(points.index)
    if wanted in set(shown.tolist()):
        return int(wanted)
    if last is not None and wanted < last:
        below = shown[shown < wanted]
        return int(below[-1]) if below.size else int(shown[0])
    above = shown[shown > wanted]
    return int(above[0]) if above.size else int(shown[-1])


def test_image_input(label: str, points: Any, key: str, container: Any = st, default_row: int = 0,
                     help: str | None = None) -> int:
    """A number input of test images by their position in the test set, the one number every page, hover and
    file uses; returns the chosen point's row. A number that is not among the points shown (a class-balanced
    sample) moves to the nearest shown one, and the page says so."""
    wanted = st.session_state.get(key)
    last = st.session_state.get(f"{key}_last")
    if wanted is None:
        wanted = int(points.index[min(default_row, len(points.index) - 1)])
    chosen = snap_to_shown(points, int(wanted), last)
    st.session_state[key] = st.session_state[f"{key}_last"] = chosen  # before the widget: allowed
    container.number_input(label, 0, int(points.index.max()), key=key, step=1,
                           help=help or f"its position in the test set; {len(points.index):,} of them are shown here")
    if chosen != wanted:
        container.caption(f"Test image {wanted} is not among the {len(points.index):,} shown: test image {chosen}.")
    return row_of_test_image(points, chosen)


def chart_selection(event: Any) -> tuple[str, list[int]]:
    """A plotly chart's selection event as ("box"/"lasso", ids), ("click", ids) or ("clear", []): ids are the
    points' customdata (the Layers grids: their test-set positions)."""
    sel = (event or {}).get("selection", {}) or {}
    rows = []
    for p in sel.get("points", []) or []:
        data = p.get("customdata")
        data = data[0] if isinstance(data, (list, tuple)) else data
        if data is not None:
            rows.append(int(data))
    if not rows:
        return "clear", []
    kind = "box" if sel.get("box") else "lasso" if sel.get("lasso") else "click"
    return kind, sorted(set(rows))


@st.cache_resource(max_entries=8, show_spinner="Indexing every layer's codes for neighbour search…")
def neighbour_indexes_of(path: str, stamp: float, n: int, k: int) -> tuple[list, list[float], list[np.ndarray]]:
    """Per layer a k-NN index of the posterior means, its k-NN label agreement and every point's k neighbours,
    once per server."""
    from explorer.neighbours import LayerIndex, label_agreement
    enc = encoding_of(path, stamp, n)
    labels = points_of(path, stamp, n).labels
    indexes = [LayerIndex(z) for z in enc.means]
    tables = [ix.all_neighbours(k) for ix in indexes]
    return indexes, [label_agreement(t, labels) for t in tables], tables


# Information per layer, once per server for every session, in a cache of its own: its progress bar is an
# element made outside the computation, which a Streamlit cache decorator refuses (it could not replay it).
_information: OrderedDict[tuple, Any] = OrderedDict()
_information_lock = threading.Lock()
INFORMATION_ENTRIES = 8


def information_of(path: str, stamp: float, n: int, progress: Callable[[float], None] | None = None) -> Any:
    """explorer.information.layer_information of the run's shown test points, once per server."""
    from explorer.information import layer_information
    key = (path, stamp, n)
    with _information_lock:  # one computation at a time: two sessions asking at once share the first's
        if key not in _information:
            _information[key] = layer_information(model_of(path, stamp), points_of(path, stamp, n).images,
                                                  progress=progress)
            while len(_information) > INFORMATION_ENTRIES:
                _information.popitem(last=False)
        _information.move_to_end(key)
        return _information[key]


def information_with_progress(runs: Sequence[RunInfo], n: int) -> None:
    """information_of for every run, under a progress bar with the time left when any is computed now (seconds
    on MNIST-size runs; none on a rerun, where a bar would flash)."""
    fresh = [r for r in runs if (str(r.path), r.stamp, n) not in _information]
    if not fresh:
        return
    bar = ProgressWithTimeLeft("Rate, distortion, activity and mutual information per layer", parts=len(fresh))
    for r in fresh:
        information_of(str(r.path), r.stamp, n, progress=bar)
        bar.next_part()
    bar.done()


@st.cache_data(max_entries=16, show_spinner=False)
def iw_bounds_of(path: str, stamp: float, n: int, ks: tuple[int, ...], _progress: Callable | None = None) -> dict:
    """The IW-K bounds (mean, SE) of log p(x) for each K on n of the run's test points."""
    from explorer.information import iw_bounds
    return iw_bounds(model_of(path, stamp), points_of(path, stamp, n).images, ks, progress=_progress)


@st.cache_resource(max_entries=32, show_spinner=False)
def history_of(path: str, stamp: float, size: int) -> pd.DataFrame:
    """history.jsonl as a DataFrame; `size` (the file's size) keys it, as a running job appends lines."""
    return runs_mod.load_history(Path(path))


# A run in training appends to its history every epoch (several times a second on digits): what is built
# from it is rebuilt at most every LIVE_SECONDS, and kept apart (_shared_live) so that it does not push
# every other session's figures out of the shared cache.
LIVE = "in training"
LIVE_SECONDS = 5.0


def history_key(run: RunInfo) -> tuple[str, float, int]:
    """What names the run's history as it is now: its path, checkpoint stamp and history file size; for a
    run a job of this server is training, its path, LIVE and the current LIVE_SECONDS period."""
    from explorer import jobs
    if jobs.is_training(run.path):
        return str(run.path), LIVE, int(time.time() // LIVE_SECONDS)
    try:
        size = (run.path / "history.jsonl").stat().st_size
    except OSError:
        size = -1
    return str(run.path), run.stamp, size


def history_for(run: RunInfo) -> pd.DataFrame:
    """The run's history (shared by every session: never change it); empty (with a warning) if unreadable."""
    try:
        key = history_key(run)
        return shared("history", key, lambda: runs_mod.load_history(run.path)) if _is_live(key) \
            else history_of(*key)
    except Exception as e:  # noqa: BLE001  an unreadable history must not break a page
        st.warning(f"{run.name}: history unreadable ({e})")
        return pd.DataFrame()


@st.cache_data(max_entries=32, show_spinner=False)
def iw_log_likelihood_of(path: str, stamp: float, k: int, n: int, _progress: Callable | None = None) -> dict:
    """The IW-k estimate of log p(x) on the run's test points (Burda et al. 2016; the paper uses k = 5000)."""
    from explorer.information import iw_in_steps
    pts = points_of(path, stamp, n)
    ll = iw_in_steps(model_of(path, stamp), pts.images, k, seed=0, progress=_progress)
    return {"iw_ll": float(ll.mean()), "k": k, "n": int(pts.images.shape[0]), "source": pts.source}


class ProgressWithTimeLeft:
    """A progress bar for work of a known size in parts (e.g. two runs): call it with the current part's
    fraction done; it shows the whole's fraction and the time left at the pace so far."""

    def __init__(self, what: str, parts: int = 1):
        self.what, self.parts, self.part = what, parts, 0
        self.started = time.perf_counter()
        self.bar = st.progress(0.0, text=f"{what}…")

    def __call__(self, fraction: float) -> None:
        done = min(1.0, (self.part + fraction) / self.parts)
        spent = time.perf_counter() - self.started
        left = spent / done * (1 - done) if done > 0 else float("nan")
        when = f"about {left:.0f} s left" if left == left and left >= 1 else "nearly done"
        self.bar.progress(done, text=f"{self.what}: {done:.0%}, {when}")

    def next_part(self) -> None:
        self.part += 1

    def done(self) -> None:
        self.bar.empty()


def last_with(history: pd.DataFrame, column: str) -> Any:
    """The latest non-missing value of a history column (evaluations happen every eval_every epochs)."""
    if column not in history:
        return None
    values = history[column].dropna()
    return None if values.empty else values.iloc[-1]


# ---- output helpers ---------------------------------------------------------------

@st.cache_resource(max_entries=256, show_spinner=False)
def _shared(name: str, key: tuple, _build: Callable[[], Any]) -> Any:
    return _frozen(_build())  # shared: sent as is, never changed


@st.cache_resource(max_entries=16, show_spinner=False)
def _shared_live(name: str, key: tuple, _build: Callable[[], Any]) -> Any:
    return _frozen(_build())


def _frozen(made: Any) -> Any:
    return freeze(made) if isinstance(made, go.Figure) else made


def _is_live(key: Any) -> bool:
    return key == LIVE or (isinstance(key, tuple) and any(_is_live(k) for k in key))


def shared(name: str, key: tuple, build: Callable[[], Any]) -> Any:
    """What build() returns (a figure, a table), made once per (name, key) for every session: the key must
    name everything build reads (runs by history_key, the widgets' values). Never change the result (a figure
    is frozen: explorer.figures.freeze). Keys of runs in training (LIVE) have a small cache of their own."""
    return (_shared_live if _is_live(key) else _shared)(name, key, build)


def figure_csv(fig: go.Figure) -> bytes:
    """The CSV of the numbers the figure was drawn from (explorer.figures.figure_frame)."""
    from explorer.figures import figure_frame
    return figure_frame(fig).to_csv(index=False).encode()


def chart(fig: go.Figure, key: str, csv_name: str, **kwargs: Any) -> Any:
    """A plotly chart with a "numbers (CSV)" download under it; returns the chart's event state."""
    from explorer.figures import export_config
    event = st.plotly_chart(fig, key=key, width="stretch", config=export_config(csv_name), **kwargs)
    # A callable: the CSV is made when clicked, not on every rerun.
    st.download_button("Numbers (CSV)", lambda: figure_csv(fig), file_name=f"{csv_name}.csv", mime="text/csv",
                       key=f"{key}_csv", on_click="ignore", icon=":material/download:")
    return event


def image_scale(shape: tuple[int, int], target: int = 112) -> int:
    """Integer upscaling so a tile is about `target` pixels tall (8x8 digits x14, 28x28 MNIST x4)."""
    return max(1, round(target / max(shape[0], 1)))


def grid_png(images: np.ndarray, shape: tuple[int, int], ncols: int | None = None, target: int = 112) -> bytes:
    """Pixel vectors as one PNG grid, each tile scaled to about `target` pixels."""
    from explorer.images import image_grid, png_bytes
    return png_bytes(image_grid(images, shape, ncols=ncols, scale=image_scale(shape, target)))


def show_png(png: bytes, caption: str | None = None, container: Any = st) -> bytes:
    """A PNG as it is (st.image would re-encode it as JPEG); returns it (tests compare them). Streamlit keeps
    one media file per distinct image, so a cached PNG that many sessions show is stored once."""
    container.image(png, caption=caption, output_format="PNG")
    return png


def show_images(images: np.ndarray, shape: tuple[int, int], caption: str | None = None, ncols: int | None = None,
                target: int = 112, container: Any = st) -> bytes:
    """Pixel vectors as one PNG grid; returns the PNG bytes (tests compare them)."""
    return show_png(grid_png(images, shape, ncols, target), caption, container)


def settings_table(run: RunInfo) -> dict[str, Any]:
    """The run's settings that matter for the paper's comparison (Sec. 2.3: BN and warm-up)."""
    c = run.config
    assert c is not None
    return {"model": c.model.upper(), "layers": c.layers, "dataset": c.dataset,
            "architecture": c.arch.summary(),
            "warm-up": f"{c.warmup_epochs} epochs" if c.warmup_epochs else "none (beta = 1)",
            "epochs": f"{run.epochs_done} of {c.epochs}", "batch size": c.batch_size, "learning rate": c.lr}
