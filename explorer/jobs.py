"""Background training jobs started from the app's "Train a model" page (no Streamlit here).

A request from the page's form is checked field by field against fixed sets
and ranges before anything runs: its values end up on a command line and in a
folder name, so nothing the user types may reach a shell or leave the runs
folder. A job is `python -m training train ...` in its own process (list argv,
no shell, own session) so the app stays responsive and a job outlives a page
rerun; its progress is read from the run's history.jsonl.

A small server is shared by a class: jobs (and the demo pair) go through one
queue per server, `scheduler`, that runs at most `slots` of them at a time
(default 1), niced and on the cores but one, so that students' sliders keep
the CPU; the others wait with their position shown.
"""
from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training import checkpoint as ckpt
from training.config import DATASETS, DEVICES, RunConfig, train_command
from training.data import files_at_hand
from training.demo import DEMO_RUNS
from training.errors import UserError
from training.models import arch_class, family_names
from training.options import default_of, options_of

ROOT = Path(__file__).resolve().parent.parent  # the repository: `python -m training` runs from here
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
LOG_NAME = "train.log"

# Inclusive ranges of the numeric form fields.
LIMITS = {"arch": (0, 100_000), "epochs": (1, 5000), "batch_size": (2, 4096), "warmup_epochs": (0, 5000),
          "seed": (0, 2**31 - 1)}


def _choice(form: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = form.get(key)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{key.replace('_', ' ')} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _whole(form: Mapping[str, Any], key: str, default: int | None = None, limits: str | None = None) -> int:
    value = form.get(key, default)
    lo, hi = LIMITS[limits or key]
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


def arch_options(form: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The family's architecture options the form gives, each checked for its type (whole numbers, flags,
    lists of whole numbers, or one of its choices)."""
    out: dict[str, Any] = {}
    for f in options_of(arch_class(model)):
        if f.name not in form:
            continue
        value = form[f.name]
        default = default_of(f)
        if isinstance(default, bool):
            out[f.name] = _flag(form, f.name, default)
        elif isinstance(default, int):
            out[f.name] = _whole(form, f.name, limits="arch")
        elif isinstance(default, list):
            if isinstance(value, str):
                value = [int(v) if re.fullmatch(r"\d{1,6}", v.strip()) else v for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ValueError(f"{f.name.replace('_', ' ')} must be whole numbers separated by commas, not {form[f.name]!r}")
            out[f.name] = value
        elif f.metadata.get("choices"):
            out[f.name] = _choice(form, f.name, f.metadata["choices"])
        elif isinstance(default, float):
            out[f.name] = _number(form, f.name)
        elif isinstance(default, str):
            out[f.name] = _spec(form, f.name)
        else:
            raise ValueError(f"{f.name.replace('_', ' ')}: the form cannot set this option")
    return out


def _number(form: Mapping[str, Any], key: str) -> float:
    """A finite number within the architecture options' range (the family checks its own bounds after)."""
    value = form.get(key)
    lo, hi = LIMITS["arch"]
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"{key.replace('_', ' ')} must be a number from {lo} to {hi}, not {form.get(key)!r}")
    return float(value)


# A text option (a VDVAE block string such as 16x1,16d2): letters, digits and , . : x - only, never a path.
SPEC = re.compile(r"[A-Za-z0-9,.:x-]{0,200}")


def _spec(form: Mapping[str, Any], key: str) -> str:
    value = form.get(key)
    if not isinstance(value, str) or not SPEC.fullmatch(value.strip()):
        raise ValueError(f"{key.replace('_', ' ')} takes up to 200 letters, digits, ',', '.', ':' or '-', not {value!r}")
    return value.strip()


def data_dir() -> Path:
    """Where jobs started from the app read MNIST, Fashion-MNIST and Omniglot: $LVAE_DATA_DIR, else the
    repository's data/ (the Train page offers a dataset only when its files are there)."""
    return Path(os.environ.get("LVAE_DATA_DIR") or ROOT / "data").expanduser().resolve()


def validate_request(form: Mapping[str, Any], runs_dir: str | Path) -> tuple[RunConfig, Path]:
    """The RunConfig and run folder a Train form asks for; ValueError with a clear message otherwise.

    form keys: model (a family of training/models/), warmup_epochs (0 = no warm-up), dataset, epochs,
    batch_size, device, name; optional seed and any of the family's architecture options by name (the
    others take the family's defaults; its own checks have the last word). The dataset's files must be
    in data_dir().
    """
    model = _choice(form, "model", family_names())
    arch = arch_options(form, model)
    dataset = _choice(form, "dataset", DATASETS)
    device = _choice(form, "device", DEVICES)
    epochs = _whole(form, "epochs")
    batch_size = _whole(form, "batch_size")
    warmup = _whole(form, "warmup_epochs")
    seed = _whole(form, "seed", 0)
    name = check_run_name(form.get("name"))
    found, where = files_at_hand(dataset, data_dir())
    if not found:
        raise ValueError(f"{dataset} files are not on this server: {where}")
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
    if name in submitted and submitted[name].pending:
        raise ValueError(f"a job named {name!r} is already {submitted[name].state}")
    try:
        # Evaluate about 30 times a run (live active-unit curves) and keep ten snapshots.
        cfg = RunConfig.make(model=model, **arch, dataset=dataset, warmup_epochs=warmup,
                        epochs=epochs, batch_size=batch_size, device=device, seed=seed, data_dir=str(data_dir()),
                        eval_every=max(1, epochs // 30), snapshot_every=max(1, epochs // 10))
    except UserError as e:
        raise ValueError(str(e)) from None
    return cfg, out


# Training processes get only the CPU time nothing else wants: on Linux SCHED_IDLE (it runs when a core would
# otherwise idle), elsewhere the lowest nice. A class's sliders then never wait for a student's training.
NICE = 19
POLL_SECONDS = 1.0  # how often the scheduler looks for a free slot while jobs wait
INTERRUPTED = 130   # training/cli.py's exit code after SIGINT (the last checkpoint kept): "stopped", not "failed"


def _set_priority(pid: int, idle: bool) -> None:
    """idle: SCHED_IDLE (Linux) and nice NICE; else the normal policy and nice 0 (where permitted)."""
    policy = getattr(os, "SCHED_IDLE" if idle else "SCHED_OTHER", None)
    if policy is not None:
        try:
            os.sched_setscheduler(pid, policy, os.sched_param(0))
        except OSError:
            pass
    try:
        os.setpriority(os.PRIO_PROCESS, pid, NICE if idle else 0)
    except OSError:
        pass


def training_threads(slots: int) -> int:
    """Torch threads for one job: the cores but one (the app server's), shared by the slots; at least 1."""
    return max(1, ((os.cpu_count() or 2) - 1) // max(1, slots))


@dataclass(eq=False)  # identity: the queue finds an item by itself
class Queued:
    """A command that waits for a training slot, then runs in its own process (list argv, no shell, own session)."""
    argv: list[str]
    log: Path
    threads: int | None = None  # OMP/MKL threads; None: the scheduler's share of the cores
    proc: subprocess.Popen | None = None
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancelled: bool = False
    launch_error: str | None = None

    def launch(self, threads: int) -> None:
        """Start the process now (the scheduler calls this when a slot is free)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.log, "wb") as f:
                self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=_env(self.threads or threads),
                                             stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                             start_new_session=True)
        except OSError as e:
            self.launch_error, self.finished = f"could not start: {e}", time.time()
            return
        # After the start, not in preexec_fn (unsafe in a threaded server); children it starts inherit it.
        _set_priority(self.proc.pid, idle=True)
        self.started = time.time()

    def poll(self) -> int | None:
        """The exit code once the process has ended; None while it waits or runs (or was cancelled)."""
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is not None and self.finished is None:
            self.finished = time.time()
            self._ended()
        return code

    def _ended(self) -> None:
        """Called once, on the first look after the process ended."""

    @property
    def state(self) -> str:
        """queued, running, done, failed, stopped (interrupted; the last checkpoint is kept) or cancelled."""
        if self.cancelled:
            return "cancelled"
        if self.launch_error:
            return "failed"
        if self.proc is None:
            return "queued"
        code = self.poll()
        return "running" if code is None else "done" if code == 0 else \
            "stopped" if code < 0 or code == INTERRUPTED else "failed"

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def pending(self) -> bool:
        """Queued or running: not over yet."""
        return self.state in ("queued", "running")

    @property
    def position(self) -> int | None:
        """1 for the next job to start, 2 for the one after, ...; None unless queued."""
        return scheduler.position(self)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def error_line(self) -> str:
        """The one-line reason a failed job gives (`error: ...` from the CLI), or its last log line."""
        if self.launch_error:
            return self.launch_error
        tail = self.log_tail(50).splitlines()
        errors = [ln for ln in tail if ln.startswith("error:")]
        code = self.proc.returncode if self.proc is not None else None
        return (errors or tail or [f"exit code {code}"])[-1]

    def stop(self) -> None:
        """A queued job leaves the queue; a running one gets SIGINT to its process group (the trainer keeps its
        last checkpoint, resumable)."""
        if scheduler.cancel(self):
            return
        if self.poll() is None and self.proc is not None:
            # Out of SCHED_IDLE first: on a busy server an idle-class process may wait many seconds for the
            # moment of CPU it needs to save its checkpoint and exit.
            _set_priority(self.proc.pid, idle=False)
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
            except (ProcessLookupError, PermissionError):
                pass


class Scheduler:
    """At most `slots` training processes at a time for the whole server; the rest wait in submission order.

    Every session's submission goes through the one module-level `scheduler`, under one lock. A daemon thread
    starts the next job when a slot frees (no session has to be looking), and ends when nothing waits.
    The queue lives in the server's memory: a restart drops jobs that had not started (they had written
    nothing); a started job is a process of its own and carries on.
    """

    def __init__(self, slots: int = 1):
        self.slots = slots
        self.waiting: list[Queued] = []
        self.launched: list[Queued] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, item: Queued) -> Queued:
        with self._lock:
            self.waiting.append(item)
            self._pump()
            if self.waiting and self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="lvae-training-queue", daemon=True)
                self._thread.start()
        return item

    def position(self, item: Queued) -> int | None:
        with self._lock:
            return self.waiting.index(item) + 1 if item in self.waiting else None

    def cancel(self, item: Queued) -> bool:
        """Take a queued item out of the queue; False if it is not waiting (running or over)."""
        with self._lock:
            if item not in self.waiting:
                return False
            self.waiting.remove(item)
            item.cancelled, item.finished = True, time.time()
            return True

    def running(self) -> list[Queued]:
        with self._lock:
            self.launched = [p for p in self.launched if p.running]
            return list(self.launched)

    def _pump(self) -> None:
        self.launched = [p for p in self.launched if p.running]
        while self.waiting and len(self.launched) < max(1, self.slots):
            item = self.waiting.pop(0)
            item.launch(training_threads(self.slots))
            if item.running:
                self.launched.append(item)

    def _loop(self) -> None:
        while True:
            time.sleep(POLL_SECONDS)
            with self._lock:
                self._pump()
                if not self.waiting:
                    self._thread = None
                    return


# The one queue of this process (the app server): `--training-slots` / $LVAE_TRAINING_SLOTS set its size.
scheduler = Scheduler()


@dataclass(eq=False, kw_only=True)
class Job(Queued):
    """One `python -m training train` job from the Train page and where it writes."""
    name: str
    cfg: RunConfig
    out: Path

    def _ended(self) -> None:
        # The trainer refuses a non-empty new folder, so the log waits beside it until the run exists.
        target = self.out / LOG_NAME
        if self.out.is_dir() and self.log.is_file() and not target.exists():
            try:
                os.replace(self.log, target)
                self.log = target
            except OSError:
                pass

    def progress(self) -> tuple[int, int]:
        """(epochs done, epochs asked for) from history.jsonl."""
        try:
            done = len({r["epoch"] for r in ckpt.read_history(self.out)})
        except UserError:
            done = 0
        return min(done, self.cfg.epochs), self.cfg.epochs


# Jobs submitted to this process (the app server), by run name: survives page reruns, not a server restart.
submitted: dict[str, Job] = {}


def all_jobs() -> list[Job]:
    """The submitted jobs now, oldest first. A copy: every session's thread reads them while another may
    submit, and a loop over the dict itself could then fail with "dictionary changed size"."""
    return list(submitted.values())  # one C-level copy, not interrupted by another thread


def _env(threads: int | None = None) -> dict[str, str]:
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def submit_job(cfg: RunConfig, out: Path) -> Job:
    """Queue `python -m training train` for cfg into out; it starts at once if a training slot is free."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f".{out.name}.{LOG_NAME}"
    argv = train_command(cfg, out, resume=False) + ["--no-progress"]
    job = Job(argv=argv, log=log, threads=1 if cfg.dataset == "digits" else None, name=out.name, cfg=cfg, out=out)
    submitted[out.name] = job
    return scheduler.submit(job)


# ---- the digits demo pair, on request ---------------------------------------------

@dataclass(eq=False, kw_only=True)
class DemoJob(Queued):
    """`python -m training demo --out DIR`: the digits pair, trained when the "Train a model" page asks for it."""
    out: Path

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

    def ready_runs(self) -> set[str]:
        """The demo runs that have saved a checkpoint (usable while training goes on)."""
        return {name for name in DEMO_RUNS if (self.out / name / ckpt.CHECKPOINT).is_file()}


# The demo job this process (the app server) took: one for every session.
demo: DemoJob | None = None


def is_training(folder: Path) -> bool:
    """Whether a job or the demo job of this process is writing the run folder now."""
    jobs = all_jobs()
    if not jobs and (demo is None or not demo.running):  # the usual case: no system calls on every rerun
        return False
    folder = Path(folder).resolve()
    if any(job.out.resolve() == folder and job.running for job in jobs):
        return True
    return demo is not None and demo.running and folder.parent == demo.out and folder.name in DEMO_RUNS


def start_demo_once(out: Path) -> DemoJob:
    """The queued or running demo job, or a new one into out (also after an earlier one ended)."""
    global demo
    if demo is None or not demo.pending:
        demo = start_demo(out)
    return demo


def start_demo(out: Path) -> DemoJob:
    """Queue the demo pair: one training slot (its two runs take one thread each)."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "training", "demo", "--out", str(out), "--no-progress"]
    return scheduler.submit(DemoJob(argv=argv, log=out / ".demo.log", out=out))
