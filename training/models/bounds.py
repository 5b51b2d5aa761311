"""The bounds every family with Gaussian layers trains on: the ELBO with warm-up and the importance-weighted
bound, from one forward pass (training/models/layers.ForwardPass).

All functions return device tensors and never call .item(): the training loop reads its metrics once per
epoch, so a step never waits on the GPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..distributions import log_mean_exp
from .layers import ForwardPass, per_row


@dataclass
class BatchStats:
    """Sums over the rows of a batch (divide by the row count for means)."""
    elbo: torch.Tensor             # beta = 1 ELBO estimate
    recon: torch.Tensor            # log p(x|z_1)
    kl_per_unit: list[torch.Tensor]  # one (units,) tensor per layer
    kl_weights: torch.Tensor | None = None  # (layers,) the KL terms' weights in the loss (KL balancing), if any
    code_counts: list[torch.Tensor] | None = None  # per categorical layer (codes,): how often each code was chosen
    revived: torch.Tensor | None = None  # per categorical layer: dead codes revived in this step

    def kl_per_layer(self) -> torch.Tensor:
        return torch.stack([k.sum() for k in self.kl_per_unit])


def log_importance_weights(fp: ForwardPass, beta: float = 1.0) -> torch.Tensor:
    """log w = log p(x|z) + beta * sum_i [log p(z_i|z_{i+1}) - log q(z_i|.)], one per row."""
    latent = sum(per_row(layer.log_ratio()) for layer in fp.layers)
    return fp.log_px - beta * latent


def importance_weighted_bound(log_w: torch.Tensor) -> torch.Tensor:
    """L_K = log (1/K) sum_k w_k per example, from log_w of shape (K, batch).

    Burda et al. 2016, eq. (8); K = 1 is the ELBO's single-sample estimate.
    """
    return log_mean_exp(log_w, dim=0)


def training_loss(model: Any, x: torch.Tensor, beta: float, iw_samples: int = 1,
                  mc_samples: int = 1, generator: torch.Generator | None = None) -> tuple[torch.Tensor, BatchStats]:
    """The loss trained on (mean over the batch) and the batch's statistics: -ELBO for K = 1, the
    importance-weighted bound -L_K for K = iw_samples > 1.

    K = iw_samples importance samples inside the log, M = mc_samples Monte-Carlo samples averaged
    outside it (Burda et al. 2016, eq. 8; the authors' iw_samples and eq_samples). K = 1:
    -(E_q[log p(x|z)] - beta * KL), Sønderby et al. 2016 Sec. 2.3, with the KL per layer analytic
    where the sampling order allows it. K > 1: -L_K with beta on the latent terms of each weight.
    """
    n = iw_samples * mc_samples
    fp = model(x, n_samples=n, generator=generator)
    if iw_samples == 1:
        kl_units = [layer.kl() for layer in fp.layers]
        kl = sum(per_row(k) for k in kl_units)
        loss = -(fp.log_px - beta * kl).mean()  # the mean over M samples and the batch alike
        elbo = (fp.log_px - kl).sum() / n
    else:
        kl_units = [layer.log_ratio() for layer in fp.layers]
        log_w = log_importance_weights(fp, beta).view(mc_samples, iw_samples, -1)
        loss = -importance_weighted_bound(log_w.transpose(0, 1)).mean()
        # Per-example statistics average over all n samples.
        elbo = log_importance_weights(fp).sum() / n
    recon = fp.log_px.sum() / n
    kl_per_unit = [k.detach().flatten(1).sum(0) / n for k in kl_units]
    return loss, BatchStats(elbo.detach(), recon.detach(), kl_per_unit)
