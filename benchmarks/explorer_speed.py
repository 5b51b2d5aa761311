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

from explorer.encode import THREADS, encode, layer_pca, test_points  # noqa: E402
from explorer.images import image_grid, png_bytes  # noqa: E402
from explorer.runs import RunInfo, discover_runs, load_model  # noqa: E402
from explorer.traverse import along_directions, decode_layer, traversal_grid  # noqa: E402

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
    shape = (8, 8) if cfg.input_dim == 64 else (28, 28)
    layer = cfg.layers - 1                      # the top layer: the longest path down to the image
    units = cfg.latent_sizes[layer]
    pca = layer_pca(rng.normal(size=(500, units)).astype(np.float32))
    base = np.zeros(units, np.float32)

    def move() -> None:
        z = along_directions(pca, base, rng.uniform(-3, 3, size=pca.components.shape[0]))
        png_bytes(image_grid(decode_layer(model, layer, z[None]), shape, scale=max(1, 224 // shape[0])))

    def grid() -> None:
        png_bytes(image_grid(traversal_grid(model, layer, pca, base), shape, scale=4))

    med, worst = timed(move, repeats)
    rows.append((f"slider move, {run.name} z{layer + 1} -> PNG", med, worst, 0.050))
    med, worst = timed(grid, max(5, repeats // 5))
    rows.append((f"traversal grid {pca.components.shape[0]}x7, {run.name} z{layer + 1} -> PNG", med, worst, float("nan")))
    return rows


def build_figures(pcas, labels) -> None:
    """What the Layers page draws from the PCAs, serialised as Streamlit sends it."""
    from explorer.figures import explained_variance, layer_scatter_grid
    layer_scatter_grid(pcas, labels, highlight=0).to_json()
    explained_variance(pcas).to_json()


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
    enc = encode(model, images)
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    pcas = [layer_pca(z, 3) for z in enc.means]
    t_pca = time.perf_counter() - t0
    t_fig = float("nan")
    if HAS_FIGURES:
        t0 = time.perf_counter()
        build_figures(pcas, labels)
        t_fig = time.perf_counter() - t0
    cold = t_enc + t_pca + (0.0 if t_fig != t_fig else t_fig)
    what = "encode + PCA + figures" if HAS_FIGURES else "encode + PCA (explorer/figures.py not there yet)"
    nan = float("nan")
    rows = [
        (f"  load_model ({run.name})", t_load, nan, nan),
        (f"  test_points ({len(pts.images)} points)", t_data, nan, nan),
        (f"  encode {N_POINTS} x {cfg.layers} layers (means + samples)", t_enc, nan, nan),
        ("  layer_pca k=3, every layer", t_pca, nan, nan),
        ("  figures: scatter grid + explained variance, to_json", t_fig, nan, nan),
        (f"Layers page cold: {what}", cold, nan, 1.5),
        ("Layers page cold incl. load_model + test_points", cold + t_load + t_data, nan, nan),
    ]
    if HAS_FIGURES:
        med, worst = timed(lambda: build_figures(pcas, labels), repeats=5)
        rows.append(("Layers page cached: figures from cached PCAs, to_json", med, worst, 0.2))
    # one more cold encode, the first having paid one-off warm-up costs
    t0 = time.perf_counter()
    enc = encode(model, images)
    [layer_pca(z, 3) for z in enc.means]
    rows.append(("  encode + PCA again (second model-cold call)", time.perf_counter() - t0, nan, nan))
    return rows, source


def fmt_ms(s: float) -> str:
    return "" if s != s else f"{s * 1000:8.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", type=Path, help="an existing runs folder (default: train fresh runs)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (the issue's server has 2 cores)")
    ap.add_argument("--repeats", type=int, default=50)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.environ.setdefault("LVAE_OFFLINE", "1")

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
    print(f"\nexplorer speed · torch {torch.__version__} · process {torch.get_num_threads()} threads, explorer inference "
          f"{min(THREADS, torch.get_num_threads())} · {os.cpu_count()} CPUs, load average {load:.1f} · runs from {runs_dir}")
    print(f"Layers page model: {big.label}; points: {source}")
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'median':>11}  {'max':>11}  {'target':>11}  ok")
    for name, med, worst, target in rows:
        ok = "" if target != target else ("yes" if med <= target else "NO")
        print(f"{name:<{width}}  {fmt_ms(med):>11}  {fmt_ms(worst):>11}  {fmt_ms(target):>11}  {ok}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
