"""How much each latent layer tells about its input, and where rate, distortion and the bounds stand.

`mutual_information` is the aggregate-posterior estimator of He et al. 2019 ("Lagging inference
networks and posterior collapse in VAEs", their calc_mi), with log q taken at the sample:

    I(x; z) = E_x E_q(z|x) [log q(z|x) - log q(z)],   q(z) = E_x q(z|x) (the aggregate posterior)
            ~ mean_x [ log q(z_x|x) - log (1/N) sum_x' q(z_x|x') ],   z_x ~ q(z|x) once per x,

with the mixture over all N shown test images (He et al. use each batch's own; the whole set is less
biased). In a hierarchy q(z_i|x) is itself a mixture over the layers z_i depends on (the LVAE's layers
above, the VAE's below): for MI_QUERIES images it is the mixture over MI_DRAWS draws of them (z_x from
one of those draws), and each other image enters q(z) at one draw. The mean-path Gaussian would stand
for a much narrower q(z_i|x) and read high. x's own part of q(z) is its q(z_x|x), so no term exceeds log N:
the estimate is capped at log N nats (N images cannot show more). With few draws it reads somewhat high
(the draw z_x came from is in its own mixture); a finite set of images reads it low. The standard error
is over the query images.

`layer_information` gathers, per layer and unit, the KL (rate), the activity A_u and the MI;
`active_only_through_above` marks units whose mean moves with x (A_u > 0.01) though their own KL is
nil: the posterior copies p(z_i|z_{i+1}), so the unit carries the layer above's information, none of
its own. `iw_bounds` gives the IW-K bound for several K (K = 1 is the ELBO, Burda et al. 2016, eq. 8).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import logsumexp

from training.evaluate import eval_mode, iw_estimate
from training.objectives import ACTIVE_UNIT_THRESHOLD, evaluate_elbo, unit_activity
from training.models import LatentHierarchy
from training.models.interface import CATEGORICAL


LOG_2PI = math.log(2 * math.pi)
NIL_KL = 0.01  # nats per image: a unit's own KL under this carries (next to) nothing of its own
IW_KS = (1, 10, 100, 1000)
KL_SAMPLES = 10
MI_DRAWS = 64      # draws of the layers a layer depends on, per query image, for its q(z_i|x) mixture
MI_QUERIES = 1000  # images whose terms the MI averages (the mixture holds every shown image)


def gaussian_entropy(var: np.ndarray) -> np.ndarray:
    """H(N(mu, diag var)) per row, in nats."""
    return 0.5 * (var.shape[1] * (1.0 + LOG_2PI) + np.log(var).sum(axis=1))


def _log_density_matrix(z: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """log N(z_a; mu_b, diag var_b) for every query a and component b: (A, B), by matrix products
    (sum_u (z-m)^2/v expanded), never an (A, B, units) array."""
    inv = 1.0 / var
    quad = (z ** 2) @ inv.T - 2.0 * z @ (mu * inv).T + (mu ** 2 * inv).sum(axis=1)[None]
    return -0.5 * (quad + (LOG_2PI + np.log(var)).sum(axis=1)[None])


def mutual_information(mu: np.ndarray, var: np.ndarray, batch: int = 200, seed: int = 0,
                       draws: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> tuple[float, float]:
    """(estimate, standard error) of I(x; z) in nats.

    mu, var: (N, d), each image's Gaussian q(z|x) (or q(z|x, one draw of the layers z depends on)): the
    components of the aggregate q(z). draws: (queries, mu_s, var_s), where a layer's q(z|x) is a mixture:
    the indices of the query images and their (Q, S, d) Gaussians at S draws of those layers; z_x comes from
    the first draw, q(z_x|x) is the S-draw mixture, and it also stands for x's own part of q(z). Without
    draws every image is a query and q(z|x) = N(mu, var).
    """
    mu, var = np.asarray(mu, dtype=np.float64), np.asarray(var, dtype=np.float64)
    if mu.shape != var.shape or mu.ndim != 2:
        raise ValueError(f"mu {mu.shape} and var {var.shape} must be the same (N, units)")
    n = mu.shape[0]
    if n < 2:
        raise ValueError("the mutual information needs at least 2 images")
    if draws is None:
        picked, own_mu, own_var = np.arange(n), mu[:, None], var[:, None]
    else:
        picked = np.asarray(draws[0])
        own_mu, own_var = (np.asarray(a, dtype=np.float64) for a in draws[1:])
    rng = np.random.default_rng(seed)
    z = own_mu[:, 0] + np.sqrt(own_var[:, 0]) * rng.standard_normal(own_mu[:, 0].shape)
    terms = []
    for start in range(0, len(picked), max(1, int(batch))):
        rows = np.arange(start, min(len(picked), start + batch))
        zb = z[rows]
        log_qzx = logsumexp(np.stack([_log_density_matrix(zb[j:j + 1], own_mu[r], own_var[r])[0]
                                      for j, r in enumerate(rows)]), axis=1) - math.log(own_mu.shape[1])
        others = _log_density_matrix(zb, mu, var)          # (queries, N): every image's component
        others[np.arange(len(rows)), picked[rows]] = log_qzx  # x's own part of q(z): its mixture
        terms.append(log_qzx - (logsumexp(others, axis=1) - math.log(n)))
    t = np.concatenate(terms)  # every query's term, the last partial batch's too; each at most log N
    se = float(t.std(ddof=1) / math.sqrt(len(t))) if len(t) > 1 else float("nan")
    return float(t.mean()), se


def code_map_entropy(maps: np.ndarray) -> float:
    """The plug-in entropy (nats) of the distinct code maps (N, positions) of N images: I(x; z) of a layer whose
    q(z|x) is a point mass is H(z); like the Gaussian estimator it is at most log N (every image its own map)."""
    _, counts = np.unique(np.asarray(maps), axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def posterior_draws(model: LatentHierarchy, x: torch.Tensor, queries: np.ndarray, draws: int,
                    generator: torch.Generator, batch: int = 1000) -> list[tuple]:
    """Per layer the arguments of mutual_information, as summary codes: (mu, var) of q(z_i | x, one draw of
    the layers it depends on) for every image, and (queries, mu_s, var_s) at `draws` draws for the queries."""
    def layers_of(xs: torch.Tensor, k: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        out = []
        for start in range(0, xs.shape[0], batch):
            xb = xs[start:start + batch]
            parts = []
            for i, q in enumerate(model.posterior(xb, n_samples=k, generator=generator)):
                m = model.summary_codes(i, q.mu).reshape(k, xb.shape[0], -1).transpose(0, 1)
                v = model.summary_variances(i, q.var).reshape(k, xb.shape[0], -1).transpose(0, 1)
                parts.append((m.cpu().numpy(), v.cpu().numpy()))
            out.append(parts)
        return [[p[i] for p in out] for i in range(len(out[0]))]

    every = layers_of(x, 1)
    mixed = layers_of(x[torch.as_tensor(queries, device=x.device)], draws)
    return [(np.concatenate([m for m, _ in e])[:, 0], np.concatenate([v for _, v in e])[:, 0],
             (queries, np.concatenate([m for m, _ in q]), np.concatenate([v for _, v in q])))
            for e, q in zip(every, mixed)]


@dataclass
class LayerInformation:
    kl_per_unit: list[np.ndarray]     # per layer (units,): KL(q||p) per unit, nats per image (the rate's parts)
    activity: list[np.ndarray]        # per layer (units,): A_u = Cov_x E_q[u|x] (Burda et al. 2016)
    mi: list[tuple[float, float]]     # per layer: I(x; z_i) estimate and its standard error, nats
    distortion: float                 # -E_q log p(x|z_1), nats per image
    elbo: float                       # nats per image
    points: int

    @property
    def rate(self) -> list[float]:
        return [float(k.sum()) for k in self.kl_per_unit]

    def active(self, threshold: float = ACTIVE_UNIT_THRESHOLD) -> list[int]:
        return [int((a > threshold).sum()) for a in self.activity]


def layer_information(model: LatentHierarchy, images: np.ndarray, seed: int = 0,
                      progress: Callable[[float], None] | None = None) -> LayerInformation:
    """Rate (KL per unit), distortion, activity and I(x; z_i) of every layer on these images.
    progress(fraction done) after each part (the fractions are the parts' rough shares of the time)."""
    def done(fraction: float) -> None:
        if progress is not None:
            progress(fraction)
    x = torch.as_tensor(np.asarray(images, dtype=np.float32), device=next(model.parameters()).device)
    g = torch.Generator(x.device).manual_seed(seed)  # never torch's global RNG: many sessions share the process
    with eval_mode(model):
        # Each image KL_SAMPLES times: a bottom-up VAE's KL below the top is a one-sample Monte-Carlo term
        # (not analytic), whose noise (±0.01 nats per unit on 1,000 images) would hide which units are nil.
        stats = evaluate_elbo(model, x.repeat(KL_SAMPLES, *[1] * (x.ndim - 1)), generator=g)
        done(0.3)
        activity = unit_activity(model, x, generator=g)
        queries = np.sort(np.random.default_rng(seed).choice(x.shape[0], min(MI_QUERIES, x.shape[0]), replace=False))
        per_layer = posterior_draws(model, x, queries, MI_DRAWS, g)
        done(0.5)
        specs = model.layer_specs()
        maps = {i: q.index.reshape(q.index.shape[0], -1).cpu().numpy() for i, q in enumerate(model.posterior(x))
                if specs[i].kind == CATEGORICAL} if any(s.kind == CATEGORICAL for s in specs) else {}
    n = x.shape[0] * KL_SAMPLES
    mi = []
    for i, (m, v, draws) in enumerate(per_layer):
        # a layer of codes has a point-mass q: I(x; z) = H(z), estimated from the code maps the images get
        mi.append((code_map_entropy(maps[i]), float("nan")) if i in maps else mutual_information(m, v, seed=seed, draws=draws))
        done(0.5 + 0.5 * (i + 1) / len(per_layer))
    return LayerInformation(
        kl_per_unit=[(k / n).cpu().numpy().astype(np.float64) for k in stats.kl_per_unit],
        activity=[a.cpu().numpy().astype(np.float64) for a in activity],
        mi=mi,
        distortion=-float(stats.recon) / n, elbo=float(stats.elbo) / n, points=x.shape[0])


def active_only_through_above(activity: Sequence[np.ndarray], kl: Sequence[np.ndarray],
                              threshold: float = ACTIVE_UNIT_THRESHOLD, nil_kl: float = NIL_KL) -> list[np.ndarray]:
    """Per layer, a mask of the units that count as active (A_u > threshold) while their own KL is nil
    (< nil_kl nats): their posterior follows the prior's mean from the layer above."""
    return [(np.asarray(a) > threshold) & (np.asarray(k) < nil_kl) for a, k in zip(activity, kl)]


def iw_in_steps(model: LatentHierarchy, images: np.ndarray | torch.Tensor, k: int, seed: int = 0,
                progress: Callable[[float], None] | None = None, rows_per_step: int = 20_000) -> torch.Tensor:
    """log p(x) per image by the IW-k bound (Burda et al. 2016, eq. 8), a few images at a time so that a page
    can show how far it is (progress(fraction done) after each step); step c draws from seed + c."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32), device=next(model.parameters()).device)
    per = max(1, rows_per_step // max(int(k), 1))
    out = []
    for c, start in enumerate(range(0, len(x), per)):
        out.append(iw_estimate(model, x[start:start + per], int(k), seed=seed + c))
        if progress is not None:
            progress(min(1.0, (start + per) / len(x)))
    return torch.cat(out) if out else torch.zeros(0)


def iw_bounds(model: LatentHierarchy, images: np.ndarray, ks: Sequence[int] = IW_KS, seed: int = 0,
              progress: Callable[[float], None] | None = None,
              rows_per_step: int = 20_000) -> dict[int, tuple[float, float, float]]:
    """{K: (mean, standard error, standard error of the gain over the K before)} of the IW-K bound on log p(x)
    over the images (K = 1: the ELBO, Burda et al. 2016, eq. 8).

    Every L_K comes from the first K of one draw of max(ks) log weights per image, so the curve's steps are
    paired: the gain from one K to the next is measured on the same draws, and its standard error (over the
    images, of the per-image differences) is far smaller than either bound's. progress(fraction done) after
    each step of a few images.
    """
    ks = sorted(int(k) for k in ks)
    k_max = ks[-1]
    x = torch.as_tensor(np.asarray(images, dtype=np.float32), device=next(model.parameters()).device)
    per = max(1, min(rows_per_step // k_max, math.ceil(len(x) / 10)))  # ten steps at least: a bar that moves
    bounds: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    g = torch.Generator(x.device).manual_seed(seed)
    with eval_mode(model):
        for start in range(0, len(x), per):
            log_w = iw_log_weights(model, x[start:start + per], k_max, g)  # (k_max, images)
            for k in ks:
                bounds[k].append(torch.logsumexp(log_w[:k], dim=0) - math.log(k))
            if progress is not None:
                progress(min(1.0, (start + per) / len(x)))
    out: dict[int, tuple[float, float, float]] = {}
    previous = None
    for k in ks:
        ll = torch.cat(bounds[k]).double().cpu().numpy()
        gain_se = float("nan") if previous is None or len(ll) < 2 else \
            float((ll - previous).std(ddof=1) / math.sqrt(len(ll)))
        out[k] = (float(ll.mean()), float(ll.std(ddof=1) / math.sqrt(len(ll))) if len(ll) > 1 else float("nan"), gain_se)
        previous = ll
    return out


def iw_log_weights(model: LatentHierarchy, x: torch.Tensor, k: int, generator: torch.Generator,
                   max_rows: int | None = None) -> torch.Tensor:
    """(k, N) log importance weights, in chunks of at most max_rows (sample, image) rows (default: the family's
    size for a CPU)."""
    chunk = max(1, (max_rows or model.cpu_rows_per_pass) // max(1, x.shape[0]))
    parts = []
    for done in range(0, k, chunk):
        log_w = model.log_weights(x, min(chunk, k - done), generator=generator)
        if log_w is None:
            raise ValueError(f"the {model.family} family has no importance-weighted bound")
        parts.append(log_w)
    return torch.cat(parts)
