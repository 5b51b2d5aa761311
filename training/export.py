"""`python -m training export RUN_DIR OUT_DIR`: a weights-only copy of a run folder, for shipping.

The copy is a run folder like any other (config, weights, history, snapshots and their test images)
without the optimizer state and RNG states a resume needs, plus `eval.json`: the final numbers and
how they were obtained. It loads everywhere a run loads; `train --resume` on it says it holds
weights only.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shlex
import shutil
import sys
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .config import RunConfig
from .errors import UserError
from .evaluate import evaluate_run, measures_of

DTYPES = {"float32": torch.float32, "float16": torch.float16}


def evenly_spaced(epochs: list[int], n: int | None) -> list[int]:
    """At most n of the (sorted) epochs, spread evenly and always the first and the last."""
    if n is None or len(epochs) <= n:
        return list(epochs)
    if n == 1:
        return [epochs[-1]]
    return sorted({epochs[round(i * (len(epochs) - 1) / (n - 1))] for i in range(n)})


def export_run(run_dir: Path, out_dir: Path, dtype: str = "float32", evaluation: dict | None = None,
               iw_samples: int = 0, data_dir: str | None = None, command: str | None = None,
               snapshots: int | None = None) -> Path:
    """Write the weights-only copy of run_dir to out_dir (which must not hold files); returns out_dir.

    eval.json holds `evaluation` (a saved `eval --json` result) or, with iw_samples > 0, the
    evaluation of the exported weights themselves (float16 ones included), plus the export's facts
    (command: the command line that made it, recorded as is; default: this process's arguments).
    snapshots: keep at most this many latent snapshots, evenly spaced with the first and last (a conv
    model's are over a megabyte each and a shipped model must stay under 10 MB); None: all.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if dtype not in DTYPES:
        raise UserError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if snapshots is not None and snapshots < 1:
        raise UserError("--snapshots must be at least 1")
    model, cfg, epoch = ckpt.load_model(run_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir}: already holds files; choose an empty or new folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    # The training machine's data folder means nothing where the copy goes: back to the default
    # (./data); a loader without the files falls back to the test images the snapshots carry.
    ckpt.save_config(out_dir, dataclasses.replace(cfg, data_dir=RunConfig.data_dir))
    tensors = {f"model.{k}": (v.to(DTYPES[dtype]) if v.is_floating_point() else v)
               for k, v in model.state_dict().items()}
    ckpt.save_tensors(out_dir / ckpt.CHECKPOINT, tensors,
                      {"epoch": str(epoch), "format": "lvae-explorer/1", ckpt.WEIGHTS_ONLY: "true", "dtype": dtype})
    # History and snapshots up to the checkpoint's epoch: a run still training has lines past it.
    history = [r for r in ckpt.read_history(run_dir) if r.get("epoch", 0) <= epoch]
    if history:
        ckpt.atomic_write(out_dir / ckpt.HISTORY,
                          "".join(json.dumps(r, allow_nan=True) + "\n" for r in history).encode())
    if (run_dir / ckpt.SNAPSHOTS).is_dir():
        kept = evenly_spaced([e for e in ckpt.snapshot_epochs(run_dir) if e <= epoch], snapshots)
        left = {f"epoch_{e:05d}.safetensors" for e in ckpt.snapshot_epochs(run_dir) if e not in kept}
        shutil.copytree(run_dir / ckpt.SNAPSHOTS, out_dir / ckpt.SNAPSHOTS,
                        ignore=lambda _, names: [n for n in names if n in left or n.endswith(".tmp")])
    if iw_samples > 0:
        evaluation = evaluate_run(out_dir, iw_samples, data_dir or cfg.data_dir)
    if evaluation is not None:
        record = {**measures_of(evaluation), "run": str(out_dir), "exported_from": str(run_dir), "weights_dtype": dtype,
                  "export_date": dt.date.today().isoformat(), "export_command": command or shlex.join(sys.argv)}
        ckpt.atomic_write(out_dir / ckpt.EVAL, json.dumps(record, indent=1).encode())
    return out_dir
