"""Vector quantisation (van den Oord et al. 2017): nearest codes, the straight-through estimator, the EMA codebook
update with Laplace smoothing, and dead-code revival.

Our own small quantiser rather than vector-quantize-pytorch: training/ may import only what a GPU machine has
(torch, numpy, scipy, scikit-learn, safetensors, tqdm), and the two were measured alike at the classic settings
(benchmarks/vq_quantizer_compare.py; the README says by how much). The state lives in buffers, so a skipped
training step (training/step.py restores buffers) undoes the codebook's update too, and checkpoints resume it.
"""
from __future__ import annotations

import math

import torch
from torch import nn

LAPLACE_EPS = 1e-5  # Sonnet's VectorQuantizerEMA epsilon


def nearest_codes(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """The index of the nearest codebook vector (K, D) for every row of z (M, D), by squared Euclidean distance."""
    dist = z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.t() + codebook.pow(2).sum(1)
    return dist.argmin(1)


def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """z_q in the forward pass, the identity's gradient to z_e in the backward (van den Oord 2017, eq. 3's sg)."""
    return z_e + (z_q - z_e).detach()


def commitment_loss(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """||z_e - sg[e]||^2 per row, summed over the row's elements (van den Oord 2017, eq. 3's third term; its weight,
    beta = 0.25, is the caller's). With the EMA update the codebook term (eq. 3's second) is not needed."""
    return (z_e - z_q.detach()).pow(2).flatten(1).sum(1)


@torch.no_grad()
def ema_codebook_update(cluster_size: torch.Tensor, embed_sum: torch.Tensor, z: torch.Tensor, index: torch.Tensor,
                        decay: float) -> torch.Tensor:
    """van den Oord 2017, App. A.1, eqs. 6-8: in place, N_i <- decay N_i + (1 - decay) n_i and
    m_i <- decay m_i + (1 - decay) sum of the z assigned to code i; returns the codebook e_i = m_i / N_i with N
    Laplace-smoothed (Sonnet's VectorQuantizerEMA), so that a code nothing chose keeps a finite vector."""
    k = cluster_size.shape[0]
    counts = torch.bincount(index, minlength=k).to(z.dtype)
    sums = torch.zeros_like(embed_sum).index_add_(0, index, z)
    cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
    embed_sum.mul_(decay).add_(sums, alpha=1 - decay)
    n = cluster_size.sum()
    smoothed = (cluster_size + LAPLACE_EPS) / (n + k * LAPLACE_EPS) * n
    return embed_sum / smoothed.unsqueeze(1)


@torch.no_grad()
def revive_dead_codes(codebook: torch.Tensor, cluster_size: torch.Tensor, embed_sum: torch.Tensor, z: torch.Tensor,
                      threshold: float) -> torch.Tensor:
    """Dead-code revival (vector-quantize-pytorch's threshold_ema_dead_code): every code whose EMA use N_i is under
    `threshold` becomes an encoder output drawn from z (M, D) at random, with N_i = threshold and m_i to match.
    In place; returns how many codes were replaced."""
    dead = cluster_size < threshold
    n_dead = dead.sum()
    if not bool(n_dead):
        return n_dead
    m = z.shape[0]
    picks = torch.randperm(m, device=z.device)[:int(n_dead)] if m >= int(n_dead) else \
        torch.randint(m, (int(n_dead),), device=z.device)
    codebook[dead] = z[picks].to(codebook.dtype)
    cluster_size[dead] = threshold
    embed_sum[dead] = codebook[dead] * threshold
    return n_dead


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of the code use given by counts (K,): K when every code is used alike, 1 for one code."""
    p = counts / counts.sum().clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum())


class Codebook(nn.Module):
    """K codes of D numbers with the EMA update (decay 0.99, the paper's) and dead-code revival; all state in buffers.

    forward(z_e (N, D, H, W)) -> (z_q with the straight-through gradient, indices (N, H, W)); in training mode it
    then moves the codebook toward this batch's assignments and revives dead codes (counted in `revived`)."""

    def __init__(self, codes: int, dim: int, decay: float = 0.99, dead_threshold: float = 1.0):
        super().__init__()
        self.decay, self.dead_threshold = decay, dead_threshold
        # cluster_size starts at 1 and embed_sum at the codebook, so that e = m / N holds from the start; with a
        # threshold above 1 the first step revives every code from the batch (a data-dependent initialisation).
        embed = torch.randn(codes, dim) / math.sqrt(dim)
        self.register_buffer("embed", embed)
        self.register_buffer("cluster_size", torch.ones(codes))
        self.register_buffer("embed_sum", embed.clone())
        self.register_buffer("revived", torch.zeros(()))  # codes revived since the model was made

    @property
    def codes(self) -> int:
        return self.embed.shape[0]

    def spread(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The codes' mean and variance per number, (1, D, 1, 1) each."""
        return self.embed.mean(0).view(1, -1, 1, 1), self.embed.var(0).view(1, -1, 1, 1)

    def lookup(self, index: torch.Tensor) -> torch.Tensor:
        """(N, H, W) indices -> (N, D, H, W) code vectors."""
        return self.embed[index].permute(0, 3, 1, 2)

    def quantize(self, z_e: torch.Tensor) -> torch.Tensor:
        """(N, D, H, W) -> the nearest codes' indices (N, H, W)."""
        n, d, h, w = z_e.shape
        return nearest_codes(z_e.permute(0, 2, 3, 1).reshape(-1, d), self.embed).view(n, h, w)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.quantize(z_e.detach())
        z_q = self.lookup(index)  # a copy: the update below changes the codebook, not this batch's codes
        if self.training:  # as Sonnet's VectorQuantizerEMA: quantise with the codebook as it was, then update it
            flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
            self.embed.copy_(ema_codebook_update(self.cluster_size, self.embed_sum, flat, index.view(-1), self.decay))
            if self.dead_threshold > 0:
                self.revived.add_(revive_dead_codes(self.embed, self.cluster_size, self.embed_sum, flat,
                                                    self.dead_threshold))
        return straight_through(z_e, z_q), index
