"""What NVAE and VDVAE share: inference and generation as one top-down pass over spatial latent layers.

A family gives the encoder's features (`_features`), the pass itself (`_top_down`) and each layer's
resolution top first (`_sides`); this base turns them into the interface's posterior, forward pass, likelihood
and sampler, as openai/vdvae's forward / forward_get_latents / forward_samples_set_latents share one decoder.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..distributions import bernoulli_log_likelihood, gaussian_analytical_kl, sample_gaussian
from .bounds import BatchStats
from .interface import GAUSSIAN, ForwardPass, Generated, LatentHierarchy, LayerPosterior, LayerSpec
from .layers import prior_draw

Draw = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]  # (layer, mean, variance) -> code

# NVAE's kl_const_coeff: the warm-up weight never drops below this, so that the first epoch (beta 0)
# cannot push the KL to thousands of nats that the rest of the warm-up must then undo.
MIN_KL_WEIGHT = 1e-4


def kl_balance_coefficients(kl_per_group: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """NVAE's KL balancing (their kl_balancer; Vahdat & Kautz 2020, App. A): each group's weight proportional
    to (its batch-mean KL + 0.01) / alpha_g, normalised to mean 1 and detached, so that groups with little KL
    are pushed to use more."""
    c = (kl_per_group.detach() + 0.01) / alpha
    return c / c.mean()


def alphas_by_side(sides: Sequence[int]) -> torch.Tensor:
    """alpha_g of every layer, in the order given: its resolution's side squared over the number of layers at
    that resolution, normalised to a smallest of 1 (NVAE's kl_balancer_coeff, 'square': (2^i)^2 / groups at
    scale i, scale i having 2^i times the top scale's side)."""
    count = {side: list(sides).count(side) for side in sides}
    alpha = torch.tensor([float(side * side) / count[side] for side in sides])
    return alpha / alpha.min()


def balance_alphas(groups: Sequence[int], sides: Sequence[int]) -> torch.Tensor:
    """alphas_by_side for `groups[i]` groups at side `sides[i]` (top first, as NVAE lists its scales)."""
    return alphas_by_side([side for n, side in zip(groups, sides) for _ in range(n)])


class TopDownHierarchy(LatentHierarchy):
    """Layers are numbered as the interface wants (z1 nearest the image); the pass goes top first."""

    # ---- what the family gives ------------------------------------------------------------------

    def _sides(self) -> list[int]:
        """Each layer's spatial side, in the order of the top-down pass (top first)."""
        raise NotImplementedError

    def _features(self, x: torch.Tensor, n_samples: int) -> Any:
        """The encoder's outputs the pass's posteriors read, each repeated n_samples times (sample-major)."""
        raise NotImplementedError

    def _top_down(self, n: int, feats: Any, fixed: dict[int, torch.Tensor],
                  draw: Draw | None) -> tuple[list[LayerPosterior | torch.Tensor], torch.Tensor]:
        """One pass: with feats, every layer's posterior (z from fixed, else draw(layer, q's mean, variance));
        without, every layer's code (from fixed, else draw from the prior); and the Bernoulli logits."""
        raise NotImplementedError

    # ---- the warm-up loss NVAE and VDVAE train with -----------------------------------------------

    def balanced_loss(self, x: torch.Tensor, beta: float, alpha: torch.Tensor | None,
                      generator=None) -> tuple[torch.Tensor, BatchStats]:
        """-ELBO with the warm-up weight beta (at least MIN_KL_WEIGHT) and, with alpha (per layer, z1 first) and
        while beta < 1, KL balancing across layers (kl_balance_coefficients); the stats as training_loss's."""
        fp = self(x, generator=generator)
        kl_maps = [gaussian_analytical_kl(q.mu, q.var, q.prior_mu, q.prior_var) for q in fp.layers]
        kl_layers = torch.stack([k.flatten(1).sum(1) for k in kl_maps], dim=1)  # (batch, layers)
        beta_t = torch.as_tensor(max(beta, MIN_KL_WEIGHT), dtype=kl_layers.dtype, device=kl_layers.device)
        if alpha is not None:
            gamma = kl_balance_coefficients(kl_layers.mean(0), alpha)
            weights = torch.where(beta_t < 1, gamma, torch.ones_like(gamma))
        else:
            weights = torch.ones(kl_layers.shape[1], device=kl_layers.device)
        loss = -(fp.log_px - beta_t * (kl_layers * weights).sum(1)).mean()
        # BatchStats are sums over the batch's rows (the meter divides by the rows), as training_loss's
        return loss, BatchStats((fp.log_px - kl_layers.sum(1)).sum().detach(), fp.log_px.sum().detach(),
                                [k.detach().flatten(1).sum(0) for k in kl_maps], weights.detach())

    # ---- the interface, from those --------------------------------------------------------------

    def layer_specs(self) -> list[LayerSpec]:
        zc = self.cfg.arch.latent_channels
        specs = [LayerSpec("", (zc, side, side), GAUSSIAN, side) for side in self._sides()]
        return [dataclasses.replace(spec, name=f"z{i + 1}") for i, spec in enumerate(reversed(specs))]

    @property
    def n_layers(self) -> int:
        return len(self._sides())

    def _encode(self, x: torch.Tensor, n_samples: int, mean_path: bool, eps, generator):
        def draw(layer: int, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
            return mu if mean_path else sample_gaussian(mu, var, eps[layer] if eps else None, generator)
        return self._top_down(x.shape[0] * n_samples, self._features(x, n_samples), {}, draw)

    def posterior(self, x, n_samples=1, mean_path=False, eps=None, generator=None) -> list[LayerPosterior]:
        return self._encode(x, n_samples, mean_path, eps, generator)[0]

    def forward(self, x: torch.Tensor, n_samples: int = 1, eps=None, generator=None) -> ForwardPass:
        """Posterior and likelihood in one top-down pass (the decoder's logits come out of the same pass)."""
        layers, logits = self._encode(x, n_samples, False, eps, generator)
        target = self.images_in(x).repeat(n_samples, 1, 1, 1)
        return ForwardPass(layers, bernoulli_log_likelihood(target, logits).flatten(1).sum(1))

    def log_likelihood(self, x, layers) -> torch.Tensor:
        _, logits = self._top_down(layers[0].z.shape[0], None, {i: q.z for i, q in enumerate(layers)}, None)
        n = layers[0].z.shape[0] // x.shape[0]
        return bernoulli_log_likelihood(self.images_in(x).repeat(n, 1, 1, 1), logits).flatten(1).sum(1)

    def generate(self, n, fixed=None, temperature: float | Sequence[float] = 1.0, use_mean=False, generator=None):
        codes, logits = self._top_down(n, None, fixed or {}, prior_draw(self.n_layers, temperature, use_mean, generator))
        return Generated(codes, torch.sigmoid(logits))
