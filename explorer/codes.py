"""Per-layer codes of the shown test points as files: .npz (arrays) and CSV (one row per point and
layer), each recording the run, the points' test-set indices and the selection it was made from."""
from __future__ import annotations

import io
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .encode import Encoding


def subset(enc: Encoding, rows: Sequence[int] | np.ndarray) -> Encoding:
    """The encoding of some of its points (rows), every layer."""
    rows = np.asarray(rows, dtype=np.int64)
    return Encoding(*(None if part is None else [z[rows] for z in part]
                      for part in (enc.means, enc.samples, enc.variances, enc.prior_variances)))


def codes_npz(enc: Encoding, labels: np.ndarray, run: str, selection: str,
              index: Sequence[int] | None = None) -> bytes:
    """means_z{i}, variances_z{i} (N, units_i), labels, index (test-set positions) and a JSON `about`."""
    n = len(labels)
    index = np.arange(n) if index is None else np.asarray(index)
    arrays = {"labels": np.asarray(labels), "index": index,
              "about": np.array(json.dumps({"run": run, "selection": selection, "points": n,
                                            "layers": len(enc.means), "codes": "posterior means and variances "
                                            "along the mean path (nothing sampled)"}))}
    for i, (m, v) in enumerate(zip(enc.means, enc.variances)):
        arrays[f"means_z{i + 1}"] = m
        arrays[f"variances_z{i + 1}"] = v
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def codes_frame(enc: Encoding, labels: np.ndarray, run: str, selection: str,
                index: Sequence[int] | None = None) -> pd.DataFrame:
    """Long table: run, selection, point, class, layer, unit, mean, variance."""
    index = np.arange(len(labels)) if index is None else np.asarray(index)
    parts = []
    for i, (m, v) in enumerate(zip(enc.means, enc.variances)):
        n, units = m.shape
        parts.append(pd.DataFrame({"run": run, "selection": selection, "point": np.repeat(index, units),
                                   "class": np.repeat(np.asarray(labels), units), "layer": f"z{i + 1}",
                                   "unit": np.tile(np.arange(units), n), "mean": m.ravel(), "variance": v.ravel()}))
    return pd.concat(parts, ignore_index=True)
