"""What a model family's layers are and what one pass through them gives (training/models/interface.py):
layer specs, the posterior at each layer, a forward pass, generated codes and images, and the run settings
a family reads."""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from ..distributions import gaussian_analytical_kl, gaussian_log_density

GAUSSIAN, CATEGORICAL = "gaussian", "categorical"
# The most numbers a layer's summary code has (explorer/snapshots): a spatial layer larger than this is
# average-pooled over space until it fits, so 1,000 snapshot points of a 40-layer model stay a few MB.
SUMMARY_UNITS = 256


@dataclass(frozen=True)
class LayerSpec:
    """One stochastic layer as the explorer sees it."""
    name: str                      # "z1" .. "zL"
    shape: tuple[int, ...]         # (units,) or (C, H, W)
    kind: str = GAUSSIAN           # gaussian | categorical
    resolution: int | None = None  # the spatial side for a (C, H, W) layer
    codebook: int = 0              # a categorical layer's number of codes (its code vectors are the C channels)

    @property
    def units(self) -> int:
        return math.prod(self.shape)

    @property
    def pool(self) -> int:
        """The side of the spatial average pooling that makes this layer's summary code (1: none)."""
        if len(self.shape) != 3:
            return 1
        c, h, w = self.shape
        # The smallest side that tiles the map exactly (a 7x7 map: 1 or 7) and brings it within the budget.
        sides = [p for p in range(1, math.gcd(h, w) + 1) if h % p == 0 and w % p == 0]
        return next((p for p in sides if c * (h // p) * (w // p) <= SUMMARY_UNITS), sides[-1])

    @property
    def summary_units(self) -> int:
        if len(self.shape) != 3:
            return self.units
        c, h, w = self.shape
        return c * (h // self.pool) * (w // self.pool)


@dataclass
class LayerPosterior:
    """One Gaussian layer of one pass up and down: the sample and both distributions at it, (N, *shape) each."""
    z: torch.Tensor
    mu: torch.Tensor
    var: torch.Tensor
    prior_mu: torch.Tensor
    prior_var: torch.Tensor
    # True when z's parents in p were sampled before z, so that KL(q || p) given them is the exact
    # expectation of log q - log p (e.g. the LVAE's top-down order); otherwise (the bottom-up VAE below
    # its top layer) the single-sample estimate log q - log p at z is the KL term.
    analytic_kl_valid: bool

    def log_ratio(self) -> torch.Tensor:
        """log q(z) - log p(z) per unit at the sample: the importance weight's latent term."""
        return gaussian_log_density(self.z, self.mu, self.var) - gaussian_log_density(self.z, self.prior_mu, self.prior_var)

    def kl(self) -> torch.Tensor:
        """The per-unit rate (KL term of the ELBO): analytic where valid, else the single-sample estimate."""
        if self.analytic_kl_valid:
            return gaussian_analytical_kl(self.mu, self.var, self.prior_mu, self.prior_var)
        return self.log_ratio()


class CodePosterior:
    """One categorical (vector-quantised) layer of a pass: q(z|x) puts all its mass on the nearest code at every
    position. z: (N, D, H, W) the chosen codes' vectors, what the decoder reads and the explorer plots; index:
    (N, H, W) the codes; log_prior: (N, H, W) log p(code | the codes before it and the level above) under the
    family's prior over codes, so that a layer's rate in nats is -log p (log q = 0), the currency of a Gaussian
    layer's KL. The prior is a network of its own, so log_prior is computed when first read (`rate`: a function
    that returns it): encoding for the explorer's projections never pays for it."""

    analytic_kl_valid = True

    def __init__(self, z: torch.Tensor, index: torch.Tensor, rate: Callable[[], torch.Tensor],
                 prior_mu: torch.Tensor, prior_var: torch.Tensor):
        self.z, self.index, self._rate, self._log_prior = z, index, rate, None
        # The codebook's mean and per-number variance (1, D, 1, 1): the spread of the codes, which the explorer's
        # ranges (a traversal's +-3 sd) read where a Gaussian layer has its prior's variance.
        self.prior_mu, self.prior_var = prior_mu, prior_var

    @property
    def log_prior(self) -> torch.Tensor:
        if self._log_prior is None:
            self._log_prior = self._rate()
        return self._log_prior

    @property
    def mu(self) -> torch.Tensor:  # the code is q's only value: its "mean" for active units and the mean path
        return self.z

    @property
    def var(self) -> torch.Tensor:  # a point mass
        return torch.zeros_like(self.z)

    def repeat(self, n: int) -> CodePosterior:
        """n copies of every row, sample-major (as n posterior samples, all alike)."""
        return CodePosterior(self.z.repeat(n, 1, 1, 1), self.index.repeat(n, 1, 1),
                             lambda: self.log_prior.repeat(n, 1, 1), self.prior_mu, self.prior_var)

    def log_ratio(self) -> torch.Tensor:
        """log q - log p per unit: a position's -log p spread evenly over its D numbers (so that sums over a
        position, a channel map or the layer are the nats of its codes)."""
        d = self.z.shape[1]
        return (-self.log_prior / d).unsqueeze(1).expand_as(self.z)

    def kl(self) -> torch.Tensor:
        return self.log_ratio()


@dataclass
class ForwardPass:
    layers: list[LayerPosterior] | list[LayerPosterior | CodePosterior]
    log_px: torch.Tensor  # log p(x|z), one per row (n_samples * batch rows, sample-major)


@dataclass
class Generated:
    codes: list[torch.Tensor]  # every layer's code, z_1 first
    images: torch.Tensor       # (N, C, H, W) mean images in [0, 1]


def prior_draw(n_layers: int, temperature: float | Sequence[float], use_mean: bool,
               generator: torch.Generator | None) -> Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]:
    """draw(layer, mu, var) for a top-down sampler: mu + t_layer * sd * eps (the temperature scales each layer's
    prior sd, as NVAE and VDVAE sample), or mu itself with use_mean; eps from `generator` where given."""
    temps = [float(temperature)] * n_layers if isinstance(temperature, (int, float)) else [float(t) for t in temperature]
    if len(temps) != n_layers:
        raise ValueError(f"{len(temps)} temperatures for {n_layers} layers")

    def draw(layer: int, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        if use_mean:
            return mu
        device = generator.device if generator is not None else mu.device
        return mu + temps[layer] * var.sqrt() * torch.randn(mu.shape, generator=generator, device=device).to(mu.device)
    return draw


def fixed_or_drawn(layer: int, fixed: dict[int, torch.Tensor], draw: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor],
                   mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """A layer's code in a top-down pass: the fixed one where given, drawn where not. A fixed code may hold NaN
    in some places: those variates are drawn (from N(mu, var) as `draw` does), the rest kept; so a pass can keep
    part of a layer (the explorer's "keep the top q% of variates")."""
    if layer not in fixed:
        return draw(layer, mu, var)
    code = fixed[layer]
    free = torch.isnan(code)
    return torch.where(free, draw(layer, mu, var), code) if bool(free.any()) else code


def per_row(t: torch.Tensor) -> torch.Tensor:
    """Sum over every axis but the first: a per-unit term as one number per row."""
    return t.flatten(1).sum(1)


class RunSettings(Protocol):
    """What a family reads of the run's config (training.config.RunConfig): its architecture, the data's
    shape and the likelihood."""
    arch: Any
    input_dim: int
    likelihood: str

    @property
    def image_dims(self) -> tuple[int, int, int]: ...

