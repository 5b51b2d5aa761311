"""IW-K evaluation speed: the batched L_K on a test set, as `python -m training eval` runs it.

    python benchmarks/eval_speed.py [--run RUN_DIR | --layers 5] [--k 5000] [--n 10000] [--max-rows 100000]

Without --run it times a freshly initialised paper-size LVAE on random binary data (the cost does
not depend on the weights or the pixels). Prints seconds, examples per second and, for K=5000 on
10,000 examples, the projected time.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.checkpoint import load_model  # noqa: E402
from training.config import RunConfig  # noqa: E402
from training.models import build_model  # noqa: E402
from training.objectives import iw_log_likelihood  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=None)
    p.add_argument("--model", default="lvae", choices=("vae", "lvae"))
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--k", type=int, default=5000)
    p.add_argument("--n", type=int, default=10_000, help="test examples")
    p.add_argument("--max-rows", type=int, default=100_000, help="(sample, example) rows per forward pass")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    device = torch.device(a.device)
    if a.run:
        model, cfg, _ = load_model(a.run, device)
    else:
        cfg = RunConfig.make(model=a.model, layers=a.layers, dataset="mnist", input_dim=784, epochs=1)
        model = build_model(cfg).to(device).eval()
    x = torch.rand(a.n, cfg.input_dim, device=device).bernoulli()
    iw_log_likelihood(model, x[:8], 8, max_rows=a.max_rows)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    ll = iw_log_likelihood(model, x, a.k, max_rows=a.max_rows)
    value = float(ll.mean())  # the one sync
    s = time.perf_counter() - t0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; {cfg.model.upper()} {cfg.layers} layers; IW-{a.k} on {a.n} examples: {s:.2f} s "
          f"({a.n / s:.1f} examples/s, {a.n * a.k / s / 1e6:.2f} M samples/s); mean bound {value:.2f}")
    print(f"projected IW-5000 on 10,000 examples: {10_000 * 5000 / (a.n * a.k / s):.1f} s")


if __name__ == "__main__":
    main()
