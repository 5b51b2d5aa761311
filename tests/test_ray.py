"""`reproduce --engine ray` on a local Ray: a tiny digits grid, with one task SIGKILLed mid-run that Ray
retries and that resumes from its last checkpoint. Ray runs in the command's own process (as a user
runs it), never inside pytest's: its threads there outlived ray.shutdown() and crashed a later test.
Skipped without Ray (requirements-ray.txt; CI installs it)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from training import checkpoint as ckpt

pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parent.parent


def _task_pids() -> list[int]:
    """Ray workers executing a task retitle themselves `ray::<task name>`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::run_group"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _kill_once_mid_run(runs_dir: Path, killed: list, stop: threading.Event) -> None:
    """When the first run has saved a checkpoint (and is still training), SIGKILL the worker running it."""
    while not stop.is_set():
        saved = [p for p in runs_dir.glob("*/checkpoint.safetensors")]
        pids = _task_pids()
        if saved and pids:
            history = ckpt.read_history(saved[0].parent)
            os.kill(pids[0], signal.SIGKILL)
            killed.append((saved[0].parent.name, len(history)))
            return
        time.sleep(0.05)


def test_the_grid_on_ray_survives_a_task_killed_mid_run(tmp_path):
    out = tmp_path / "results"
    killed: list = []
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_once_mid_run, args=(out / "runs", killed, stop), daemon=True)
    watcher.start()
    cmd = [sys.executable, "-m", "training", "reproduce", "--dataset", "digits", "--models", "vae+bn+wu,lvae+bn+wu",
           "--layers", "1", "--epochs", "6", "--warmup-epochs", "2", "--eval-samples", "5", "--eval-every", "3",
           "--device", "cpu", "--jobs", "2", "--engine", "ray", "--out", str(out)]
    env = {**os.environ, "LVAE_OFFLINE": "1"}
    try:
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    finally:
        stop.set()
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "complete" in r.stdout
    assert killed, "no task was killed: the test did not test a retry"
    name, epochs_before = killed[0]
    assert epochs_before < 6  # mid-run
    rows = {r["name"]: r for r in json.loads((out / "paper-digits.json").read_text())}
    assert set(rows) == {"vae-bn-wu-L1-s0", "lvae-bn-wu-L1-s0"} and all(r["iw_ll"] < 0 for r in rows.values())
    epochs = [h["epoch"] for h in ckpt.read_history(out / "runs" / name)]
    assert sorted(set(epochs)) == list(range(1, 7))  # the retry resumed and finished every epoch
