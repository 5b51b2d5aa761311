"""The paper's qualitative result on digits, over several seeds: the LVAE uses more of its upper layers.

    python benchmarks/active_units_digits.py [--seeds 0,1,2] [--out /tmp/au-runs]

Trains the demo pair (VAE+BN+WU and LVAE+BN+WU, 5 layers, the `python -m training demo`
settings) once per seed, the two models in parallel, and prints the active units per layer
(Burda et al.'s Cov_x(E_q[u|x]) > 0.01 on the test set) and the units above layer 1. Exits 1
if the LVAE does not have more active units above layer 1 than the VAE for every seed.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.checkpoint import load_model  # noqa: E402
from training.config import train_command  # noqa: E402
from training.demo import DEMO_RUNS  # noqa: E402
from training.evaluate import evaluate_run  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    a = p.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="au-digits-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    rows, ok = [], True
    print(f"{'seed':>4}  {'model':<11} {'active units z1..z5':<20} {'above z1':>8} {'above z2':>8}  {'test ELBO':>9}")
    for seed in [int(s) for s in a.seeds.split(",")]:
        runs = {}
        procs = []
        for name, cfg in DEMO_RUNS.items():
            run = out / f"{name}-s{seed}"
            runs[cfg.label] = run
            if not (run / "checkpoint.safetensors").is_file() or load_model(run)[2] < cfg.epochs:
                cmd = train_command(dataclasses.replace(cfg, seed=seed), run, resume=(run / "config.json").is_file())
                procs.append(subprocess.Popen(cmd + ["--no-progress"], env=env, stdout=subprocess.DEVNULL))
        if any(proc.wait() for proc in procs):
            print("training failed", file=sys.stderr)
            return 2
        above = {}
        for label, run in runs.items():
            r = evaluate_run(run, iw_samples=1, device="cpu")
            above[label] = sum(r["active_units"][1:])
            rows.append((seed, label, r["active_units"], above[label], r["elbo"]))
            print(f"{seed:>4}  {label:<11} {' '.join(f'{u:>2}' for u in r['active_units']):<20} {above[label]:>8} "
                  f"{sum(r['active_units'][2:]):>8}  {r['elbo']:>9.2f}")
        ok &= above["LVAE+BN+WU"] > above["VAE+BN+WU"]
    print(f"LVAE+BN+WU has more active units above layer 1 than VAE+BN+WU on every seed: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
