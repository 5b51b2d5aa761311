"""Background training jobs started from the app's "Train a model" page (no Streamlit here).

A request from the page's form is checked field by field against fixed sets
and ranges before anything runs: its values end up on a command line and in a
folder name, so nothing the user types may reach a shell or leave the runs
folder. A job is `python -m training train ...` in its own process (list argv,
no shell, own session) so the app stays responsive and a job outlives a page
rerun; its progress is read from the run's history.jsonl.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training import checkpoint as ckpt
from training.config import DATASETS, DEVICES, MAX_LAYERS, MODELS, RunConfig, train_command
from training.demo import DEMO_RUNS
from training.errors import UserError

ROOT = Path(__file__).resolve().parent.parent  # the repository: `python -m training` runs from here
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LOG_NAME = "train.log"

# Inclusive ranges of the numeric form fields.
LIMITS = {"layers": (1, MAX_LAYERS), "epochs": (1, 5000), "batch_size": (2, 4096), "warmup_epochs": (0, 5000),
          "seed": (0, 2**31 - 1)}


def _choice(form: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = form.get(key)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{key.replace('_', ' ')} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _whole(form: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = form.get(key, default)
    lo, hi = LIMITS[key]
    what = key.replace("_", " ")
    # bool is an int subclass; a checkbox's True must not pass as "1 layer".
    if isinstance(value, str) and re.fullmatch(r"\d{1,9}", value.strip()):
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} must be a whole number from {lo} to {hi}, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{what} must be from {lo} to {hi}, not {value}")
    return value


def _flag(form: Mapping[str, Any], key: str, default: bool) -> bool:
    value = form.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{key.replace('_', ' ')} must be true or false, not {value!r}")
    return value


def check_run_name(name: Any) -> str:
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError("run name must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit "
                         f"(no spaces, slashes or other symbols), not {name!r}")
    return name


def validate_request(form: Mapping[str, Any], runs_dir: str | Path) -> tuple[RunConfig, Path]:
    """The RunConfig and run folder a Train form asks for; ValueError with a clear message otherwise.

    form keys: model, layers, batch_norm, warmup_epochs (0 = no warm-up),
    dataset, epochs, batch_size, device, name; optional seed.
    """
    model = _choice(form, "model", MODELS)
    dataset = _choice(form, "dataset", DATASETS)
    device = _choice(form, "device", DEVICES)
    layers = _whole(form, "layers")
    epochs = _whole(form, "epochs")
    batch_size = _whole(form, "batch_size")
    warmup = _whole(form, "warmup_epochs")
    seed = _whole(form, "seed", 0)
    batch_norm = _flag(form, "batch_norm", True)
    name = check_run_name(form.get("name"))
    if device == "cuda":
        import torch  # only here: the check needs it, the rest of the module does not
        if not torch.cuda.is_available():
            raise ValueError("device cuda: this machine has no CUDA GPU that torch can use; choose cpu or auto")

    root = Path(runs_dir).expanduser().resolve()
    out = (root / name).resolve()
    if out.parent != root:  # the name rules already forbid this; the resolved path is the final word
        raise ValueError(f"run folder {out} would not be directly inside {root}")
    if out.exists() or out.is_symlink():
        raise ValueError(f"a run named {name!r} already exists in {root}; choose another name")
    if name in started and started[name].running:
        raise ValueError(f"a job named {name!r} is already running")
    try:
        # Evaluate about 30 times a run (live active-unit curves) and keep ten snapshots.
        cfg = RunConfig(model=model, layers=layers, dataset=dataset, batch_norm=batch_norm, warmup_epochs=warmup,
                        epochs=epochs, batch_size=batch_size, device=device, seed=seed,
                        eval_every=max(1, epochs // 30), snapshot_every=max(1, epochs // 10))
    except UserError as e:
        raise ValueError(str(e)) from None
    return cfg, out


@dataclass
class Job:
    """One background training process and where it writes."""
    name: str
    cfg: RunConfig
    out: Path
    log: Path
    proc: subprocess.Popen
    started: float = field(default_factory=time.time)
    finished: float | None = None

    @property
    def running(self) -> bool:
        return self.poll() is None

    def poll(self) -> int | None:
        """The exit code, or None while running; on the first look after the end, the log moves into the run."""
        code = self.proc.poll()
        if code is not None and self.finished is None:
            self.finished = time.time()
            self._move_log()
        return code

    def _move_log(self) -> None:
        # The trainer refuses a non-empty new folder, so the log waits beside it until the run exists.
        target = self.out / LOG_NAME
        if self.out.is_dir() and self.log.is_file() and not target.exists():
            try:
                os.replace(self.log, target)
                self.log = target
            except OSError:
                pass

    @property
    def status(self) -> str:
        code = self.poll()
        return "running" if code is None else "done" if code == 0 else "stopped" if code < 0 else "failed"

    def progress(self) -> tuple[int, int]:
        """(epochs done, epochs asked for) from history.jsonl."""
        try:
            done = len({r["epoch"] for r in ckpt.read_history(self.out)})
        except UserError:
            done = 0
        return min(done, self.cfg.epochs), self.cfg.epochs

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def error_line(self) -> str:
        """The one-line reason a failed job gives (`error: ...` from the CLI), or its last log line."""
        tail = self.log_tail(50).splitlines()
        errors = [ln for ln in tail if ln.startswith("error:")]
        return (errors or tail or [f"exit code {self.proc.returncode}"])[-1]

    def stop(self) -> None:
        """Interrupt the process group; the trainer keeps its last checkpoint (resumable)."""
        if self.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
            except (ProcessLookupError, PermissionError):
                pass


# Jobs started by this process (the app server), by run name: survives page reruns, not a server restart.
started: dict[str, Job] = {}


def _env(threads: int | None = None) -> dict[str, str]:
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def start_job(cfg: RunConfig, out: Path) -> Job:
    """Start `python -m training train` for cfg into out, in the background."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f".{out.name}.{LOG_NAME}"
    argv = train_command(cfg, out, resume=False) + ["--no-progress"]
    with open(log, "wb") as f:
        proc = subprocess.Popen(argv, cwd=ROOT, env=_env(1 if cfg.dataset == "digits" else None),
                                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
    job = Job(out.name, cfg, out, log, proc)
    started[out.name] = job
    return job


# ---- the digits demo pair, on request ---------------------------------------------

@dataclass
class DemoJob:
    """`python -m training demo --out DIR`: the digits pair, trained when the "Train a model" page asks for it."""
    out: Path
    proc: subprocess.Popen
    log: Path

    @property
    def total_epochs(self) -> int:
        return sum(cfg.epochs for cfg in DEMO_RUNS.values())

    def progress(self) -> tuple[int, int]:
        done = 0
        for name in DEMO_RUNS:
            try:
                done += len({r["epoch"] for r in ckpt.read_history(self.out / name)})
            except UserError:
                pass
        return min(done, self.total_epochs), self.total_epochs

    def poll(self) -> int | None:
        return self.proc.poll()

    def ready_runs(self) -> set[str]:
        """The demo runs that have saved a checkpoint (usable while training goes on)."""
        return {name for name in DEMO_RUNS if (self.out / name / ckpt.CHECKPOINT).is_file()}

    def error_line(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return (lines or [f"exit code {self.proc.returncode}"])[-1]


# The demo job this process (the app server) started: one for every session.
demo: DemoJob | None = None


def is_training(folder: Path) -> bool:
    """Whether a job or the demo job of this process is writing the run folder now."""
    folder = Path(folder).resolve()
    if any(job.out.resolve() == folder and job.running for job in started.values()):
        return True
    return demo is not None and demo.poll() is None and folder.parent == demo.out and folder.name in DEMO_RUNS


def start_demo_once(out: Path) -> DemoJob:
    """The running demo job, or a new one into out (also after an earlier one ended)."""
    global demo
    if demo is None or demo.poll() is not None:
        demo = start_demo(out)
    return demo


def start_demo(out: Path) -> DemoJob:
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / ".demo.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-m", "training", "demo", "--out", str(out), "--no-progress"],
                                cwd=ROOT, env=_env(), stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return DemoJob(out, proc, log)
