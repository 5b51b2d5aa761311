"""Procrustes alignment: rotate (and reflect) one set of 2-D or k-D coordinates onto another, so that
PCA axes do not flip or spin between the epochs of a snapshot replay."""
from __future__ import annotations

import numpy as np
from scipy.linalg import orthogonal_procrustes


def procrustes_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """source (N, k) rotated by the orthogonal R minimising ||(source - mean) R - (target - mean)||,
    then moved to target's mean; the same points in the same order in both."""
    source, target = np.asarray(source, dtype=float), np.asarray(target, dtype=float)
    if source.shape != target.shape:
        raise ValueError(f"cannot align {source.shape} onto {target.shape}: the same points are needed")
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    rotation, _ = orthogonal_procrustes(source - mu_s, target - mu_t)
    return (source - mu_s) @ rotation + mu_t
