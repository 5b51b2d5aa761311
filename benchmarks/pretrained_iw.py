"""The shipped pair's IW-K log-likelihood on the first N test images, one seed: the number a refactor of
the models must leave unchanged (issue 28: IW-1000 on the first 2,000 images, seed 0, to 0.01 nats).

    python3 benchmarks/pretrained_iw.py [--k 1000] [--n 2000] [--seed 0] [--data-dir ../shared/data/mnist]

BN uses the checkpoint's running averages (what the explorer uses); runs one process per model, one thread each.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one(run: str, k: int, n: int, seed: int, data_dir: str) -> dict:
    import torch

    from training.checkpoint import load_model
    from training.data import load_dataset
    from training.evaluate import iw_estimate, test_tensors
    torch.set_num_threads(1)
    started = time.perf_counter()
    model, cfg, _ = load_model(ROOT / "pretrained" / run)
    x, _ = test_tensors(load_dataset(cfg.dataset, data_dir, cfg.pixel_scale), cfg, torch.device("cpu"))
    ll = iw_estimate(model, x[:n], k, seed=seed)
    return {"run": run, "k": k, "n": n, "seed": seed, "iw_ll": round(float(ll.mean()), 4),
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    p.add_argument("--run", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.run:
        print(json.dumps(one(a.run, a.k, a.n, a.seed, a.data_dir)))
        return
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, __file__, "--run", run, "--k", str(a.k), "--n", str(a.n),
                               "--seed", str(a.seed), "--data-dir", a.data_dir], stdout=subprocess.PIPE, env=env, text=True)
             for run in ("mnist-vae-bn-wu", "mnist-lvae-bn-wu")]
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            sys.exit(proc.returncode)
        print(out.strip())


if __name__ == "__main__":
    main()
