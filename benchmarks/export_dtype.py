"""Does shipping float16 weights move the IW log-likelihood? The same model in float32 and as float16
weights cast back (what `training export --dtype float16` ships and `load_model` reads), with the
same BN statistics (recomputed over the training set) and the same importance-sampling draws.

    python benchmarks/export_dtype.py RUN_DIR [--k 1000] [--n 2000] [--data-dir DIR]

Paired on identical draws, the difference is the weights' rounding alone, so a few thousand test
images pin it down to well under 0.01 nats. `training export` keeps float16 only if it is under 0.05.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from training import checkpoint as ckpt  # noqa: E402
from training.data import load_dataset  # noqa: E402
from training.evaluate import bn_statistics_images, iw_estimate, recompute_bn_statistics, test_tensors  # noqa: E402


def as_float16_weights(model: torch.nn.Module) -> torch.nn.Module:
    """The model with every floating-point tensor rounded to float16 and back, as an export ships it."""
    import copy
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for t in list(twin.parameters()) + list(twin.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())
    return twin


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--k", type=int, default=1000, help="importance samples")
    ap.add_argument("--n", type=int, default=2000, help="test images (the first n)")
    ap.add_argument("--data-dir", default=None)
    a = ap.parse_args()
    model, cfg, epoch = ckpt.load_model(a.run_dir)
    data = load_dataset(cfg.dataset, a.data_dir or cfg.data_dir, cfg.pixel_scale)
    x_test, _ = test_tensors(data, cfg, torch.device("cpu"))
    x_test = x_test[:a.n]
    x_train = bn_statistics_images(data, cfg, torch.device("cpu"))
    rows = []
    for name, m in (("float32", model), ("float16", as_float16_weights(model))):
        t0 = time.perf_counter()
        # Seeded generators for the BN pass and the IW draws: the two models see the same noise.
        bn = recompute_bn_statistics(m, x_train, generator=torch.Generator().manual_seed(0))
        ll = iw_estimate(bn, x_test, a.k, seed=0)
        rows.append((name, ll, time.perf_counter() - t0))
    diff = rows[1][1] - rows[0][1]
    print(f"{a.run_dir} ({cfg.label}, epoch {epoch}): IW-{a.k} on the first {len(x_test)} test images, "
          f"BN statistics recomputed, same draws")
    for name, ll, seconds in rows:
        print(f"  {name} weights  {ll.mean():9.4f} nats   ({seconds:.0f} s)")
    print(f"  float16 - float32  {diff.mean():+.4f} nats (per-image sd {diff.std():.4f}, "
          f"standard error {diff.std() / len(diff) ** 0.5:.4f})")


if __name__ == "__main__":
    main()
