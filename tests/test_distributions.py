"""The paper's math as pure functions, checked against independent estimates."""
import math

import pytest
import torch

from training.distributions import (gaussian_analytical_kl, gaussian_log_density, log_mean_exp,
                                    precision_weighted_merge, warmup_beta)


def test_analytic_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu_q, var_q = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64), torch.tensor([0.5, 2.0, 0.1], dtype=torch.float64)
    mu_p, var_p = torch.tensor([0.0, 0.5, 1.5], dtype=torch.float64), torch.tensor([1.0, 0.7, 3.0], dtype=torch.float64)
    n = 400_000
    z = mu_q + var_q.sqrt() * torch.randn(n, 3, generator=g, dtype=torch.float64)
    ratio = gaussian_log_density(z, mu_q, var_q) - gaussian_log_density(z, mu_p, var_p)
    mc, se = ratio.mean(0), ratio.std(0) / math.sqrt(n)
    analytic = gaussian_analytical_kl(mu_q, var_q, mu_p, var_p)
    assert torch.all((mc - analytic).abs() < 4 * se + 1e-4), (mc, analytic, se)
    assert torch.all(analytic > 0)


def test_kl_is_zero_for_equal_gaussians():
    mu, var = torch.randn(10), torch.rand(10) + 0.1
    assert torch.allclose(gaussian_analytical_kl(mu, var, mu, var), torch.zeros(10), atol=1e-6)


def test_log_density_matches_torch_normal():
    z, mu, var = torch.randn(50), torch.randn(50), torch.rand(50) + 0.05
    expected = torch.distributions.Normal(mu, var.sqrt()).log_prob(z)
    assert torch.allclose(gaussian_log_density(z, mu, var), expected, atol=1e-5)


def test_precision_weighted_merge_is_the_normalised_product_of_the_two_gaussians():
    # N(z; mu_hat, var_hat) * N(z; mu_p, var_p) is proportional to N(z; mu_q, var_q):
    # the log ratio must not depend on z.
    mu_hat, var_hat = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.2, 4.0], dtype=torch.float64)
    mu_p, var_p = torch.tensor([-0.5, 0.0], dtype=torch.float64), torch.tensor([1.5, 0.3], dtype=torch.float64)
    mu_q, var_q = precision_weighted_merge(mu_hat, var_hat, mu_p, var_p)
    z = torch.linspace(-5, 5, 21, dtype=torch.float64).unsqueeze(1).expand(21, 2)
    log_ratio = (gaussian_log_density(z, mu_hat, var_hat) + gaussian_log_density(z, mu_p, var_p)
                 - gaussian_log_density(z, mu_q, var_q))
    assert torch.allclose(log_ratio, log_ratio[0].expand_as(log_ratio), atol=1e-9)
    # and the merged variance is smaller than either input's
    assert torch.all(var_q < torch.minimum(var_hat, var_p))


def test_merge_limits():
    mu_hat, mu_p = torch.tensor([3.0]), torch.tensor([-3.0])
    # a very confident bottom-up estimate wins, and vice versa
    mu_q, _ = precision_weighted_merge(mu_hat, torch.tensor([1e-6]), mu_p, torch.tensor([1.0]))
    assert mu_q.item() == pytest.approx(3.0, abs=1e-4)
    mu_q, _ = precision_weighted_merge(mu_hat, torch.tensor([1.0]), mu_p, torch.tensor([1e-6]))
    assert mu_q.item() == pytest.approx(-3.0, abs=1e-4)
    # equal precisions: the midpoint, half the variance
    mu_q, var_q = precision_weighted_merge(mu_hat, torch.tensor([2.0]), mu_p, torch.tensor([2.0]))
    assert mu_q.item() == pytest.approx(0.0) and var_q.item() == pytest.approx(1.0)


def test_log_mean_exp_is_stable_and_exact():
    a = torch.tensor([[1000.0, 1000.0], [-1000.0, 1000.0 + math.log(3.0)]], dtype=torch.float64)
    out = log_mean_exp(a, dim=0)
    assert torch.isfinite(out).all()
    assert out[0].item() == pytest.approx(1000.0 - math.log(2.0))
    assert out[1].item() == pytest.approx(1000.0 + math.log(2.0))
    small = torch.randn(7, 3, dtype=torch.float64)
    assert torch.allclose(log_mean_exp(small, 0), small.exp().mean(0).log())


@pytest.mark.parametrize("epoch,warmup,beta", [(0, 200, 0.0), (100, 200, 0.5), (199, 200, 0.995), (200, 200, 1.0),
                                               (5000, 200, 1.0), (0, 0, 1.0), (3, 0, 1.0), (1, 4, 0.25)])
def test_warmup_schedule(epoch, warmup, beta):
    assert warmup_beta(epoch, warmup) == pytest.approx(beta)
