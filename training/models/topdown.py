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

from ..distributions import bernoulli_log_likelihood, sample_gaussian
from .interface import GAUSSIAN, ForwardPass, Generated, LatentHierarchy, LayerPosterior, LayerSpec
from .layers import prior_draw

Draw = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]  # (layer, mean, variance) -> code


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
