"""Server-side speed of the explorer's interactive paths, against the issue's targets.

    python benchmarks/explorer_speed.py [--runs-dir DIR] [--threads 2] [--repeats 50]

Without --runs-dir it trains its own runs into a temporary folder: the demo pair
(`python -m training demo`, digits, 5 layers) and, when ../shared/data/mnist
exists, a 5-layer paper-size LVAE trained for one epoch on MNIST, so the Layers
page is timed on 5,000 real test points. Otherwise the digits model's 360 test
points are repeated up to 5,000 (the output says which). Prints one table;
asserts nothing (timings depend on the machine).

Targets (the issue): a traversal slider move -> decoded image under 50 ms; the
Layers page for a 5-layer model on 5,000 points under 1.5 s cold (encode + PCA
of every layer + figure build) and under 0.2 s when the encoding is cached.

    python benchmarks/explorer_speed.py --first-start [--runs-dir pretrained]

times a fresh clone's first start instead: `streamlit run app.py` from an empty working folder
(no runs/, no data/) to the Compare page's charts, over Streamlit's own websocket protocol (the
target: under 10 s on two cores, nothing to train), then the Layers page cold on the shipped LVAE.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from explorer.encode import (POINT_SIZES, THREADS, encode, encode_seconds_per_image, image_shape,  # noqa: E402
                            layer_pca, limit_threads, points_within_budget, test_points)
from explorer.images import image_grid, png_bytes  # noqa: E402
from explorer.runs import RunInfo, discover_runs, load_model  # noqa: E402
from explorer.traverse import (along_directions, decode_layer, hierarchy_decomposition, prior_whole, summaries,  # noqa: E402
                               traversal_grid)

MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"
N_POINTS = 5000
HAS_FIGURES = importlib.util.find_spec("explorer.figures") is not None


def timed(fn, repeats: int) -> tuple[float, float]:
    """(median, max) seconds of `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), max(times)


def train_runs(out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LVAE_OFFLINE": "1"}
    print(f"training the demo pair into {out} ...", flush=True)
    subprocess.run([sys.executable, "-m", "training", "demo", "--out", str(out), "--no-progress"],
                   cwd=ROOT, env=env, check=True)
    if MNIST_DIR.is_dir():
        print(f"training a 5-layer paper-size LVAE for 1 epoch on {MNIST_DIR} ...", flush=True)
        subprocess.run([sys.executable, "-m", "training", "train", "--model", "lvae", "--layers", "5",
                        "--dataset", "mnist", "--data-dir", str(MNIST_DIR), "--epochs", "1", "--eval-every", "1",
                        "--device", "cpu", "--out", str(out / "mnist-lvae-1epoch"), "--no-progress"],
                       cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def slider_rows(run: RunInfo, repeats: int) -> list[tuple[str, float, float, float]]:
    """One slider move: offsets -> z (along_directions) -> decode_layer -> grid image -> PNG bytes."""
    model, cfg, _ = load_model(run.path)
    rng = np.random.default_rng(0)
    rows = []
    shape = image_shape(cfg)
    layer = model.n_layers - 1                  # the top layer: the longest path down to the image
    units = model.layer_specs()[layer].summary_units
    pca = layer_pca(rng.normal(size=(500, units)).astype(np.float32))
    whole = prior_whole(model, 0)  # as the Traverse page: a step moves the start's whole code
    base = summaries(model, whole)[layer]

    def move() -> None:
        z = along_directions(pca, base, rng.uniform(-3, 3, size=pca.components.shape[0]))
        png_bytes(image_grid(decode_layer(model, layer, z[None], whole=whole[layer:]), shape,
                             scale=max(1, 224 // shape[-1])))

    def grid() -> None:
        png_bytes(image_grid(traversal_grid(model, layer, pca, base, whole=whole[layer:]), shape, scale=4))

    med, worst = timed(move, repeats)
    rows.append((f"slider move, {run.name} z{layer + 1} -> PNG", med, worst, 0.050))
    med, worst = timed(grid, max(5, repeats // 5))
    rows.append((f"traversal grid {pca.components.shape[0]}x7, {run.name} z{layer + 1} -> PNG", med, worst, float("nan")))
    rows += views_rows(run, model, cfg, max(3, repeats // 10))
    rows += depth_rows(run, model, cfg, max(5, repeats // 3))
    if model.has_codebooks:
        rows += codes_rows(run, model, cfg, repeats)
    return rows


def codes_rows(run: RunInfo, model, cfg, repeats: int) -> list[tuple[str, float, float, float]]:
    """The Codes page (issue 31): one code swapped -> decoded -> PNG (under 50 ms); one prior sample of every level,
    position by position (under 1 s on two cores); an image's code map; the codebook's use over 1,000 test points."""
    from explorer.codemap import categorical_layers, code_map, codebook_use, decode_codes, with_code
    pts = test_points(cfg, run.path, 1000, data_dir=str(MNIST_DIR) if cfg.dataset == "mnist" else None)
    shape, top = image_shape(cfg), categorical_layers(model)[-1]
    cm = code_map(model, pts.images[0])
    h, w = cm.index[top].shape
    k = model.layer_specs()[top].codebook
    swaps = iter([((i // w) % h, i % w, c) for i, c in enumerate(np.random.default_rng(0).integers(0, k, 10_000))])

    def swap() -> None:
        r, c, code = next(swaps)
        png_bytes(image_grid(decode_codes(model, with_code(cm, top, (r, c), int(code)))[None], shape, scale=6))

    seeds = iter(range(10_000))

    def sample() -> None:
        from explorer.traverse import prior_samples
        prior_samples(model, 1, 1.0, next(seeds))

    nan = float("nan")
    rows = []
    med, worst = timed(swap, repeats)
    rows.append((f"code swap in z{top + 1} -> decoded PNG ({run.name})", med, worst, 0.050))
    med, worst = timed(sample, max(3, repeats // 5))
    rows.append((f"one prior sample, every level position by position ({run.name})", med, worst, 1.0))
    med, worst = timed(lambda: code_map(model, pts.images[1]), max(3, repeats // 5))
    rows.append(("  an image's code map (codes and the prior at every cell)", med, worst, nan))
    t0 = time.perf_counter()
    codebook_use(model, top, pts.images, pts.labels)
    rows.append(("  a codebook's use over 1,000 test points, PCA of its vectors", time.perf_counter() - t0, nan, nan))
    return rows


def views_rows(run: RunInfo, model, cfg, repeats: int) -> list[tuple[str, float, float, float]]:
    """The three per-image views of a hierarchy (issue 29's targets: under 1 s each for one image), figures
    built and serialised as the Samples page sends them."""
    from explorer.figures import layer_maps
    from explorer.spatial import control_maps, kl_maps
    image = np.random.default_rng(1).random(cfg.input_dim).astype(np.float32).round()
    shape = image_shape(cfg)
    views = {
        "where each layer spends its nats (KL maps)": lambda: layer_maps(kl_maps(model, image), "kl", "nats").to_json(),
        "what each layer controls (16 redraws a layer)": lambda: layer_maps(control_maps(model, image), "c", "sd").to_json(),
        "how much each depth decides (rows k = L..0, 8 images)": lambda: png_bytes(image_grid(np.stack(
            [hierarchy_decomposition(model, image, k, n=8) for k in range(model.n_layers, -1, -1)]), shape, scale=2)),
    }
    rows = []
    for name, fn in views.items():
        med, worst = timed(fn, repeats)
        rows.append((f"{name}, {run.name}", med, worst, 1.0))
    return rows


def build_figures(pcas, labels, layers=None) -> None:
    """What the Layers page draws from the PCAs (a deep model's first group of layers), serialised as Streamlit
    sends it."""
    from explorer.figures import explained_variance, layer_scatter_grid
    layer_scatter_grid(pcas, labels, highlight=0, layers=layers).to_json()
    explained_variance(pcas).to_json()


def depth_rows(run: RunInfo, model, cfg, repeats: int) -> list[tuple[str, float, float, float]]:
    """The Depth page's slider move (issue 30: under 100 ms): keep the top q% of the variates by their KL over
    1,000 test points, decode a test image 8 times with the rest drawn from the prior, PNG; and the ranking
    figure redrawn for that q."""
    from plotly.io.json import to_json_plotly

    from explorer.depth import masked_decode, top_variates, variate_kl
    from explorer.figures.depth import variate_ranking, with_kept_line
    pts = test_points(cfg, run.path, 1000, data_dir=str(MNIST_DIR) if cfg.dataset == "mnist" else None)
    t0 = time.perf_counter()
    kl = variate_kl(model, pts.images[:1000])
    t_kl = time.perf_counter() - t0
    shape = image_shape(cfg)
    qs = iter([0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0] * 100)

    def move() -> None:
        kept = top_variates(kl, next(qs))
        decoded = masked_decode(model, pts.images[0], kept.masks, n=8, seed=0)
        png_bytes(image_grid(np.concatenate([pts.images[:1], decoded]), shape, ncols=9, scale=2))

    spec = variate_ranking(kl).to_dict()  # built once per run (app_pages.computed.ranking_of)

    def ranking() -> None:  # the kept line patched in, the figure's JSON as the chart sends it
        to_json_plotly(with_kept_line(spec, top_variates(kl, next(qs)).count))

    nan = float("nan")
    rows = [(f"variate KL over 1,000 test points ({run.name}, once, then cached)", t_kl, nan, nan)]
    med, worst = timed(move, repeats)
    rows.append((f"keep the top q% -> 8 masked decodes -> PNG ({run.name})", med, worst, 0.100))
    med, worst = timed(ranking, max(3, repeats // 5))
    rows.append(("  the ranking chart for that q (the kept line patched into the cached figure), JSON", med, worst, nan))
    return rows


def layers_rows(run: RunInfo, repeats: int) -> tuple[list[tuple[str, float, float, float]], str]:
    t0 = time.perf_counter()
    model, cfg, _ = load_model(run.path)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    pts = test_points(cfg, run.path, N_POINTS, data_dir=str(MNIST_DIR) if cfg.dataset == "mnist" else None)
    t_data = time.perf_counter() - t0
    images, labels, source = pts.images, pts.labels, pts.source
    if len(images) < N_POINTS:                  # digits: 360 test points, repeated to the target size
        reps = -(-N_POINTS // len(images))
        images, labels = np.tile(images, (reps, 1))[:N_POINTS], np.tile(labels, reps)[:N_POINTS]
        source += f", repeated to {N_POINTS}"

    t0 = time.perf_counter()
    enc = encode(model, images, samples=False)  # what the page encodes first (samples when they are shown)
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    pcas = [layer_pca(z, 3) for z in enc.means]
    t_pca = time.perf_counter() - t0
    t_fig = float("nan")
    from explorer.depth import layer_groups
    first, last, _ = layer_groups([spec.resolution for spec in model.layer_specs()], 8)[0]  # the page's first view
    group = list(range(first, last))
    if HAS_FIGURES:
        t0 = time.perf_counter()
        build_figures(pcas, labels, group)
        t_fig = time.perf_counter() - t0
    cold = t_enc + t_pca + (0.0 if t_fig != t_fig else t_fig)
    what = "encode + PCA + figures" if HAS_FIGURES else "encode + PCA (explorer.figures not importable)"
    nan = float("nan")
    rows = [
        (f"  load_model ({run.name})", t_load, nan, nan),
        (f"  test_points ({len(pts.images)} points)", t_data, nan, nan),
        (f"  encode {N_POINTS} x {cfg.layers} layers (posterior means)", t_enc, nan, nan),
        ("  layer_pca k=3, every layer", t_pca, nan, nan),
        ("  figures: scatter grid + explained variance, to_json", t_fig, nan, nan),
        (f"Layers page cold: {what}", cold, nan, 1.5),
        ("Layers page cold incl. load_model + test_points", cold + t_load + t_data, nan, nan),
    ]
    if HAS_FIGURES:
        med, worst = timed(lambda: build_figures(pcas, labels, group), repeats=5)
        rows.append(("Layers page cached: figures from cached PCAs, to_json", med, worst, 0.2))
    # one more cold encode, the first having paid one-off warm-up costs
    t0 = time.perf_counter()
    enc = encode(model, images, samples=False)
    [layer_pca(z, 3) for z in enc.means]
    rows.append(("  encode + PCA again (second model-cold call)", time.perf_counter() - t0, nan, nan))
    # The page opens on the most points that encode within ENCODE_BUDGET_S here (a convolutional model: fewer).
    n = points_within_budget(encode_seconds_per_image(model, pts.images), [v for v in POINT_SIZES if v < len(pts.images)]
                             + [min(len(pts.images), 5000)])
    if n < N_POINTS:
        t0 = time.perf_counter()
        enc = encode(model, pts.images[:n], samples=False)
        pcas = [layer_pca(z, 3) for z in enc.means]
        build_figures(pcas, pts.labels[:n], group) if HAS_FIGURES else None
        rows.append((f"Layers page cold at the page's default, {n} points: {what}", time.perf_counter() - t0, nan, 1.5))
    return rows, source


def first_start(repeats: int) -> list[tuple[str, float, float, float]]:
    """Server start -> the Compare page's plotly charts, then a cold Layers page, `repeats` fresh servers."""
    import asyncio

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from load_test import streamlit_server
    from st_client import StreamlitClient

    async def visit(url: str) -> tuple[float, float, int]:
        client = StreamlitClient(url, timeout=120)
        await client.connect()
        try:
            t0 = time.perf_counter()
            reply = await client.open()
            t_compare = time.perf_counter() - t0
            charts = len(reply.of_kind("plotly_chart"))
            if reply.errors or not charts:
                raise RuntimeError(f"the Compare page showed {charts} charts, errors {reply.errors}")
            t0 = time.perf_counter()
            reply = await client.switch_page("Layers")
            if reply.errors or not reply.of_kind("plotly_chart"):
                raise RuntimeError(f"the Layers page failed: {reply.errors}")
            return t_compare, time.perf_counter() - t0, charts
        finally:
            await client.close()

    totals, compares, layers = [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="first-start-") as tmp:
            empty = Path(tmp) / "no-runs"
            empty.mkdir()
            t0 = time.perf_counter()
            with streamlit_server(empty, Path(tmp)) as (url, _, _):
                t_healthy = time.perf_counter() - t0
                t_compare, t_layers, charts = asyncio.run(visit(url))
            totals.append(t_healthy + t_compare)
            compares.append(t_compare)
            layers.append(t_layers)
    nan = float("nan")
    return [(f"first start: server up + Compare page, {charts} charts (pretrained pair)", statistics.median(totals),
             max(totals), 10.0),
            ("  of which the Compare page's first run", statistics.median(compares), max(compares), nan),
            ("Layers page cold on the shipped LVAE (load, 1,000 points, encode, PCA, figures)",
             statistics.median(layers), max(layers), 1.5)]


def fmt_ms(s: float) -> str:
    return "" if s != s else f"{s * 1000:8.1f} ms"


def print_table(rows: list[tuple[str, float, float, float]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'median':>11}  {'max':>11}  {'target':>11}  ok")
    for name, med, worst, target in rows:
        ok = "" if target != target else ("yes" if med <= target else "NO")
        print(f"{name:<{width}}  {fmt_ms(med):>11}  {fmt_ms(worst):>11}  {fmt_ms(target):>11}  {ok}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", type=Path, help="an existing runs folder (default: train fresh runs)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: the app's, explorer.encode.THREADS; on two busy cores a second "
                         "thread made a convolutional model's views 40-150x slower, measured)")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--first-start", action="store_true",
                    help="time a fresh clone's first start to the Compare page's charts (3 fresh servers)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    else:
        limit_threads()  # as the app does
    os.environ.setdefault("LVAE_OFFLINE", "1")
    if a.first_start:
        rows = first_start(3)
        print(f"\nfirst start · {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        print_table(rows)
        return

    tmp = None
    runs_dir = a.runs_dir
    if runs_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="explorer-speed-")
        runs_dir = Path(tmp.name)
        train_runs(runs_dir)
    t0 = time.perf_counter()
    found = discover_runs([runs_dir])
    t_discover = time.perf_counter() - t0
    runs = [r for r in found if r.ok]
    if not runs:
        sys.exit(f"no usable runs in {runs_dir}")
    five = [r for r in runs if r.config.layers == 5] or runs
    mnist = [r for r in five if r.config.dataset == "mnist"]
    digits = [r for r in five if r.config.dataset == "digits"]
    big = (mnist or digits or five)[0]

    nan = float("nan")
    rows: list[tuple[str, float, float, float]] = [(f"discover_runs, {len(found)} runs, cold (full validation)", t_discover, nan, nan)]
    med, worst = timed(lambda: discover_runs([runs_dir]), 10)
    rows.append((f"discover_runs, {len(found)} runs, unchanged folders", med, worst, nan))
    for run in ([digits[0]] if digits else []) + ([mnist[0]] if mnist else []):
        rows += slider_rows(run, a.repeats)
    layer_rows, source = layers_rows(big, a.repeats)
    rows += layer_rows

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nexplorer speed · torch {torch.__version__} · {torch.get_num_threads()} torch threads (the app's: {THREADS}) · "
          f"{os.cpu_count()} CPUs, load average {load:.1f} · runs from {runs_dir}")
    print(f"Layers page model: {big.label}; points: {source}")
    print_table(rows)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
