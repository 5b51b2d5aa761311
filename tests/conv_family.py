"""A model family defined only in the tests: a two-layer convolutional Gaussian hierarchy with spatial
latents, whose image depends on both layers (as in NVAE and VDVAE, not on z_1 alone).

It exists to prove the model interface (training/models/interface.py): it trains, evaluates, exports and
opens on every page through the registry, with nothing outside this module knowing its insides.

    z2 ~ N(0, I)                              (C, H/4, W/4)
    d  = up(z2)                               the top-down state at H/2
    z1 ~ N(mu, var)(d)                        (C, H/2, W/2)
    x  ~ Bernoulli(out(d, z1))                (1, H, W)
    q(z1|x), q(z2|x) from one upward pass (z2 is sampled first, so both KL terms are analytic).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from training.distributions import bernoulli_log_likelihood, positive_variance, sample_gaussian
from training.errors import UserError
from training.models import LatentHierarchy, LayerPosterior, LayerSpec, register
from training.models.interface import GAUSSIAN, Generated
from training.models.layers import fixed_or_drawn, prior_draw
from training.options import option


@dataclass
class ConvArch:
    layers: int = option(2, "stochastic layers (this test family has exactly 2)", required=True)
    channels: int = option(8, "channels of the convolutions")
    latent_channels: int = option(2, "channels of each latent map")
    LEGACY = {}

    def completed(self, dataset: str) -> ConvArch:
        if self.layers != 2 or self.channels < 1 or self.latent_channels < 1:
            raise UserError("the test conv family has 2 layers and at least 1 channel")
        return dataclasses.replace(self)

    def tags(self) -> list[str]:
        return ["BN"]

    def summary(self) -> str:
        return f"2 spatial layers of {self.latent_channels} channels, {self.channels}-channel convolutions"


def conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.01))


class Gaussian2d(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.mu, self.var = nn.Conv2d(c_in, c_out, 1), nn.Conv2d(c_in, c_out, 1)

    def forward(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(d), positive_variance(self.var(d))


class ConvHierarchy(LatentHierarchy):
    family = "testconv"
    Arch = ConvArch

    def __init__(self, cfg):
        super().__init__(cfg)
        a = cfg.arch
        c, zc = a.channels, a.latent_channels
        image_c = self.image_shape[0]
        self.enc1, self.enc2 = conv(image_c, c, 2), conv(c, c, 2)
        self.q1, self.q2 = Gaussian2d(c, zc), Gaussian2d(c, zc)
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), conv(zc, c))
        self.p1 = Gaussian2d(c, zc)
        self.out = nn.Sequential(nn.Upsample(scale_factor=2), conv(c + zc, c), nn.Conv2d(c, image_c, 1))

    def layer_specs(self) -> list[LayerSpec]:
        _, h, w = self.image_shape
        zc = self.cfg.arch.latent_channels
        return [LayerSpec("z1", (zc, h // 2, w // 2), GAUSSIAN, h // 2), LayerSpec("z2", (zc, h // 4, w // 4), GAUSSIAN, h // 4)]

    def posterior(self, x, n_samples=1, mean_path=False, eps=None, generator=None) -> list[LayerPosterior]:
        h1 = self.enc1(self.images_in(x))
        (m1, v1), (m2, v2) = self.q1(h1), self.q2(self.enc2(h1))
        m1, v1, m2, v2 = (t.repeat(n_samples, 1, 1, 1) for t in (m1, v1, m2, v2))
        z2 = m2 if mean_path else sample_gaussian(m2, v2, eps[1] if eps else None, generator)
        z1 = m1 if mean_path else sample_gaussian(m1, v1, eps[0] if eps else None, generator)
        pm1, pv1 = self.p1(self.up(z2))
        return [LayerPosterior(z1, m1, v1, pm1, pv1, True),
                LayerPosterior(z2, m2, v2, torch.zeros_like(m2), torch.ones_like(v2), True)]

    def _logits(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([self.up(z2), z1], dim=1))

    def log_likelihood(self, x, layers) -> torch.Tensor:
        x = self.images_in(x)
        n = layers[0].z.shape[0] // x.shape[0]
        x = x.repeat(n, 1, 1, 1)
        return bernoulli_log_likelihood(x, self._logits(layers[0].z, layers[1].z)).flatten(1).sum(1)

    def generate(self, n, fixed=None, temperature: float | Sequence[float] = 1.0, use_mean=False, generator=None):
        fixed = fixed or {}
        like = next(self.parameters())
        draw = prior_draw(2, temperature, use_mean, generator)  # the interface's helpers: NaN in a fixed code is drawn
        spec2 = self.layer_specs()[1]
        z2 = fixed_or_drawn(1, fixed, draw, like.new_zeros(n, *spec2.shape), like.new_ones(n, *spec2.shape))
        z2 = z2.expand(n, *z2.shape[1:])
        mu1, var1 = self.p1(self.up(z2))
        z1 = fixed_or_drawn(0, fixed, draw, mu1, var1).expand(n, *mu1.shape[1:])
        return Generated([z1, z2], torch.sigmoid(self._logits(z1, z2)))


register(ConvHierarchy, "Test conv hierarchy")

