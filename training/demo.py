"""`python -m training demo`: the app's default pair, VAE+BN+WU and LVAE+BN+WU with 5 layers on digits.

The two runs train in parallel processes with one thread each: at these sizes
a step is a few hundred tiny kernels, so two single-threaded processes on two
cores beat one process with two threads.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from . import checkpoint as ckpt
from .config import RunConfig, train_command
from .errors import UserError

DEMO_EPOCHS = 200
# Warm-up over the whole run: measured over five seeds (benchmarks/active_units_digits.py, README), it is
# the setting of those tried where the LVAE keeps more of its upper layers than the VAE on most seeds, by
# active units above layer 2 (3 of 5; warm-up over the first half: 4 of 5) and by what those layers carry,
# their KL (3 of 5; first half: 1 of 5, the VAE's z3 carrying 0.3-0.5 nats on three seeds). On 1,437
# 8x8 images a run at beta = 1 for long lets the upper layers collapse. Seed 1 is the seed where the
# difference is clearest (LVAE 12 active units above layer 2 and 0.14 nats there, VAE 1 and 0.02), for a
# newcomer's first look; the README gives all five.
DEMO_SEED = 1
DEMO_RUNS = {
    f"digits-{model}-bn-wu": RunConfig.make(model=model, layers=5, dataset="digits", epochs=DEMO_EPOCHS,
                                        warmup_epochs=DEMO_EPOCHS, batch_size=64, lr=2e-3, eval_every=20,
                                        snapshot_every=20, seed=DEMO_SEED, device="cpu")
    for model in ("vae", "lvae")
}


def _follow(procs: list[tuple[Path, subprocess.Popen]], progress: bool | None) -> None:
    """One progress bar over both runs, fed by their history.jsonl (the children run without bars)."""
    show = progress if progress is not None else (sys.stderr.isatty() and not os.environ.get("CI"))
    total = sum(DEMO_RUNS[path.name].epochs for path, _ in procs)
    with tqdm(total=total, disable=not show, desc="demo: VAE+BN+WU and LVAE+BN+WU", unit="epoch") as bar:
        while any(proc.poll() is None for _, proc in procs):
            time.sleep(0.5)
            bar.update(sum(len(ckpt.read_history(path)) for path, _ in procs) - bar.n)


def run_demo(out: Path = Path("runs"), progress: bool | None = None) -> list[Path]:
    """Train (or finish) both demo runs under out; a finished run is left as it is."""
    out = Path(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    procs, paths = [], []
    for name, cfg in DEMO_RUNS.items():
        path = out / name
        paths.append(path)
        if (path / ckpt.CHECKPOINT).is_file():
            # A finished run is kept as it is; one that no longer loads is reported, never overwritten.
            try:
                _, _, epochs = ckpt.load_model(path)
            except UserError as e:
                raise UserError(f"{path} exists but cannot be used ({e}); move it away to train the demo again") from None
            if epochs >= cfg.epochs:
                continue
        resume = (path / ckpt.CONFIG).is_file()
        cmd = train_command(cfg, path, resume) + ["--no-progress"]
        procs.append((path, subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
    _follow(procs, progress)
    failed = []
    for path, proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            failed.append(f"{path.name}: {err.strip().splitlines()[-1] if err.strip() else f'exit {proc.returncode}'}")
    if failed:
        raise UserError("demo training failed: " + "; ".join(failed))
    return paths
