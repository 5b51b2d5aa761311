"""The probability math of the paper as small pure functions on tensors.

Every Gaussian here is diagonal and given by its mean and *variance* (not the
standard deviation), the parameterisation the paper uses throughout.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)

# Sønderby et al. add 1e-5 to every variance so that the precision-weighted
# merge and the Gaussian densities never divide by zero.
VARIANCE_FLOOR = 1e-5


def positive_variance(raw: torch.Tensor) -> torch.Tensor:
    """var = Softplus(Linear(d)) + floor, as in the authors' code."""
    return F.softplus(raw) + VARIANCE_FLOOR


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, var) per unit (not summed)."""
    return -0.5 * (LOG_2PI + torch.log(var) + (z - mu) ** 2 / var)


def gaussian_analytical_kl(mu_q: torch.Tensor, var_q: torch.Tensor,
                           mu_p: torch.Tensor, var_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) per unit (not summed)."""
    return 0.5 * (torch.log(var_p) - torch.log(var_q) + (var_q + (mu_q - mu_p) ** 2) / var_p - 1.0)


def precision_weighted_merge(mu_hat: torch.Tensor, var_hat: torch.Tensor,
                             mu_p: torch.Tensor, var_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The LVAE's q(z_i|.) from the bottom-up estimate and the top-down prior.

    Sønderby et al. 2016, Sec. 2.2: var_q = 1/(var_hat^-1 + var_p^-1),
    mu_q = (mu_hat var_hat^-1 + mu_p var_p^-1) var_q.
    """
    prec_hat, prec_p = 1.0 / var_hat, 1.0 / var_p
    var_q = 1.0 / (prec_hat + prec_p)
    mu_q = (mu_hat * prec_hat + mu_p * prec_p) * var_q
    return mu_q, var_q


def sample_gaussian(mu: torch.Tensor, var: torch.Tensor, eps: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Reparameterised sample z = mu + sqrt(var) * eps, eps ~ N(0, I) unless given (Kingma & Welling 2014).

    generator: draw eps from it instead of torch's global generator (the app seeds its own per request).
    """
    if eps is None:
        eps = torch.randn_like(mu) if generator is None else \
            torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.sqrt(var) * eps


def bernoulli_log_likelihood(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log p(x|z) per pixel for binary (or [0,1]) x, stable in the logits."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none")


def log_mean_exp(a: torch.Tensor, dim: int) -> torch.Tensor:
    """log(mean(exp(a))) along dim, stable for large |a| (the IW bound's core)."""
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


def warmup_beta(epoch: int, warmup_epochs: int) -> float:
    """KL weight beta during epoch `epoch` (0-based): linear 0 -> 1 over warmup_epochs.

    Sønderby et al. 2016, Sec. 2.3 (deterministic warm-up): beta is 0 in the
    first epoch and reaches 1 after `warmup_epochs` epochs; without warm-up
    (warmup_epochs == 0) beta is 1 from the start.
    """
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, epoch / warmup_epochs)


def warmup_beta_at_step(step: int, warmup_steps: int) -> float:
    """KL weight beta at training step `step` (0-based): linear 0 -> 1 over warmup_steps, a step at a time
    (Efficient-VDVAE's warm-up: its binarized MNIST reaches 1 after 500 steps); 1 without warm-up."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, step / warmup_steps)
