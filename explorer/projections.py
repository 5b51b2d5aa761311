"""One layer's codes in 2 or 3 dimensions: PCA (instant, linear, axes with a meaning), UMAP (umap-learn) or
t-SNE (scikit-learn), the two non-linear maps that keep neighbourhoods and lose distances.

umap-learn compiles its kernels with numba on first use (seconds) and t-SNE costs seconds per thousand
points, so both are imported here, inside `project`, only when asked for: importing this module, or
drawing a PCA, never loads them (tests/test_explorer_analysis.py checks it). The pages cache each
result per (run, layer, method) for every session.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .encode import layer_pca

METHODS = ("PCA", "UMAP", "t-SNE")
FLAT = 1e-8  # total variance under this: a collapsed layer, drawn as one point rather than fitted on noise


@dataclass
class Projection:
    coords: np.ndarray      # (N, k) float32
    method: str
    axes: list[str]         # one title per column
    explained: float | None  # PCA: the share of the layer's variance the k axes hold; None otherwise
    seconds: float


def project(codes: np.ndarray, method: str = "PCA", k: int = 2, seed: int = 0) -> Projection:
    """codes (N, units) mapped to k = 2 or 3 columns by `method` (one of METHODS), seeded."""
    if method not in METHODS:
        raise ValueError(f"unknown projection {method!r}; choose one of {', '.join(METHODS)}")
    z = np.asarray(codes, dtype=np.float32)
    n = z.shape[0]
    start = time.perf_counter()
    if method == "PCA" or n < 5 or float(z.var(axis=0).sum()) < FLAT:
        pca = layer_pca(z, k)
        coords = np.zeros((n, k), np.float32)
        coords[:, :min(k, pca.coords.shape[1])] = pca.coords[:, :k]
        axes = [f"PC{j + 1}" for j in range(k)]
        return Projection(coords, "PCA" if method == "PCA" else f"{method} (flat layer: PCA)", axes,
                          float(pca.explained[:k].sum()), time.perf_counter() - start)
    if method == "UMAP":
        import umap  # lazy: numba JIT on first use
        # n_jobs=1 with a random_state: reproducible (umap-learn is only deterministic single-threaded).
        coords = umap.UMAP(n_components=k, n_neighbors=min(15, n - 1), min_dist=0.1, random_state=seed,
                           n_jobs=1).fit_transform(z)
    else:
        from sklearn.manifold import TSNE  # lazy: sklearn.manifold pulls in more than PCA needs
        coords = TSNE(n_components=k, perplexity=min(30.0, (n - 1) / 3.0), init="pca", random_state=seed,
                      max_iter=500).fit_transform(z)
    name = "t-SNE" if method == "t-SNE" else "UMAP"
    return Projection(np.asarray(coords, np.float32), method, [f"{name} {j + 1}" for j in range(k)], None,
                      time.perf_counter() - start)
