"""When each latent unit switched on or off during training: a collapse timeline.

Two measures, both per unit and epoch: the activity A_u = Var_x of the posterior mean (Burda et al.
2016's criterion, here along the mean path of the run's fixed snapshot points: training.checkpoint's
snapshots), and the unit's own KL(q||p) from the test evaluations in history.jsonl (`kl_per_unit`).
A threshold turns either into active / inactive; `transitions` lists the epochs a unit crossed it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def activity_over_epochs(snapshots: Mapping[int, Sequence[np.ndarray]]) -> tuple[list[int], list[np.ndarray]]:
    """(epochs, per layer an (epochs, units) array of A_u) from {epoch: per-layer means (N, units)}."""
    epochs = sorted(int(e) for e in snapshots)
    if not epochs:
        return [], []
    layers = len(snapshots[epochs[-1]])
    return epochs, [np.stack([np.asarray(snapshots[e][i], dtype=np.float64).var(axis=0) for e in epochs])
                    for i in range(layers)]


def kl_over_epochs(history: pd.DataFrame) -> tuple[list[int], list[np.ndarray]]:
    """(evaluation epochs, per layer an (epochs, units) array of each unit's test KL) from a run's history."""
    if "kl_per_unit" not in history or "epoch" not in history:
        return [], []
    rows = history.dropna(subset=["kl_per_unit"])
    rows = rows[rows["kl_per_unit"].map(lambda v: isinstance(v, list) and len(v) > 0)]
    if rows.empty:
        return [], []
    per_epoch = list(rows["kl_per_unit"])
    layers = len(per_epoch[-1])
    return [int(e) for e in rows["epoch"]], [np.array([np.asarray(p[i], dtype=np.float64) for p in per_epoch])
                                             for i in range(layers)]


def transitions(epochs: Sequence[int], values: Sequence[np.ndarray], threshold: float) -> pd.DataFrame:
    """One row per unit: layer, unit, the epochs it became active (value > threshold) and inactive,
    whether it is active at the end, and its last value."""
    rows = []
    for layer, v in enumerate(values):
        active = np.asarray(v) > threshold
        for unit in range(active.shape[1]):
            col = active[:, unit]
            on = [int(epochs[t]) for t in range(len(col)) if col[t] and (t == 0 or not col[t - 1])]
            off = [int(epochs[t]) for t in range(1, len(col)) if not col[t] and col[t - 1]]
            rows.append({"layer": f"z{layer + 1}", "unit": unit, "became active": " ".join(map(str, on)) or "never",
                         "became inactive": " ".join(map(str, off)) or "–", "active at the end": bool(col[-1]),
                         "last value": float(np.asarray(v)[-1, unit])})
    return pd.DataFrame(rows, columns=["layer", "unit", "became active", "became inactive", "active at the end",
                                       "last value"])
