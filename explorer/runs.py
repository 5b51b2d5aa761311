"""Finding run folders and telling the usable ones from the broken ones.

A run folder is what `python -m training train --out DIR` writes (see
training/checkpoint.py). Discovery never raises: a folder that cannot be used
is still listed, with a one-line reason, so the app can say what is wrong
with it instead of silently hiding it.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from training import checkpoint as ckpt
from training.checkpoint import load_model  # noqa: F401  (re-exported: the one loader)
from training.config import RunConfig
from training.demo import DEMO_RUNS
from training.errors import UserError
from training.evaluate import measures_of

RUNS_ENV = "LVAE_RUNS_DIR"
DEFAULT_RUNS_DIR = Path("runs")
# The shipped runs (`python -m training export`), found beside the code whatever the working folder;
# read-only to the app. LVAE_PRETRAINED_DIR points elsewhere (tests: at an empty folder).
PRETRAINED_ENV = "LVAE_PRETRAINED_DIR"
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
# The pair the app opens on when it is there: the paper's 5-layer VAE+BN+WU and LVAE+BN+WU on MNIST.
PRETRAINED_PAIR = {"vae": "mnist-vae-bn-wu", "lvae": "mnist-lvae-bn-wu"}


@dataclass(frozen=True)
class RunInfo:
    path: Path
    name: str
    config: RunConfig | None
    error: str | None        # one-line reason the run cannot be explored; None when it can
    epochs_done: int
    stamp: float             # checkpoint mtime: a cache key that changes when training saves; 0.0 if none
    read_only: bool = False  # a shipped run under pretrained/: the app never writes into it
    evaluation: dict | None = None  # eval.json of an exported run: the final numbers and how they were made

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def label(self) -> str:
        """e.g. 'digits-lvae-bn-wu · LVAE+BN+WU, 5 layers, digits'."""
        if self.config is None:
            return f"{self.name} · unusable"
        c = self.config
        return f"{self.name} · {c.label}, {c.layers} layer{'s' if c.layers != 1 else ''}, {c.dataset}"


def pretrained_dir() -> Path:
    return Path(os.environ.get(PRETRAINED_ENV) or PRETRAINED_DIR).expanduser().resolve()


def runs_dirs(extra: Sequence[str | Path] = ()) -> list[Path]:
    """./runs, then `extra`, then the folders in $LVAE_RUNS_DIR, then pretrained/; resolved, each once.

    The first is where the app trains; pretrained/ is listed but never written (writable_runs_dirs).
    """
    key = (tuple(str(p) for p in extra), os.environ.get(RUNS_ENV), os.environ.get(PRETRAINED_ENV), os.getcwd())
    if key not in _resolved_dirs:  # resolving is a system call per path component, on every rerun otherwise
        _resolved_dirs[key] = _runs_dirs(extra)
    return list(_resolved_dirs[key])


_resolved_dirs: dict[tuple, list[Path]] = {}


def _runs_dirs(extra: Sequence[str | Path]) -> list[Path]:
    env = [p for p in os.environ.get(RUNS_ENV, "").split(os.pathsep) if p.strip()]
    out: list[Path] = []
    for p in [DEFAULT_RUNS_DIR, *extra, *env, pretrained_dir()]:
        resolved = Path(p).expanduser().resolve()
        if resolved not in out:
            out.append(resolved)
    return out


def writable_runs_dirs(extra: Sequence[str | Path] = ()) -> list[Path]:
    """The runs folders the app may train into: every one but pretrained/."""
    shipped = pretrained_dir()
    return [d for d in runs_dirs(extra) if d != shipped]


def is_read_only(folder: Path) -> bool:
    """A run under pretrained/ (the shipped pair): nothing may write into it."""
    try:
        return pretrained_dir() in Path(folder).resolve().parents
    except OSError:
        return False


def _looks_like_run(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(
            p.name in (ckpt.CONFIG, ckpt.CHECKPOINT) or p.suffix in ckpt.PICKLE_SUFFIXES for p in folder.iterdir())
    except OSError:
        return False


def _one_line(e: BaseException, limit: int = 300) -> str:
    """The reason on one line; unexpected (non-user) errors keep their type name."""
    text = " ".join(str(e).split())
    if not isinstance(e, UserError):
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def checkpoint_stamp(folder: Path) -> float:
    """RunInfo.stamp of a run folder now: its checkpoint's mtime (0.0 if none), cheap to poll."""
    return _mtime(Path(folder) / ckpt.CHECKPOINT)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# Discovery runs on every page rerun of every session, so each folder's RunInfo is kept per (folder, its
# files' mtimes and sizes); the full validation, which loads every weight, only repeats when the config,
# checkpoint or eval.json change: a run in training appends to history.jsonl every epoch, and that only
# re-reads the history. All three are shared by every session (plain dicts: a race computes twice).
_validated: dict[tuple, tuple[str | None, int, dict | None]] = {}
_history_errors: dict[tuple, str | None] = {}
_inspected: dict[tuple, RunInfo] = {}
_FORGET_AFTER = 1000  # a long-lived app sees many versions of a training run; forget old ones


def _file_key(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
        return st.st_mtime_ns, st.st_size
    except OSError:
        return 0, -1


def _remember(cache: dict, key: tuple, make: Callable[[], Any]) -> Any:
    if key not in cache:
        if len(cache) > _FORGET_AFTER:
            cache.clear()
        cache[key] = make()
    return cache[key]


def _validate_model(folder: Path) -> tuple[str | None, int, dict | None]:
    """(error or None, epochs done, eval.json or None): the config and a full model load."""
    try:
        _, _, epochs = ckpt.load_model(folder, "cpu")  # config, pickles, truncation, shapes, NaN
        return None, epochs, read_evaluation(folder)
    except Exception as e:  # noqa: BLE001  discovery must never raise, whatever the folder holds
        return _one_line(e), 0, None


def _history_error(folder: Path) -> str | None:
    try:
        ckpt.read_history(folder)  # an unreadable history.jsonl makes the run unusable
        return None
    except Exception as e:  # noqa: BLE001
        return _one_line(e)


def _validate(folder: Path) -> tuple[str | None, int, dict | None]:
    """(error or None, epochs done, eval.json or None): the config, a full model load, the history."""
    model_key = (str(folder), *(_file_key(folder / f) for f in (ckpt.CONFIG, ckpt.CHECKPOINT, ckpt.EVAL)))
    error, epochs, evaluation = _remember(_validated, model_key, lambda: _validate_model(folder))
    if error is not None:
        return error, 0, None
    history = _remember(_history_errors, (str(folder), _file_key(folder / ckpt.HISTORY)),
                        lambda: _history_error(folder))
    return (history, 0, None) if history is not None else (None, epochs, evaluation)


def read_evaluation(folder: Path) -> dict | None:
    """eval.json (written by `training export`) as a dict under today's keys (training.evaluate.measures_of);
    None when absent or unreadable."""
    try:
        record = json.loads((Path(folder) / ckpt.EVAL).read_text())
    except (OSError, ValueError):
        return None
    return measures_of(record) if isinstance(record, dict) else None


def inspect_run(folder: Path) -> RunInfo:
    """One folder's RunInfo; never raises."""
    folder = Path(folder)
    key = (str(folder), os.environ.get(PRETRAINED_ENV),  # read_only depends on where pretrained/ is
           *(_file_key(folder / f) for f in (ckpt.CONFIG, ckpt.CHECKPOINT, ckpt.HISTORY, ckpt.EVAL)))
    return _remember(_inspected, key, lambda: _inspect(folder))


def _inspect(folder: Path) -> RunInfo:
    try:
        config: RunConfig | None = ckpt.load_config(folder)
    except Exception:  # noqa: BLE001  the full validation below reports the reason
        config = None
    error, epochs, evaluation = _validate(folder)
    return RunInfo(folder, folder.name, config, error, epochs, checkpoint_stamp(folder),
                   is_read_only(folder), evaluation)


# The last look at each list of folders: (when, what was found), for discover_runs(max_age=...).
_looked: dict[tuple[str, ...], tuple[float, list[RunInfo]]] = {}


def discover_runs(dirs: Sequence[Path], max_age: float = 0.0) -> list[RunInfo]:
    """Every immediate subfolder of `dirs` that looks like a run (a folder of `dirs` itself too).

    Missing or unreadable folders in `dirs` are skipped. Runs are sorted by
    name within each folder; a folder reached twice is listed once.
    max_age > 0: what a look at most that many seconds ago found, if there was one. A server with
    many sessions then looks at the disk about once per max_age, not on every rerun of every session:
    under load each of a look's ~20 system calls lets another thread take the interpreter lock, so
    a 0.5 ms look took tens of ms on a busy two-core server.
    """
    key = tuple(str(d) for d in dirs)
    if max_age > 0:
        hit = _looked.get(key)
        if hit is not None and time.monotonic() - hit[0] < max_age:
            return list(hit[1])
    found = _discover(dirs)
    _looked[key] = (time.monotonic(), found)
    return list(found)


def forget_discovery() -> None:
    """The next discover_runs looks at the disk (a job just ended, a run was just written)."""
    _looked.clear()


def _discover(dirs: Sequence[Path]) -> list[RunInfo]:
    seen: set[Path] = set()
    found: list[RunInfo] = []
    for d in dirs:
        d = Path(d)
        try:
            candidates = [d] + sorted((p for p in d.iterdir() if p.is_dir()), key=lambda p: p.name)
        except OSError:
            continue
        for folder in candidates:
            try:
                key = folder.resolve()
            except OSError:
                continue
            if key in seen or not _looks_like_run(folder):
                continue
            seen.add(key)
            found.append(inspect_run(folder))
    return found


def load_history(path: Path) -> pd.DataFrame:
    """history.jsonl as one row per epoch (latest line wins); empty DataFrame when there is none.

    Raises CheckpointError (a UserError) if the file exists but cannot be read.
    """
    records = ckpt.read_history(Path(path))
    if not records:
        return pd.DataFrame()
    frame = pd.DataFrame(records)
    return frame.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)


def default_pair(runs: list[RunInfo]) -> tuple[RunInfo | None, RunInfo | None]:
    """(VAE, LVAE) to compare first: the shipped MNIST pair if usable, else the digits demo runs,
    else the first usable run of each model."""
    ok = [r for r in runs if r.ok and r.config is not None]

    def pick(model: str) -> RunInfo | None:
        shipped = [r for r in ok if r.read_only and r.name == PRETRAINED_PAIR[model] and r.config.model == model]
        demo = [r for r in ok if r.name in DEMO_RUNS and DEMO_RUNS[r.name].model == model and r.config.model == model]
        return (shipped or demo or [r for r in ok if r.config.model == model] or [None])[0]

    return pick("vae"), pick("lvae")
