"""The hierarchical VAE and the Ladder VAE of Sønderby et al. 2016.

Layers are numbered 0..L-1 in code (z_1..z_L in the paper). Both models share
`GenerativeModel` (the top-down p); they differ only in the inference network:

- `BottomUpInference` (VAE):  q(z_1|x) prod_i q(z_i|z_{i-1}), sampled upwards.
- `LadderInference`   (LVAE): a deterministic upward pass gives (mu_hat, var_hat)
  per layer; the downward pass samples z_L ~ N(mu_hat_L, var_hat_L) and, below,
  merges each bottom-up estimate with p(z_i|z_{i+1}) at the sampled z_{i+1}.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .config import RunConfig
from .distributions import (bernoulli_log_likelihood, gaussian_analytical_kl, gaussian_log_density,
                            positive_variance, precision_weighted_merge, sample_gaussian)


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


@dataclass
class LatentLayer:
    """One stochastic layer of one forward pass: the sample and both distributions at it."""
    z: torch.Tensor
    mu_q: torch.Tensor
    var_q: torch.Tensor
    mu_p: torch.Tensor
    var_p: torch.Tensor
    # True when z's parent in p (z_{i+1}) was sampled *before* z_i, so that
    # KL(q(z_i|.) || p(z_i|z_{i+1})) is the exact expectation of log q - log p
    # given the parent. In the bottom-up VAE z_{i+1} is sampled from z_i, so
    # only its top layer qualifies; there the single-sample estimate is used.
    analytic_kl_valid: bool

    def log_ratio(self) -> torch.Tensor:
        """log q(z) - log p(z) per unit at the sample: the IW weight's latent term."""
        return gaussian_log_density(self.z, self.mu_q, self.var_q) - gaussian_log_density(self.z, self.mu_p, self.var_p)

    def kl(self) -> torch.Tensor:
        """The per-unit KL term of the ELBO: analytic where valid, else the single-sample estimate."""
        if self.analytic_kl_valid:
            return gaussian_analytical_kl(self.mu_q, self.var_q, self.mu_p, self.var_p)
        return self.log_ratio()


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


class BottomUpInference(nn.Module):
    """VAE inference: q(z_1|x), q(z_i|z_{i-1}); each step d = MLP(y), mu = Linear(d), var = Softplus(Linear(d))."""

    def __init__(self, cfg: RunConfig):
        super().__init__()
        h, z = cfg.hidden_sizes, cfg.latent_sizes
        inputs = [cfg.input_dim] + list(z[:-1])
        self.steps = nn.ModuleList(GaussianLayer(inputs[i], h[i], z[i], cfg.batch_norm, cfg.bn_heads)
                                   for i in range(cfg.layers))

    def forward(self, x: torch.Tensor, gen: GenerativeModel, n_samples: int = 1, sample: bool = True,
                eps: list[torch.Tensor] | None = None, generator: torch.Generator | None = None) -> list[LatentLayer]:
        qs, y = [], x
        for i, step in enumerate(self.steps):
            mu, var = step(y)
            if i == 0 and n_samples > 1:  # x-dependent part computed once, then one row per sample
                mu, var = mu.repeat(n_samples, 1), var.repeat(n_samples, 1)
            y = sample_gaussian(mu, var, eps[i] if eps else None, generator) if sample else mu
            qs.append((y, mu, var))
        top = len(qs) - 1
        layers = []
        for i, (z, mu_q, var_q) in enumerate(qs):
            mu_p, var_p = gen.top_prior(z.shape[0], z) if i == top else gen.prior(i, qs[i + 1][0])
            layers.append(LatentLayer(z, mu_q, var_q, mu_p, var_p, analytic_kl_valid=(i == top)))
        return layers


class LadderInference(nn.Module):
    """LVAE inference: deterministic upward d_n = MLP(d_{n-1}), d_0 = x; stochastic downward pass with the merge.

    Two variants of the authors' released code: `up_from_mean` feeds block n the bottom-up mean
    mu_hat_{n-1} instead of d_{n-1} (their only_mu_up); `separate_top_down` merges each bottom-up
    estimate with a top-down network of q's own (as wide as the layer above) instead of with
    p(z_i|z_{i+1}) (their ladder_share_params False).
    """

    def __init__(self, cfg: RunConfig):
        super().__init__()
        h, z = cfg.hidden_sizes, cfg.latent_sizes
        self.up_from_mean = cfg.up_from_mean
        inputs = [cfg.input_dim] + list(z[:-1] if cfg.up_from_mean else h[:-1])
        self.up = nn.ModuleList(mlp_block(inputs[i], h[i], cfg.batch_norm) for i in range(cfg.layers))
        self.heads = nn.ModuleList(GaussianHead(h[i], z[i], cfg.bn_heads) for i in range(cfg.layers))
        self.top_down = nn.ModuleList(GaussianLayer(z[i + 1], h[i + 1], z[i], cfg.batch_norm, cfg.bn_heads)
                                      for i in range(cfg.layers - 1)) if cfg.separate_top_down else None

    def upward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(mu_hat_i, var_hat_i) for every layer from the deterministic upward pass."""
        out, y = [], x
        for mlp, head in zip(self.up, self.heads):
            d = mlp(y)
            mu, var = head(d)
            out.append((mu, var))
            y = mu if self.up_from_mean else d
        return out

    def forward(self, x: torch.Tensor, gen: GenerativeModel, n_samples: int = 1, sample: bool = True,
                eps: list[torch.Tensor] | None = None, generator: torch.Generator | None = None) -> list[LatentLayer]:
        up = [(m.repeat(n_samples, 1), v.repeat(n_samples, 1)) for m, v in self.upward(x)]
        layers: list[LatentLayer] = [None] * len(up)  # type: ignore[list-item]
        z_above = None
        for i in reversed(range(len(up))):
            mu_hat, var_hat = up[i]
            if z_above is None:  # q(z_L) = N(mu_hat_L, var_hat_L), p(z_L) = N(0, I)
                mu_p, var_p = gen.top_prior(mu_hat.shape[0], mu_hat)
                mu_q, var_q = mu_hat, var_hat
            else:
                mu_p, var_p = gen.prior(i, z_above)
                mu_td, var_td = self.top_down[i](z_above) if self.top_down is not None else (mu_p, var_p)
                mu_q, var_q = precision_weighted_merge(mu_hat, var_hat, mu_td, var_td)
            z = sample_gaussian(mu_q, var_q, eps[i] if eps else None, generator) if sample else mu_q
            layers[i] = LatentLayer(z, mu_q, var_q, mu_p, var_p, analytic_kl_valid=True)
            z_above = z
        return layers


@dataclass
class ForwardPass:
    layers: list[LatentLayer]
    log_px: torch.Tensor  # log p(x|z_1), one per row (n_samples * batch rows, sample-major)


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


class HierarchicalVAE(nn.Module):
    """A generative model plus the VAE's or the LVAE's inference network."""

    def __init__(self, cfg: RunConfig):
        super().__init__()
        if cfg.input_dim <= 0:
            raise ValueError("RunConfig.input_dim must be set before building a model")
        self.cfg = cfg
        self.generative = GenerativeModel(cfg)
        self.inference = LadderInference(cfg) if cfg.model == "lvae" else BottomUpInference(cfg)
        if cfg.init == "glorot":
            glorot_init(self)

    def forward(self, x: torch.Tensor, n_samples: int = 1, eps: list[torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> ForwardPass:
        """Encode x with n_samples posterior samples each (rows: sample-major, n_samples * batch).

        eps: the standard-normal noise of each layer, (n_samples * batch, units), when the
        caller needs to control the draws (e.g. to compare two evaluation paths exactly).
        """
        layers = self.inference(x, self.generative, n_samples, eps=eps, generator=generator)
        x_rep = x.repeat(n_samples, 1) if n_samples > 1 else x
        return ForwardPass(layers, self.generative.log_likelihood(x_rep, layers[0].z))

    def encode(self, x: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """One z per layer for each row of x (the posterior means along the way when sample=False)."""
        return [layer.z for layer in self.inference(x, self.generative, 1, sample=sample, generator=generator)]
