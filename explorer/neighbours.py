"""Nearest neighbours in each latent layer: who sits next to a test image in z_i, how often neighbours
share its class, and how much two embeddings (two layers, or one layer of two runs) agree.

Neighbours are Euclidean in the posterior means (the codes the Layers page plots), found with
scikit-learn's exact ball-tree/brute search; an index is built once per (run, layer) and reused.
Low layers of a hierarchical VAE tend to group by stroke, high layers by class; a collapsed layer
(all codes at the prior mean) groups nothing, and its label agreement falls to chance.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.neighbors import NearestNeighbors


def class_balanced_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """n point indices with the classes as evenly represented as their sizes allow (never the first n):
    round-robin over the classes, each class in a seeded random order. Sorted, for stable plots."""
    labels = np.asarray(labels).ravel()
    n = min(int(n), labels.shape[0])
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in np.unique(labels)]
    picked: list[int] = []
    while len(picked) < n:
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(pool.pop())
    return np.sort(np.asarray(picked, dtype=np.int64))


class LayerIndex:
    """k-NN search over one layer's codes (N, units)."""

    def __init__(self, codes: np.ndarray):
        self.codes = np.asarray(codes, dtype=np.float32)
        self.nn = NearestNeighbors().fit(self.codes)

    def neighbours(self, points: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
        """(len(points), k) indices of each point's k nearest other points, nearest first."""
        points = np.atleast_1d(np.asarray(points, dtype=np.int64))
        k = min(int(k), self.codes.shape[0] - 1)
        _, idx = self.nn.kneighbors(self.codes[points], n_neighbors=k + 1)
        out = np.empty((len(points), k), np.int64)
        for row, (p, found) in enumerate(zip(points, idx)):
            # k + 1 found: without the point itself (wherever ties put it) k remain; if a tied duplicate
            # pushed it out of the k + 1, the first k are all others
            out[row] = found[found != p][:k]
        return out

    def all_neighbours(self, k: int) -> np.ndarray:
        return self.neighbours(np.arange(self.codes.shape[0]), k)


def label_agreement(neighbours: np.ndarray, labels: np.ndarray, points: Sequence[int] | np.ndarray | None = None
                    ) -> float:
    """The fraction of all (point, neighbour) pairs whose classes agree (k-NN label agreement). Row r of the
    table holds the neighbours of points[r] (default: of point r, as all_neighbours gives them)."""
    labels = np.asarray(labels).ravel()
    if neighbours.size == 0:
        return float("nan")
    rows = np.arange(neighbours.shape[0]) if points is None else np.asarray(points, dtype=np.int64)
    if rows.shape[0] != neighbours.shape[0]:
        raise ValueError(f"{neighbours.shape[0]} rows of neighbours for {rows.shape[0]} points")
    return float((labels[neighbours] == labels[rows][:, None]).mean())


def neighbourhood_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per point, |N_a(p) ∩ N_b(p)| / k for two neighbour tables of the same points (same k):
    1 = the two embeddings agree on who is near p, 0 = nothing in common."""
    if a.shape != b.shape:
        raise ValueError(f"neighbour tables of shapes {a.shape} and {b.shape}")
    if a.size == 0:
        return np.zeros(a.shape[0])
    return np.array([len(set(x) & set(y)) for x, y in zip(a.tolist(), b.tolist())], dtype=float) / a.shape[1]


def most_changed(a: np.ndarray, b: np.ndarray, top: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The `top` points whose neighbour sets differ most between two tables (lowest overlap first; ties by
    index), and every point's overlap."""
    overlap = neighbourhood_overlap(a, b)
    order = np.lexsort((np.arange(len(overlap)), overlap))
    return order[:top], overlap


def overlap_summary(tables_a: Sequence[np.ndarray], tables_b: Sequence[np.ndarray] | None = None) -> dict:
    """Mean neighbourhood overlap per layer: between consecutive layers of run A (z_i vs z_i+1), of run B,
    and between the two runs' same layer (when B is given: the same points, the same k)."""
    out = {"A: z_i vs z_i+1": [float(neighbourhood_overlap(x, y).mean()) for x, y in zip(tables_a, tables_a[1:])]}
    if tables_b is not None:
        out["B: z_i vs z_i+1"] = [float(neighbourhood_overlap(x, y).mean()) for x, y in zip(tables_b, tables_b[1:])]
        out["A vs B, same layer"] = [float(neighbourhood_overlap(x, y).mean()) for x, y in zip(tables_a, tables_b)]
    return out
