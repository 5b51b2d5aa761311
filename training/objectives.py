"""Evaluation measures over many images: the ELBO, the IW bound (training/models/bounds.py), active units.

All functions return device tensors and never call .item(): the training loop
reads its metrics once per epoch, so a step never waits on the GPU.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .models.bounds import (BatchStats, importance_weighted_bound, log_importance_weights,  # noqa: F401 (re-exported)
                            training_loss)
from .models.interface import CATEGORICAL, LatentHierarchy
from .models.quantize import perplexity

ACTIVE_UNIT_THRESHOLD = 0.01
ACTIVE_CHANNEL_KL = 0.1  # NVAE's rule: a channel is active with over 0.1 nats of KL per image, summed over space
ACTIVE_LAYER_KL = 1e-4  # Efficient-VDVAE's "active groups": a layer is in use with at least this KL per image


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


@torch.inference_mode()
def evaluate_elbo(model: LatentHierarchy, x: torch.Tensor, batch_size: int = 1000,
                  generator: torch.Generator | None = None) -> BatchStats:
    """Single-sample ELBO statistics summed over x (beta = 1)."""
    total: BatchStats | None = None
    for s in _batches(x.shape[0], batch_size):
        _, stats = training_loss(model, x[s], beta=1.0, generator=generator)
        if total is None:
            total = stats
        else:
            total = BatchStats(total.elbo + stats.elbo, total.recon + stats.recon,
                               [a + b for a, b in zip(total.kl_per_unit, stats.kl_per_unit)])
    assert total is not None
    return total


@torch.inference_mode()
def iw_log_likelihood(model: LatentHierarchy, x: torch.Tensor, k: int, max_rows: int = 100_000,
                      batch_size: int | None = None, eps: list[torch.Tensor] | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """log p(x) estimated by L_K for every row of x, batched over examples and samples.

    Each forward pass holds at most `max_rows` (sample, example) rows; the
    log-sum-exp over K is accumulated across sample chunks, so any K fits in
    memory and the result equals the one-pass bound up to float rounding.
    eps: optional noise per layer of shape (k, n, *code shape), to fix the draws; generator: draw from it
    instead of torch's global generator.
    """
    n = x.shape[0]
    batch_size = batch_size or max(1, min(n, max_rows // min(k, max_rows)))
    chunk = max(1, min(k, max_rows // batch_size))
    out = []
    for s in _batches(n, batch_size):
        xb = x[s]
        acc = torch.full((xb.shape[0],), -math.inf, device=x.device)
        done = 0
        while done < k:
            c = min(chunk, k - done)
            noise = [e[done:done + c, s].reshape(-1, *e.shape[2:]) for e in eps] if eps is not None else None
            log_w = model.log_weights(xb, c, eps=noise, generator=generator)
            if log_w is None:
                raise ValueError(f"the {model.family} family has no importance-weighted bound")
            acc = torch.logaddexp(acc, torch.logsumexp(log_w, dim=0))
            done += c
        out.append(acc - math.log(k))
    return torch.cat(out)


@torch.inference_mode()
def posterior_means(model: LatentHierarchy, x: torch.Tensor, batch_size: int = 1000) -> list[torch.Tensor]:
    """Every layer's posterior mean along the mean path (each layer's mean given the means of the layers
    it depends on; nothing sampled) as summary codes (N, d): what the snapshots store and the explorer's
    Layers page plots."""
    per_layer: list[list[torch.Tensor]] = [[] for _ in range(model.n_layers)]
    for s in _batches(x.shape[0], batch_size):
        for i, layer in enumerate(model.posterior(x[s], mean_path=True)):
            per_layer[i].append(model.summary_codes(i, layer.z))
    return [torch.cat(m) for m in per_layer]


@torch.inference_mode()
def unit_activity(model: LatentHierarchy, x: torch.Tensor, n_samples: int = 10,
                  batch_size: int = 1000, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """A_u = Cov_x(E_{q(u|x)}[u]) for every unit of every layer, flat (Burda et al. 2016, Sec. 5.2): the one
    definition of unit activity (eval, the training history, the Layers page, the collapse timeline).

    E_q[u|x] of a layer below the sampling order's first is an average over
    its sampled parents (q's mean depends on them): we average it over n_samples
    and subtract the Monte-Carlo noise that adds to the covariance
    (mean over x of the within-x variance / n_samples), so the estimate is unbiased.
    """
    sums: list[list[torch.Tensor]] = [[] for _ in range(model.n_layers)]
    noise: list[list[torch.Tensor]] = [[] for _ in range(model.n_layers)]
    for s in _batches(x.shape[0], batch_size):
        for i, layer in enumerate(model.posterior(x[s], n_samples, generator=generator)):
            mu = layer.mu.reshape(n_samples, -1, layer.mu[0].numel())
            sums[i].append(mu.mean(0))
            if n_samples > 1:
                noise[i].append(mu.var(0) / n_samples)
    return [activity_of_means(torch.cat(sums[i]), torch.cat(noise[i]).mean(0) if noise[i] else None)
            for i in range(len(sums))]


def activity_of_means(means: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """A_u of every unit from E_q[u|x] estimates, one row per x: the variance over x (Burda et al. 2016, Sec.
    5.2), less the Monte-Carlo noise that estimating the expectations added (none for exact means), at least 0.

    The one definition of unit activity: eval and the training history pass means averaged over samples of
    the parents (unit_activity); the Layers page and the collapse timeline pass the mean-path means they plot.
    """
    means = torch.as_tensor(means)
    if means.shape[0] < 2:
        return torch.zeros(means.shape[1:], dtype=means.dtype)
    a = means.var(0)
    return (a - noise if noise is not None else a).clamp_min(0.0)


@torch.inference_mode()
def code_counts(model: LatentHierarchy, x: torch.Tensor, batch_size: int = 1000) -> list[torch.Tensor]:
    """How often each code of every categorical layer is chosen over x (one (codes,) tensor per such layer)."""
    cats = [i for i, spec in enumerate(model.layer_specs()) if spec.kind == CATEGORICAL]
    specs = model.layer_specs()
    total = [torch.zeros(specs[i].codebook, device=x.device) for i in cats]
    for s in _batches(x.shape[0], batch_size):
        layers = model.posterior(x[s], mean_path=True)
        for t, i in zip(total, cats):
            t += torch.bincount(layers[i].index.flatten(), minlength=specs[i].codebook).to(t.dtype)
    return total


def code_use_record(counts: Sequence[torch.Tensor], prefix: str = "") -> dict:
    """Codes used (chosen at least once) and the perplexity of their use, per categorical layer, under
    `prefix`codes_used and `prefix`perplexity: the discrete twin of active units."""
    return {prefix + "codes_used": [int((c > 0).sum()) for c in counts],
            prefix + "perplexity": [float(perplexity(c)) for c in counts]}


def count_layers_in_use(kl_per_layer: Sequence[float]) -> int:
    """Efficient-VDVAE's "active groups": the layers whose mean KL per image is at least ACTIVE_LAYER_KL nats."""
    return int(sum(float(k) >= ACTIVE_LAYER_KL for k in kl_per_layer))


def count_active_channels(kl_per_unit: list[torch.Tensor], shapes: list[tuple[int, ...]],
                          threshold: float = ACTIVE_CHANNEL_KL) -> list[int]:
    """NVAE's per-channel rule (their train.py): per layer, the channels whose KL per image, summed over the
    channel's positions, is above 0.1 nats; a vector layer's channels are its units. kl_per_unit: per layer
    the flat KL per unit and image; shapes: the layers' code shapes. It counts a different thing from Burda's
    A_u (how much a unit's mean moves with x), and the two disagree, so the pages show both."""
    out = []
    for k, shape in zip(kl_per_unit, shapes):
        per_channel = torch.as_tensor(k).reshape(shape[0], -1).sum(1) if len(shape) == 3 else torch.as_tensor(k)
        out.append(int((per_channel > threshold).sum()))
    return out


def count_active_units(activity: list[torch.Tensor], threshold: float = ACTIVE_UNIT_THRESHOLD) -> list[int]:
    """Units with A_u > 0.01 per layer: Burda et al.'s active-unit criterion."""
    return [int((torch.as_tensor(a) > threshold).sum()) for a in activity]
