"""How much each latent layer tells about its input: the mutual information I(x; z_i) under q.

`mutual_information` is the aggregate-posterior estimator of He et al. 2019 ("Lagging inference
networks and posterior collapse in VAEs", their calc_mi):

    I(x; z) = E_x E_q(z|x) [log q(z|x) - log q(z)],   q(z) = E_x q(z|x) (the aggregate posterior)
            ~ mean_x [ -H(q(z|x)) - log (1/B) sum_x' q(z_x | x') ],   z_x ~ q(z|x) once per x,

over batches of B test images. log q(z) from B mixture components under-estimates the aggregate
posterior's spread for small B, so the estimate is biased and capped at log B nats (it cannot tell
more than B images apart); the standard error is over the batches. For a layer of a hierarchy the
Gaussian q(z_i | x, parents) at one posterior path stands for q(z_i|x).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp

LOG_2PI = math.log(2 * math.pi)


def gaussian_entropy(var: np.ndarray) -> np.ndarray:
    """H(N(mu, diag var)) per row, in nats."""
    return 0.5 * (var.shape[1] * (1.0 + LOG_2PI) + np.log(var).sum(axis=1))


def mutual_information(mu: np.ndarray, var: np.ndarray, batch: int = 500, seed: int = 0) -> tuple[float, float]:
    """(estimate, standard error) of I(x; z) in nats from each test image's Gaussian q(z|x) = N(mu, var)."""
    mu, var = np.asarray(mu, dtype=np.float64), np.asarray(var, dtype=np.float64)
    if mu.shape != var.shape or mu.ndim != 2:
        raise ValueError(f"mu {mu.shape} and var {var.shape} must be the same (N, units)")
    rng = np.random.default_rng(seed)
    n = mu.shape[0]
    order = rng.permutation(n)
    estimates = []
    for start in range(0, n - batch + 1 if n >= batch else 1, batch):
        idx = order[start:start + batch]
        m, v = mu[idx], var[idx]
        z = m + np.sqrt(v) * rng.standard_normal(m.shape)
        # log q(z_a | x_b) for every pair (a, b): (B, B)
        diff = z[:, None, :] - m[None, :, :]
        log_density = -0.5 * (LOG_2PI + np.log(v)[None] + diff ** 2 / v[None]).sum(axis=2)
        log_qz = logsumexp(log_density, axis=1) - math.log(len(idx))
        estimates.append(float(np.mean(-gaussian_entropy(v) - log_qz)))
    est = float(np.mean(estimates))
    se = float(np.std(estimates, ddof=1) / math.sqrt(len(estimates))) if len(estimates) > 1 else float("nan")
    return est, se
