"""The VAE family: the MLP hierarchy of Sønderby et al. 2016 with bottom-up inference,
q(z_1|x) prod_i q(z_i|z_{i-1}), sampled upwards."""
from __future__ import annotations


import torch
from torch import nn

from ..distributions import sample_gaussian
from .interface import LayerPosterior, RunSettings
from .mlp import GaussianLayer, GenerativeModel, MLPArch, MLPHierarchy



class BottomUpInference(nn.Module):
    """VAE inference: q(z_1|x), q(z_i|z_{i-1}); each step d = MLP(y), mu = Linear(d), var = Softplus(Linear(d))."""

    def __init__(self, cfg: RunSettings):
        super().__init__()
        h, z = cfg.arch.hidden_sizes, cfg.arch.latent_sizes
        inputs = [cfg.input_dim] + list(z[:-1])
        self.steps = nn.ModuleList(GaussianLayer(inputs[i], h[i], z[i], cfg.arch.batch_norm, cfg.arch.bn_heads)
                                   for i in range(cfg.arch.layers))

    def forward(self, x: torch.Tensor, gen: GenerativeModel, n_samples: int = 1, sample: bool = True,
                eps: list[torch.Tensor] | None = None, generator: torch.Generator | None = None) -> list[LayerPosterior]:
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
            layers.append(LayerPosterior(z, mu_q, var_q, mu_p, var_p, analytic_kl_valid=(i == top)))
        return layers


class VAE(MLPHierarchy):
    family = "vae"
    Arch = MLPArch

    def __init__(self, cfg: RunSettings):
        super().__init__(cfg, BottomUpInference(cfg))
