"""Train the digits demo pair (VAE+BN+WU, LVAE+BN+WU, seed 1) with config overrides and report the
test ELBO, IW log-likelihood and active units: how a training change moves the demo's numbers.

    python benchmarks/demo_variants.py --out /tmp/variants                       # today's defaults
    python benchmarks/demo_variants.py --out /tmp/variants --set init=glorot     # one change
    python benchmarks/demo_variants.py --out /tmp/variants --set adam_eps=1e-8 grad_clip=0 grad_clip_value=0

The two runs of a variant train side by side, one thread each (as `python -m training demo` does).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.config import train_command  # noqa: E402
from training.demo import DEMO_RUNS  # noqa: E402


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="RunConfig overrides")
    p.add_argument("--iw-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args()
    overrides = {k: parse_value(v) for k, v in (s.split("=", 1) for s in a.set)}
    if a.seed is not None:
        overrides["seed"] = a.seed
    tag = "-".join(f"{k}={v}" for k, v in overrides.items()) or "defaults"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    procs = []
    for name, cfg in DEMO_RUNS.items():
        run = a.out / tag / name
        if not (run / "checkpoint.safetensors").is_file():
            cmd = train_command(replace(cfg, **overrides), run) + ["--no-progress"]
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL))
    if any(proc.wait() for proc in procs):
        print("training failed", file=sys.stderr)
        return 1
    for name in DEMO_RUNS:
        run = a.out / tag / name
        r = json.loads(subprocess.run([sys.executable, "-m", "training", "eval", str(run), "--iw-samples",
                                       str(a.iw_samples), "--json"], env=env, capture_output=True, text=True,
                                      check=True).stdout)
        print(f"{tag:40s} {r['label']:11s} ELBO {r['test_elbo']:8.2f}  IW-{r['iw_samples']} {r['iw_ll']:8.2f}  "
              f"active units {'/'.join(map(str, r['active_units']))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
