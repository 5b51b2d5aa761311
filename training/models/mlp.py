"""The MLP hierarchy of Sønderby et al. 2016 shared by the VAE and LVAE families (training/models/vae.py,
lvae.py): dense blocks, Gaussian heads, the generative model p and the interface on top of them.

Both families share `GenerativeModel` (the top-down p: p(z_L) = N(0, I), p(z_i|z_{i+1}) Gaussian, p(x|z_1)
Bernoulli or Gaussian); they differ only in the inference network. Images are flattened inside: the
model reads (N, C, H, W) or flat rows and writes (N, C, H, W).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..distributions import bernoulli_log_likelihood, gaussian_log_density, positive_variance
from .interface import GAUSSIAN, Generated, LatentHierarchy, LayerPosterior, LayerSpec

if TYPE_CHECKING:
    from ..config import RunConfig


def mlp_block(n_in: int, n_hidden: int, batch_norm: bool) -> nn.Sequential:
    """Two dense layers, each Linear -> BatchNorm1d (optional) -> LeakyReLU(0.01), as in the authors' code."""
    layers: list[nn.Module] = []
    for n in (n_in, n_hidden):
        # No bias in front of BN: BN subtracts the mean (its own shift replaces the bias), so such
        # a bias gets only rounding noise as gradient, which Adam would amplify into random steps.
        layers.append(nn.Linear(n, n_hidden, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_hidden))
        layers.append(nn.LeakyReLU(0.01))
    return nn.Sequential(*layers)


class GaussianHead(nn.Module):
    """mu = Linear(d), var = Softplus(Linear(d)) + floor; with batch_norm, BN after each Linear (authors' code)."""

    def __init__(self, n_in: int, n_out: int, batch_norm: bool = False):
        super().__init__()
        def dense() -> nn.Module:
            return nn.Sequential(nn.Linear(n_in, n_out, bias=False), nn.BatchNorm1d(n_out)) if batch_norm \
                else nn.Linear(n_in, n_out)
        self.mu = dense()
        self.var = dense()

    def forward(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(d), positive_variance(self.var(d))


class GaussianLayer(nn.Module):
    """An MLP block followed by a Gaussian head: y -> (mu, var)."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, batch_norm: bool, bn_head: bool = False):
        super().__init__()
        self.mlp = mlp_block(n_in, n_hidden, batch_norm)
        self.head = GaussianHead(n_hidden, n_out, bn_head)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.mlp(y))


class GenerativeModel(nn.Module):
    """p(z_L) = N(0, I); p(z_i|z_{i+1}) = N(mu_p, var_p)(z_{i+1}); p(x|z_1) Bernoulli or Gaussian."""

    def __init__(self, cfg: RunConfig):
        super().__init__()
        h, z = cfg.hidden_sizes, cfg.latent_sizes
        self.latent_sizes = list(z)
        self.likelihood = cfg.likelihood
        # priors[i] maps z_{i+1} to p(z_i|z_{i+1}), i = 0..L-2, as wide as layer i's MLP, or (mirrored,
        # as the authors' VAE) as wide as layer i+1's.
        width = [h[i + 1] if cfg.mirror_generative_widths else h[i] for i in range(cfg.layers - 1)]
        self.priors = nn.ModuleList(GaussianLayer(z[i + 1], width[i], z[i], cfg.batch_norm, cfg.bn_heads)
                                    for i in range(cfg.layers - 1))
        self.x_mlp = mlp_block(z[0], h[0], cfg.batch_norm)
        if cfg.likelihood == "bernoulli":
            self.x_logits = nn.Linear(h[0], cfg.input_dim)
        else:
            self.x_gauss = GaussianHead(h[0], cfg.input_dim)

    @property
    def n_layers(self) -> int:
        return len(self.latent_sizes)

    def top_prior(self, n: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = like.new_zeros(n, self.latent_sizes[-1])
        return zeros, torch.ones_like(zeros)

    def prior(self, i: int, z_above: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_p, var_p) of p(z_i | z_{i+1}) for layer i < L-1."""
        return self.priors[i](z_above)

    def log_likelihood(self, x: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        """log p(x|z_1) summed over pixels, one value per row."""
        d = self.x_mlp(z1)
        if self.likelihood == "bernoulli":
            return bernoulli_log_likelihood(x, self.x_logits(d)).sum(-1)
        mu, var = self.x_gauss(d)
        return gaussian_log_density(x, mu, var).sum(-1)

    def decode(self, z1: torch.Tensor) -> torch.Tensor:
        """The mean image E[x|z_1] (pixel probabilities for Bernoulli data)."""
        d = self.x_mlp(z1)
        if self.likelihood == "bernoulli":
            return torch.sigmoid(self.x_logits(d))
        return self.x_gauss(d)[0]

    def top_down(self, n: int, fixed: dict[int, torch.Tensor] | None = None,
                 temperature: float | Sequence[float] = 1.0, use_mean: bool = False,
                 like: torch.Tensor | None = None, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Ancestral sampling z_L -> z_1 from p (the one sampler: prior samples, decoding, traversals).

        Returns [z_1, ..., z_L], n rows each. Layers in `fixed` keep the given values (n rows, or one
        row broadcast); `temperature` scales the standard deviation of each sampled layer (0: the mean),
        one value for all layers or one per layer (z_1 first);
        `use_mean` takes p's mean at every free layer, which makes decoding from a layer deterministic.
        Noise comes from `generator` (torch's global one if None) on the generator's device, then moves
        to the model's: a seed gives the same draws on any device.
        """
        fixed = fixed or {}
        like = like if like is not None else next(self.parameters())
        temps = [float(temperature)] * self.n_layers if isinstance(temperature, (int, float)) else list(temperature)
        if len(temps) != self.n_layers:
            raise ValueError(f"{len(temps)} temperatures for {self.n_layers} layers")
        zs: list[torch.Tensor] = [like.new_empty(0)] * self.n_layers
        for i in reversed(range(self.n_layers)):
            if i in fixed:
                zs[i] = fixed[i].expand(n, -1) if fixed[i].shape[0] == 1 else fixed[i]
                continue
            mu, var = self.top_prior(n, like) if i == self.n_layers - 1 else self.prior(i, zs[i + 1])
            if use_mean:
                zs[i] = mu
                continue
            device = generator.device if generator is not None else mu.device
            eps = torch.randn(mu.shape, generator=generator, device=device).to(mu.device)
            zs[i] = mu + temps[i] * torch.sqrt(var) * eps
        return zs


def glorot_init(model: nn.Module) -> None:
    """The authors' initialisation (run_models.py l.358-362): Glorot-normal weights with gain sqrt 2
    in the MLP blocks, gain 1 in the Gaussian heads and the output layer, biases 0 (BN: scale 1, shift 0)."""
    not_mlp = {id(m) for h in model.modules() if isinstance(h, GaussianHead) for m in h.modules()}
    if hasattr(model.generative, "x_logits"):
        not_mlp.add(id(model.generative.x_logits))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            in_mlp = id(m) not in not_mlp
            nn.init.xavier_normal_(m.weight, gain=2 ** 0.5 if in_mlp else 1.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)




class MLPHierarchy(LatentHierarchy):
    """A generative model plus an inference network (`inference_network`, given by the family)."""

    def __init__(self, cfg, inference: nn.Module):
        super().__init__(cfg)
        if cfg.input_dim <= 0:
            raise ValueError("RunConfig.input_dim must be set before building a model")
        self.generative = GenerativeModel(cfg)
        self.inference = inference
        if cfg.init == "glorot":
            glorot_init(self)

    def layer_specs(self) -> list[LayerSpec]:
        return [LayerSpec(f"z{i + 1}", (units,), GAUSSIAN) for i, units in enumerate(self.cfg.latent_sizes)]

    @property
    def n_layers(self) -> int:
        return len(self.cfg.latent_sizes)

    def posterior(self, x: torch.Tensor, n_samples: int = 1, mean_path: bool = False,
                  eps: list[torch.Tensor] | None = None, generator: torch.Generator | None = None) -> list[LayerPosterior]:
        return self.inference(x.flatten(1), self.generative, n_samples, sample=not mean_path, eps=eps, generator=generator)

    def log_likelihood(self, x: torch.Tensor, layers: list[LayerPosterior]) -> torch.Tensor:
        x = x.flatten(1)
        n_samples = layers[0].z.shape[0] // x.shape[0]
        return self.generative.log_likelihood(x.repeat(n_samples, 1) if n_samples > 1 else x, layers[0].z)

    def generate(self, n: int, fixed: dict[int, torch.Tensor] | None = None, temperature: float | Sequence[float] = 1.0,
                 use_mean: bool = False, generator: torch.Generator | None = None) -> Generated:
        codes = self.generative.top_down(n, fixed, temperature, use_mean, generator=generator)
        images = self.generative.decode(codes[0]).clamp(0.0, 1.0)
        return Generated(codes, images.reshape(images.shape[0], *self.image_shape))
