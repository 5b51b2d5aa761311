"""The run folder: the one place that writes and reads checkpoints, history and snapshots.

RUN_DIR/
  config.json                  RunConfig
  checkpoint.safetensors       model.* weights and BN buffers (the ones a run is evaluated and explored with:
                               the moving average where training keeps one), train.* the optimizer's own
                               weights when they differ (--ema-rate), optim.* Adam state, rng.* generator
                               states; metadata: epoch, optimizer param groups (JSON)
  history.jsonl                one JSON object per completed epoch
  snapshots/points.safetensors the fixed test points that snapshots follow (index, label, image)
  snapshots/epoch_NNNNN.safetensors  posterior means of those points per layer (float16)

Only safetensors and JSON are read, so loading a run never runs code (pickle
files are refused). Every file is written to a temporary name and renamed, so a
killed run leaves either the old file or the new one, never a torn one.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from .config import RunConfig
from .errors import CheckpointError
from .models import LatentHierarchy, build_model

CONFIG = "config.json"
CHECKPOINT = "checkpoint.safetensors"
HISTORY = "history.jsonl"
SNAPSHOTS = "snapshots"
POINTS = "points.safetensors"
EVAL = "eval.json"          # an exported run's final numbers and how they were obtained (training/export.py)
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".ckpt", ".bin")
WEIGHTS_ONLY = "weights_only"  # checkpoint metadata of an exported run (training/export.py): no optimizer state
_SNAPSHOT_NAME = re.compile(r"^epoch_(\d+)\.safetensors$")


def atomic_write(path: Path, data: bytes) -> None:
    """Write data to path through a temporary file in the same folder and an fsync'd rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temp_files(run_dir: Path) -> None:
    """Delete the temporary files a killed writer left (the file they were to replace is intact)."""
    for folder in (Path(run_dir), Path(run_dir) / SNAPSHOTS):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(path, safetensors_bytes(cpu, metadata=metadata))


def read_tensors(path: Path, prefix: str = "") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors whose names start with prefix (prefix removed) and the file's metadata."""
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            return {k[len(prefix):]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}, meta
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None


# ---- config -----------------------------------------------------------------

def save_config(run_dir: Path, cfg: RunConfig) -> None:
    atomic_write(Path(run_dir) / CONFIG, cfg.to_json().encode())


def load_config(run_dir: Path) -> RunConfig:
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run folder")
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: not a run folder (no {CONFIG})")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    try:
        cfg = RunConfig.from_dict(data)
    except CheckpointError:
        raise
    except Exception as e:  # UserError from validation: re-label it as this file's problem
        raise CheckpointError(f"{path}: {e}") from None
    if cfg.input_dim <= 0:
        raise CheckpointError(f"{path}: input_dim must be a positive number")
    return cfg


# ---- checkpoint -------------------------------------------------------------

@dataclass
class TrainingState:
    epoch: int                       # completed epochs
    optimizer: dict | None           # an optimizer state_dict, or None
    rng: dict[str, torch.Tensor]     # generator states by name
    weights: dict[str, torch.Tensor] | None = None  # the optimizer's weights where model.* is their average


def save_checkpoint(run_dir: Path, model: LatentHierarchy, optimizer: torch.optim.Optimizer | None,
                    epoch: int, rng: dict[str, torch.Tensor], trained: LatentHierarchy | None = None) -> None:
    """model: the weights to evaluate and explore; trained: the optimizer's own, where model is their moving
    average (a resume goes on from both)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if trained is not None:
        tensors.update({f"train.{k}": v for k, v in trained.state_dict().items()})
    meta = {"epoch": str(epoch), "format": "lvae-explorer/1"}
    if optimizer is not None:
        state = optimizer.state_dict()
        for idx, per_param in state["state"].items():
            for name, value in per_param.items():
                tensors[f"optim.{idx}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
        groups = [{k: float(v) if torch.is_tensor(v) else v for k, v in g.items()} for g in state["param_groups"]]
        meta["param_groups"] = json.dumps(groups)
    tensors.update({f"rng.{k}": v for k, v in rng.items()})
    save_tensors(Path(run_dir) / CHECKPOINT, tensors, meta)


def _refuse_pickles(run_dir: Path) -> None:
    pickles = sorted(p.name for p in run_dir.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(f"{run_dir}: has no {CHECKPOINT} but pickle-based {', '.join(pickles)}; "
                              "those are never loaded, since unpickling can run code")


def load_model(run_dir: Path, device: str | torch.device = "cpu") -> tuple[LatentHierarchy, RunConfig, int]:
    """The model of a run folder in eval mode, its config and its completed epochs.

    Raises CheckpointError for anything wrong with the folder: missing or
    truncated checkpoint, tensors that do not fit the config, non-finite weights.
    """
    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    path = run_dir / CHECKPOINT
    if not path.is_file():
        _refuse_pickles(run_dir)
        raise CheckpointError(f"{run_dir}: no {CHECKPOINT} yet (training has not saved one)")
    weights, meta = read_tensors(path, "model.")
    model = build_model(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        what = (f"missing {', '.join(missing[:3])}" if missing else f"unexpected {', '.join(unexpected[:3])}")
        raise CheckpointError(f"{path}: weights do not fit config.json ({what}{', ...' if len(missing or unexpected) > 3 else ''})")
    for name, tensor in weights.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"{path}: {name} has shape {tuple(tensor.shape)}, config.json needs {tuple(expected[name].shape)}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: {name} holds NaN or infinite values")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in weights.items()})  # exported float16 too
    try:
        epoch = int(meta.get("epoch", "0"))
    except ValueError:
        raise CheckpointError(f"{path}: metadata epoch is not a number") from None
    return model.to(device).eval(), cfg, epoch


def load_training_state(run_dir: Path) -> TrainingState:
    """Optimizer and generator states of a checkpoint, for --resume."""
    path = Path(run_dir) / CHECKPOINT
    tensors, meta = read_tensors(path)
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    optimizer = None
    if "param_groups" in meta:
        try:
            optimizer = {"state": state, "param_groups": json.loads(meta["param_groups"])}
        except json.JSONDecodeError:
            raise CheckpointError(f"{path}: optimizer metadata is not valid JSON") from None
    rng = {k[len("rng."):]: v for k, v in tensors.items() if k.startswith("rng.")}
    weights = {k[len("train."):]: v for k, v in tensors.items() if k.startswith("train.")} or None
    if meta.get(WEIGHTS_ONLY) == "true":
        raise CheckpointError(f"{Path(run_dir)}: holds weights only (an exported run, no optimizer state), so it "
                              "cannot be resumed; start a new run from it with --init-from")
    return TrainingState(int(meta.get("epoch", "0")), optimizer, rng, weights)


# ---- history ----------------------------------------------------------------

def append_history(run_dir: Path, record: dict) -> None:
    """Append one epoch's line and fsync it, so a completed epoch is on disk before its checkpoint."""
    line = json.dumps(record, allow_nan=True) + "\n"
    with open(Path(run_dir) / HISTORY, "a") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_history(run_dir: Path) -> list[dict]:
    """Every complete, parseable line of history.jsonl (a torn last line is skipped)."""
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return []
    records = []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("epoch"), int):
            records.append(rec)
    return records


def truncate_history(run_dir: Path, last_epoch: int) -> None:
    """Keep the lines of epochs 1..last_epoch, once each: what a resumed run continues from."""
    kept: dict[int, dict] = {}
    for rec in read_history(run_dir):
        if rec["epoch"] <= last_epoch:
            kept[rec["epoch"]] = rec
    text = "".join(json.dumps(kept[e], allow_nan=True) + "\n" for e in sorted(kept))
    atomic_write(Path(run_dir) / HISTORY, text.encode())


# ---- snapshots ----------------------------------------------------------------

def save_snapshot_points(run_dir: Path, index: torch.Tensor, labels: torch.Tensor, images: torch.Tensor) -> None:
    """The fixed test points every snapshot follows; images as uint8 (0..255) so a run is self-contained."""
    img = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    save_tensors(Path(run_dir) / SNAPSHOTS / POINTS, {"index": index.long(), "label": labels.long(), "image": img})


def save_snapshot(run_dir: Path, epoch: int, means: list[torch.Tensor]) -> None:
    save_tensors(Path(run_dir) / SNAPSHOTS / f"epoch_{epoch:05d}.safetensors",
                 {f"z{i}": m.half() for i, m in enumerate(means)}, {"epoch": str(epoch)})


def snapshot_epochs(run_dir: Path) -> list[int]:
    folder = Path(run_dir) / SNAPSHOTS
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _SNAPSHOT_NAME.match(p.name)))


def load_snapshot(run_dir: Path, epoch: int) -> list[torch.Tensor]:
    tensors, _ = read_tensors(Path(run_dir) / SNAPSHOTS / f"epoch_{epoch:05d}.safetensors")
    return [tensors[f"z{i}"].float() for i in range(len(tensors))]


def load_snapshot_points(run_dir: Path) -> dict[str, torch.Tensor]:
    tensors, _ = read_tensors(Path(run_dir) / SNAPSHOTS / POINTS)
    return tensors


def remove_snapshots_after(run_dir: Path, epoch: int) -> None:
    for e in snapshot_epochs(run_dir):
        if e > epoch:
            (Path(run_dir) / SNAPSHOTS / f"epoch_{e:05d}.safetensors").unlink(missing_ok=True)
