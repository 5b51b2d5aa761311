"""The MLP hierarchy of Sønderby et al. 2016 shared by the VAE and LVAE families (training/models/vae.py,
lvae.py): dense blocks, Gaussian heads, the generative model p and the interface on top of them.

Both families share `GenerativeModel` (the top-down p: p(z_L) = N(0, I), p(z_i|z_{i+1}) Gaussian, p(x|z_1)
Bernoulli or Gaussian); they differ only in the inference network. Images are flattened inside: the
model reads (N, C, H, W) or flat rows and writes (N, C, H, W).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..distributions import bernoulli_log_likelihood, gaussian_log_density, positive_variance
from ..errors import UserError
from ..options import option
from .interface import GAUSSIAN, Generated, LatentHierarchy, LayerPosterior, LayerSpec, RunSettings
from .layers import fixed_or_drawn, prior_draw


# Sønderby et al. 2016, Sec. 3: MNIST sizes for layers 1..5 (a model with L
# layers takes the first L of each).
PAPER_HIDDEN = (512, 256, 128, 64, 32)
PAPER_LATENT = (64, 32, 16, 8, 4)
# For 8x8 `digits` (64 pixels, 1,437 training images) the paper's 512-unit
# first layer is wider than the input and overfits in a few epochs; these keep
# the same shrinking shape at a scale that trains in seconds on a CPU.
SMALL_HIDDEN = (128, 64, 32, 32, 16)
SMALL_LATENT = (16, 8, 8, 4, 2)
MAX_LAYERS = len(PAPER_HIDDEN)
INITS = ("torch", "glorot")


def default_sizes(dataset: str, layers: int) -> tuple[list[int], list[int]]:
    hidden, latent = (SMALL_HIDDEN, SMALL_LATENT) if dataset == "digits" else (PAPER_HIDDEN, PAPER_LATENT)
    return list(hidden[:layers]), list(latent[:layers])


@dataclass
class MLPArch:
    """The architecture of the MLP hierarchy (the VAE's; the LVAE's adds two options)."""
    layers: int = option(5, "stochastic layers (1..5 with the default sizes)", required=True)
    hidden_sizes: list[int] = option([], "deterministic units per layer, e.g. 512,256,128 (default: the paper's "
                                         "for MNIST-size data, smaller for digits)")
    latent_sizes: list[int] = option([], "stochastic units per layer, e.g. 64,32,16")
    batch_norm: bool = option(True, "batch normalization (--no-bn: none)", aliases=("--bn",))
    # The authors' Glorot-normal init (gain sqrt 2 in the MLPs); "torch" is PyTorch's default. Measured on
    # the digits demo pair (seed 1): it moves IW-1000 by 0.03-0.07 nats and the active units per layer
    # (VAE 16/4/0/0/0 -> 16/8/1/0/0, LVAE 16/4/1/1/0 -> 16/3/3/3/0), so the grid follows the authors.
    init: str = option("glorot", "weight initialisation (glorot: the authors')", choices=INITS)
    # Variants of the authors' released code; the defaults follow the paper's text (Sec. 2).
    bn_heads: bool = option(False, "BN on every latent mean and variance head, in q and p (authors' code)")
    mirror_generative_widths: bool = option(False, "p(z_i|z_i+1) as wide as layer i+1's MLP, mirroring the "
                                                   "encoder (authors' VAE)")

    # Runs saved before a field existed were built the way the code then worked.
    LEGACY = {"init": "torch"}
    # The options the Train form shows first, with their labels (the others sit in an expander).
    FORM = {"layers": "Stochastic layers", "batch_norm": "Batch normalization"}

    def completed(self, dataset: str) -> MLPArch:
        """This architecture with the dataset's default sizes where none are given, validated."""
        arch = self
        if not self.hidden_sizes or not self.latent_sizes:
            hidden, latent = default_sizes(dataset, min(max(self.layers, 1), MAX_LAYERS))
            arch = dataclasses.replace(self, hidden_sizes=self.hidden_sizes or hidden,
                                       latent_sizes=self.latent_sizes or latent)
        arch.validate()
        return arch

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise UserError(msg)
        need(isinstance(self.layers, int) and 1 <= self.layers, "layers must be a whole number of at least 1")
        need(len(self.hidden_sizes) == self.layers and len(self.latent_sizes) == self.layers,
             f"need {self.layers} hidden and latent sizes (one per layer); the defaults cover up to {MAX_LAYERS} layers")
        need(all(isinstance(n, int) and n > 0 for n in self.hidden_sizes + self.latent_sizes),
             "layer sizes must be positive whole numbers")
        need(self.init in INITS, f"init must be one of {', '.join(INITS)}, not {self.init!r}")

    def tags(self) -> list[str]:
        """What the paper's labels name of it (LVAE+BN+WU)."""
        return ["BN"] if self.batch_norm else []

    def summary(self) -> str:
        """One line for tables: the latent units per layer and whether there is batch normalization."""
        return " / ".join(map(str, self.latent_sizes)) + " latent units, " + ("batch norm" if self.batch_norm else "no batch norm")


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

    def __init__(self, cfg: RunSettings):
        super().__init__()
        arch = cfg.arch
        h, z = arch.hidden_sizes, arch.latent_sizes
        self.latent_sizes = list(z)
        self.likelihood = cfg.likelihood
        # priors[i] maps z_{i+1} to p(z_i|z_{i+1}), i = 0..L-2, as wide as layer i's MLP, or (mirrored,
        # as the authors' VAE) as wide as layer i+1's.
        width = [h[i + 1] if cfg.arch.mirror_generative_widths else h[i] for i in range(cfg.arch.layers - 1)]
        self.priors = nn.ModuleList(GaussianLayer(z[i + 1], width[i], z[i], cfg.arch.batch_norm, cfg.arch.bn_heads)
                                    for i in range(cfg.arch.layers - 1))
        self.x_mlp = mlp_block(z[0], h[0], cfg.arch.batch_norm)
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
        row broadcast; NaN where a variate is to be drawn all the same); `temperature` scales the standard deviation of each sampled layer (0: the mean),
        one value for all layers or one per layer (z_1 first);
        `use_mean` takes p's mean at every free layer, which makes decoding from a layer deterministic.
        Noise comes from `generator` (torch's global one if None) on the generator's device, then moves
        to the model's: a seed gives the same draws on any device.
        """
        fixed = fixed or {}
        like = like if like is not None else next(self.parameters())
        draw = prior_draw(self.n_layers, temperature, use_mean, generator)
        zs: list[torch.Tensor] = [like.new_empty(0)] * self.n_layers
        for i in reversed(range(self.n_layers)):
            if i in fixed and not bool(torch.isnan(fixed[i]).any()):  # the whole layer kept: no prior to compute
                zs[i] = fixed[i].expand(n, -1) if fixed[i].shape[0] == 1 else fixed[i]
                continue
            mu, var = self.top_prior(n, like) if i == self.n_layers - 1 else self.prior(i, zs[i + 1])
            zs[i] = fixed_or_drawn(i, fixed, draw, mu, var)
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
        if cfg.arch.init == "glorot":
            glorot_init(self)

    def layer_specs(self) -> list[LayerSpec]:
        return [LayerSpec(f"z{i + 1}", (units,), GAUSSIAN) for i, units in enumerate(self.cfg.arch.latent_sizes)]

    @property
    def n_layers(self) -> int:
        return len(self.cfg.arch.latent_sizes)

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
