"""The paper's qualitative result on digits, over several seeds: the LVAE uses more of its upper layers.

    python benchmarks/active_units_digits.py [--seeds 0,1,2,3,4] [--epochs E] [--warmup-epochs W]
                                             [--batch-size B] [--out /tmp/au-runs]

Trains the demo pair (VAE+BN+WU and LVAE+BN+WU, 5 layers, the `python -m training demo` settings,
or those settings changed by the options) once per seed, the two models in parallel, and prints the
active units per layer (Burda et al.'s Cov_x(E_q[u|x]) > 0.01 on the test set), the units above
layers 1 and 2, and the KL of the layers above layer 2 (what they carry: a unit can pass the activity
threshold on Monte-Carlo noise alone, its layer's KL cannot). Exits 1 unless the LVAE has more active
units above layer 2 than the VAE on most seeds (the demo's lesson, issue 27).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.checkpoint import load_model  # noqa: E402
from training.config import train_command  # noqa: E402
from training.demo import DEMO_RUNS  # noqa: E402
from training.evaluate import evaluate_run  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--epochs", type=int, default=None, help="default: the demo's")
    p.add_argument("--warmup-epochs", type=int, default=None, help="default: the demo's")
    p.add_argument("--batch-size", type=int, default=None, help="default: the demo's")
    p.add_argument("--out", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    a = p.parse_args()
    changes = {k: v for k, v in (("epochs", a.epochs), ("warmup_epochs", a.warmup_epochs),
                                 ("batch_size", a.batch_size)) if v is not None}
    out = a.out or Path(tempfile.mkdtemp(prefix="au-digits-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    first = next(iter(DEMO_RUNS.values()))
    settings = dataclasses.replace(first, **changes)
    print(f"settings: {settings.epochs} epochs, warm-up {settings.warmup_epochs}, batch {settings.batch_size}")
    print(f"{'seed':>4}  {'model':<11} {'active units z1..z5':<20} {'above z1':>8} {'above z2':>8}  {'KL z3..z5':>9}"
          f"  {'test ELBO':>9}  {'train s':>7}")
    seeds = [int(s) for s in a.seeds.split(",")]
    wins = 0
    for seed in seeds:
        runs, procs = {}, []
        start = time.perf_counter()
        for name, cfg in DEMO_RUNS.items():
            cfg = dataclasses.replace(cfg, seed=seed, **changes)
            run = out / f"{name}-s{seed}"
            runs[cfg.label] = run
            if not (run / "checkpoint.safetensors").is_file() or load_model(run)[2] < cfg.epochs:
                cmd = train_command(cfg, run, resume=(run / "config.json").is_file())
                procs.append(subprocess.Popen(cmd + ["--no-progress"], env=env, stdout=subprocess.DEVNULL))
        if any(proc.wait() for proc in procs):
            print("training failed", file=sys.stderr)
            return 2
        seconds = time.perf_counter() - start
        above2 = {}
        for label, run in runs.items():
            r = evaluate_run(run, iw_samples=1, device="cpu")
            above2[label] = sum(r["active_units"][2:])
            print(f"{seed:>4}  {label:<11} {' '.join(f'{u:>2}' for u in r['active_units']):<20} "
                  f"{sum(r['active_units'][1:]):>8} {above2[label]:>8}  {sum(r['kl_per_layer'][2:]):>9.3f}  "
                  f"{r['test_elbo']:>9.2f}  {seconds:>7.0f}")
        wins += above2["LVAE+BN+WU"] > above2["VAE+BN+WU"]
    ok = wins > len(seeds) / 2
    print(f"LVAE+BN+WU has more active units above layer 2 than VAE+BN+WU on {wins} of {len(seeds)} seeds: "
          f"{'yes, most' if ok else 'NO, not most'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
