"""The LVAE family: the Ladder VAE of Sønderby et al. 2016. A deterministic upward pass gives
(mu_hat, var_hat) per layer; the downward pass samples z_L ~ N(mu_hat_L, var_hat_L) and, below, merges
each bottom-up estimate with p(z_i|z_{i+1}) at the sampled z_{i+1} (the precision-weighted merge, eq. 17-18)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..distributions import precision_weighted_merge, sample_gaussian
from .interface import LayerPosterior, RunSettings
from ..options import option
from .mlp import GaussianHead, GaussianLayer, GenerativeModel, MLPArch, MLPHierarchy, mlp_block



@dataclass
class LVAEArch(MLPArch):
    """The MLP hierarchy's architecture and two variants of the authors' released LVAE code."""
    up_from_mean: bool = option(False, "LVAE: each upward block reads the bottom-up mean of the layer below, not "
                                       "d_{n-1} (authors' only_mu_up)")
    separate_top_down: bool = option(False, "LVAE: q merges with a top-down network of its own, not with p "
                                            "(authors' ladder_share_params False)")


class LadderInference(nn.Module):
    """LVAE inference: deterministic upward d_n = MLP(d_{n-1}), d_0 = x; stochastic downward pass with the merge.

    Two variants of the authors' released code: `up_from_mean` feeds block n the bottom-up mean
    mu_hat_{n-1} instead of d_{n-1} (their only_mu_up); `separate_top_down` merges each bottom-up
    estimate with a top-down network of q's own (as wide as the layer above) instead of with
    p(z_i|z_{i+1}) (their ladder_share_params False).
    """

    def __init__(self, cfg: RunSettings):
        super().__init__()
        h, z = cfg.arch.hidden_sizes, cfg.arch.latent_sizes
        self.up_from_mean = cfg.arch.up_from_mean
        inputs = [cfg.input_dim] + list(z[:-1] if cfg.arch.up_from_mean else h[:-1])
        self.up = nn.ModuleList(mlp_block(inputs[i], h[i], cfg.arch.batch_norm) for i in range(cfg.arch.layers))
        self.heads = nn.ModuleList(GaussianHead(h[i], z[i], cfg.arch.bn_heads) for i in range(cfg.arch.layers))
        self.top_down = nn.ModuleList(GaussianLayer(z[i + 1], h[i + 1], z[i], cfg.arch.batch_norm, cfg.arch.bn_heads)
                                      for i in range(cfg.arch.layers - 1)) if cfg.arch.separate_top_down else None

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
                eps: list[torch.Tensor] | None = None, generator: torch.Generator | None = None) -> list[LayerPosterior]:
        up = [(m.repeat(n_samples, 1), v.repeat(n_samples, 1)) for m, v in self.upward(x)]
        layers: list[LayerPosterior] = [None] * len(up)  # type: ignore[list-item]
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
            layers[i] = LayerPosterior(z, mu_q, var_q, mu_p, var_p, analytic_kl_valid=True)
            z_above = z
        return layers


class LVAE(MLPHierarchy):
    family = "lvae"
    Arch = LVAEArch

    def __init__(self, cfg: RunSettings):
        super().__init__(cfg, LadderInference(cfg))
