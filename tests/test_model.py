"""The two models: one shared generative model, the LVAE's merge, the bounds they give."""
import pytest
import torch

from training.config import RunConfig
from training.distributions import precision_weighted_merge
from training.models import build_model
from training.models.mlp import GenerativeModel
from training.objectives import (count_active_units, training_loss, evaluate_elbo, importance_weighted_bound,
                                 iw_log_likelihood, log_importance_weights, unit_activity)


def small_cfg(model: str, layers: int = 3, **kw) -> RunConfig:
    return RunConfig.make(model=model, layers=layers, dataset="digits", input_dim=64, epochs=1, **kw)


def test_vae_and_lvae_share_one_generative_model():
    vae, lvae = build_model(small_cfg("vae")), build_model(small_cfg("lvae"))
    assert type(vae.generative) is type(lvae.generative) is GenerativeModel
    v, lv = vae.generative.state_dict(), lvae.generative.state_dict()
    assert {k: t.shape for k, t in v.items()} == {k: t.shape for k, t in lv.items()}
    # with the same weights, both compute the same p(x|z_1) and p(z_i|z_{i+1})
    lvae.generative.load_state_dict(v)
    vae.eval(), lvae.eval()
    z = [torch.randn(5, n) for n in vae.cfg.arch.latent_sizes]
    x = torch.rand(5, 64).bernoulli()
    assert torch.equal(vae.generative.log_likelihood(x, z[0]), lvae.generative.log_likelihood(x, z[0]))
    for i in range(2):
        assert all(torch.equal(a, b) for a, b in zip(vae.generative.prior(i, z[i + 1]), lvae.generative.prior(i, z[i + 1])))


def test_top_down_is_ancestral_sampling_from_p_with_fixed_layers_and_its_own_generator():
    gen = build_model(small_cfg("lvae")).eval().generative
    with torch.no_grad():
        a = gen.top_down(4, generator=torch.Generator().manual_seed(3))
        b = gen.top_down(4, generator=torch.Generator().manual_seed(3))
        assert [z.shape for z in a] == [(4, n) for n in gen.latent_sizes]
        assert all(torch.equal(x, y) for x, y in zip(a, b))
        # the top layer is N(0, I); each layer below is p's mean at the layer above plus sd * noise
        g = torch.Generator().manual_seed(3)
        top = torch.randn(4, gen.latent_sizes[-1], generator=g)
        assert torch.equal(a[-1], top)
        mu, var = gen.prior(len(a) - 2, a[-1])
        assert torch.allclose(a[-2], mu + var.sqrt() * torch.randn(mu.shape, generator=g))
        fixed = torch.randn(1, gen.latent_sizes[1])
        kept = gen.top_down(4, fixed={1: fixed}, use_mean=True)
        assert torch.equal(kept[1], fixed.expand(4, -1)) and torch.equal(kept[0], gen.prior(0, kept[1])[0])
        cold = gen.top_down(4, temperature=0.0, generator=torch.Generator().manual_seed(9))
        assert all(torch.allclose(x, y) for x, y in zip(cold, gen.top_down(4, use_mean=True)))


@pytest.mark.parametrize("layers", [1, 2, 5])
@pytest.mark.parametrize("model", ["vae", "lvae"])
@pytest.mark.parametrize("bn", [True, False])
def test_any_depth_with_and_without_bn(model, layers, bn):
    net = build_model(small_cfg(model, layers, batch_norm=bn))
    x = torch.rand(8, 64).bernoulli()
    loss, stats = training_loss(net, x, beta=0.5)
    loss.backward()
    assert torch.isfinite(loss)
    assert len(stats.kl_per_unit) == layers
    assert [k.shape[0] for k in stats.kl_per_unit] == net.cfg.arch.latent_sizes
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules()) == bn


def test_lvae_posterior_is_the_merge_of_upward_estimate_and_prior_at_the_sampled_parent():
    net = build_model(small_cfg("lvae")).eval()
    x = torch.rand(6, 64).bernoulli()
    torch.manual_seed(0)
    layers = net.inference(x, net.generative)
    up = net.inference.upward(x)
    top = len(layers) - 1
    assert torch.equal(layers[top].mu, up[top][0]) and torch.equal(layers[top].var, up[top][1])
    assert torch.equal(layers[top].prior_mu, torch.zeros_like(layers[top].prior_mu))
    for i in range(top):
        mu_p, var_p = net.generative.prior(i, layers[i + 1].z)
        assert torch.allclose(layers[i].prior_mu, mu_p) and torch.allclose(layers[i].prior_var, var_p)
        mu_q, var_q = precision_weighted_merge(up[i][0], up[i][1], mu_p, var_p)
        assert torch.allclose(layers[i].mu, mu_q) and torch.allclose(layers[i].var, var_q)


def test_vae_priors_are_evaluated_at_the_posterior_samples():
    net = build_model(small_cfg("vae")).eval()
    layers = net.inference(torch.rand(6, 64).bernoulli(), net.generative)
    for i in range(len(layers) - 1):
        mu_p, _ = net.generative.prior(i, layers[i + 1].z)
        assert torch.allclose(layers[i].prior_mu, mu_p)
    # only the top layer's KL can be analytic: its parent is not sampled from it
    assert [layer.analytic_kl_valid for layer in layers] == [False, False, True]


@pytest.fixture(scope="module")
def trained_pair(digits_runs):
    from training.checkpoint import load_model
    return {name: load_model(path)[0] for name, path in digits_runs.items()}


@pytest.mark.parametrize("name", ["vae", "lvae"])
def test_iw_bound_is_above_the_elbo_and_grows_with_k(trained_pair, digits_test, name):
    model = trained_pair[name]
    x = digits_test[:200]
    torch.manual_seed(1)
    elbo = float(evaluate_elbo(model, x).elbo) / x.shape[0]
    bounds = {k: float(iw_log_likelihood(model, x, k).mean()) for k in (1, 5, 50)}
    # E[L_1] is the ELBO: the analytic-KL ELBO and the sampled one agree up to Monte-Carlo noise
    assert bounds[1] == pytest.approx(elbo, abs=0.5)
    assert elbo < bounds[5] < bounds[50]


def test_elbo_estimator_is_unbiased_against_the_single_sample_iw_weight(trained_pair, digits_test):
    # For the VAE only the top layer's KL is analytic; the training ELBO must
    # still have the expectation of log w (K = 1). Averaged over many draws the
    # two agree closely; a biased analytic KL at a sampled parent would not.
    x = digits_test[:100]
    for model in trained_pair.values():
        torch.manual_seed(2)
        elbos, log_ws = [], []
        with torch.inference_mode():
            for _ in range(40):
                elbos.append(float(evaluate_elbo(model, x).elbo) / x.shape[0])
                log_ws.append(float(log_importance_weights(model(x)).mean()))
        assert sum(elbos) / 40 == pytest.approx(sum(log_ws) / 40, abs=0.15)


def test_chunked_iw_evaluation_agrees_with_one_pass_without_fixed_noise(trained_pair, digits_test):
    model, x = trained_pair["lvae"], digits_test[:40]
    torch.manual_seed(3)
    one = iw_log_likelihood(model, x, 64, max_rows=10_000)
    chunked = iw_log_likelihood(model, x, 64, max_rows=50)  # 40 examples x 1 sample per pass
    assert one.shape == chunked.shape == (40,)
    assert float(one.mean()) == pytest.approx(float(chunked.mean()), abs=0.3)


def test_iw_bound_from_log_weights():
    log_w = torch.log(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert torch.allclose(importance_weighted_bound(log_w), torch.log(torch.tensor([2.0, 3.0])))


def test_active_units_criterion():
    assert count_active_units([torch.tensor([0.0, 0.009, 0.011, 2.0]), torch.tensor([0.5])]) == [2, 1]


def test_unit_activity_sees_collapsed_and_used_units():
    net = build_model(small_cfg("lvae", layers=2, batch_norm=False)).eval()
    with torch.no_grad():
        net.inference.heads[1].mu.weight.zero_()      # top layer: E_q[z|x] no longer depends on x
        net.inference.heads[0].mu.weight.mul_(20.0)   # bottom layer: strongly x-dependent
        net.inference.heads[0].var.bias.fill_(-10.0)  # ... and confident, so the merge follows it
    x = torch.rand(300, 64).bernoulli()
    activity = unit_activity(net, x, n_samples=10)
    counts = count_active_units(activity)
    assert counts[1] == 0
    assert counts[0] == net.cfg.arch.latent_sizes[0]


def iw_reference(model, x, k, eps):
    """The slow path: one example and one importance sample per forward pass."""
    out = []
    with torch.inference_mode():
        for j in range(x.shape[0]):
            log_w = torch.stack([log_importance_weights(model(x[j:j + 1], eps=[e[i, j:j + 1] for e in eps]))[0]
                                 for i in range(k)])
            out.append(torch.logsumexp(log_w.double(), 0) - torch.log(torch.tensor(float(k), dtype=torch.float64)))
    return torch.stack(out)


@pytest.mark.parametrize("name", ["vae", "lvae"])
def test_batched_iw_evaluation_equals_the_slow_path(trained_pair, digits_test, name):
    model, x, k = trained_pair[name], digits_test[:7], 30
    g = torch.Generator().manual_seed(5)
    eps = [torch.randn(k, x.shape[0], n, generator=g) for n in model.cfg.arch.latent_sizes]
    slow = iw_reference(model, x, k, eps)
    for max_rows in (1000, 16, 1):  # one pass; several sample chunks of several examples; one row a pass
        fast = iw_log_likelihood(model, x, k, max_rows=max_rows, eps=eps)
        assert torch.allclose(fast.double(), slow, atol=1e-4), (max_rows, fast, slow)


def test_gaussian_likelihood_for_continuous_data():
    net = build_model(small_cfg("lvae", likelihood="gaussian"))
    x = torch.rand(8, 64)  # grey levels, not binarized
    loss, _ = training_loss(net, x, beta=1.0)
    loss.backward()
    assert torch.isfinite(loss)
    assert net.generative.decode(torch.randn(3, 16)).shape == (3, 64)


@pytest.mark.parametrize("option", ["bn_heads", "up_from_mean", "separate_top_down", "mirror_generative_widths"])
@pytest.mark.parametrize("model", ["vae", "lvae"])
def test_the_authors_variants_build_train_and_change_the_network(model, option):
    if model == "vae" and option in ("up_from_mean", "separate_top_down"):  # the LVAE's own options
        from training.errors import UserError
        with pytest.raises(UserError, match=option):
            small_cfg(model, **{option: True})
        return
    base, variant = build_model(small_cfg(model)), build_model(small_cfg(model, **{option: True}))
    shapes = lambda m: {k: tuple(t.shape) for k, t in m.state_dict().items()}  # noqa: E731
    assert shapes(base) != shapes(variant)
    x = torch.rand(8, 64).bernoulli()
    loss, _ = training_loss(variant, x, beta=1.0)
    loss.backward()
    assert torch.isfinite(loss)


def test_bn_heads_normalise_the_latent_heads():
    net = build_model(small_cfg("lvae", bn_heads=True))
    head = net.inference.heads[0]
    assert isinstance(head.mu[1], torch.nn.BatchNorm1d) and isinstance(head.var[1], torch.nn.BatchNorm1d)
    assert isinstance(net.generative.priors[0].head.mu[1], torch.nn.BatchNorm1d)


def test_up_from_mean_feeds_the_upward_blocks_the_mean_of_the_layer_below():
    net = build_model(small_cfg("lvae", up_from_mean=True)).eval()
    x = torch.rand(4, 64).bernoulli()
    up = net.inference.upward(x)
    again = net.inference.heads[1](net.inference.up[1](up[0][0]))
    assert torch.allclose(up[1][0], again[0])


def test_separate_top_down_merges_with_q_own_network_not_with_p():
    from training.distributions import precision_weighted_merge
    net = build_model(small_cfg("lvae", layers=2, separate_top_down=True)).eval()
    x = torch.rand(4, 64).bernoulli()
    with torch.no_grad():
        layers = net.inference(x, net.generative)
        mu_hat, var_hat = net.inference.upward(x)[0]
        mu_td, var_td = net.inference.top_down[0](layers[1].z)
        mu_q, _ = precision_weighted_merge(mu_hat, var_hat, mu_td, var_td)
        mu_p, _ = net.generative.prior(0, layers[1].z)
    assert torch.allclose(layers[0].mu, mu_q) and torch.allclose(layers[0].prior_mu, mu_p)
    assert not torch.allclose(mu_td, mu_p)


def test_mirrored_generative_widths_are_those_of_the_layer_above():
    net = build_model(small_cfg("vae", mirror_generative_widths=True))
    h = net.cfg.arch.hidden_sizes
    assert [p.mlp[0].out_features for p in net.generative.priors] == [h[1], h[2]]


def test_glorot_init_is_the_authors():
    torch.manual_seed(0)
    net = build_model(small_cfg("lvae", layers=1, hidden_sizes=[400], latent_sizes=[300]))
    w = net.inference.up[0][0].weight  # an MLP layer: Glorot normal, gain sqrt 2
    assert w.std().item() == pytest.approx(2 ** 0.5 * (2 / (64 + 400)) ** 0.5, rel=0.05)
    head = net.inference.heads[0].mu.weight  # a head: gain 1, bias 0
    assert head.std().item() == pytest.approx((2 / (400 + 300)) ** 0.5, rel=0.05)
    assert torch.count_nonzero(net.inference.heads[0].mu.bias) == 0


def test_mc_samples_average_the_elbo_outside_the_log():
    """M Monte-Carlo samples (outside the log) train on the mean of M ELBO estimates; with K importance
    samples as well, on the mean of M bounds L_K."""
    net = build_model(small_cfg("lvae")).eval()
    x = torch.rand(6, 64).bernoulli()
    with torch.no_grad():
        torch.manual_seed(0)
        loss_m, stats_m = training_loss(net, x, 1.0, mc_samples=4)
        torch.manual_seed(0)
        fp = net(x, n_samples=4)
        kl = sum(layer.kl().sum(-1) for layer in fp.layers)
        assert torch.allclose(loss_m, -(fp.log_px - kl).mean())
        assert torch.allclose(stats_m.elbo, (fp.log_px - kl).sum() / 4)
        torch.manual_seed(1)
        loss_mk, _ = training_loss(net, x, 1.0, iw_samples=3, mc_samples=2)
        torch.manual_seed(1)
        log_w = log_importance_weights(net(x, n_samples=6)).view(2, 3, -1)
        bounds = torch.stack([importance_weighted_bound(log_w[m]) for m in range(2)])
        assert torch.allclose(loss_mk, -bounds.mean())


@pytest.mark.parametrize("model", ["vae", "lvae"])
def test_recomputed_bn_statistics_are_the_exact_moments_of_each_bn_input_over_the_training_set(model):
    from training.evaluate import recompute_bn_statistics
    torch.manual_seed(0)
    net = build_model(small_cfg(model))
    x = torch.rand(300, 64).bernoulli()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(5)
    twin = recompute_bn_statistics(net, x)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # the model itself is untouched
    seen = {}
    bns = {m: name for name, m in twin.named_modules() if isinstance(m, torch.nn.BatchNorm1d)}
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.__setitem__(mod, inp[0].detach())) for m in bns]
    torch.manual_seed(5)  # the same sampling noise as the recomputing pass
    with torch.no_grad():
        twin(x)  # eval mode: every layer normalises with the recomputed statistics
    for h in hooks:
        h.remove()
    assert len(seen) == len(bns) > 0
    for m, inp in seen.items():
        assert torch.allclose(m.running_mean, inp.mean(0), atol=1e-5), bns[m]
        assert torch.allclose(m.running_var, inp.var(0, unbiased=False), rtol=1e-4, atol=1e-6), bns[m]


def test_iw_estimate_leaves_the_model_in_the_mode_it_was_in():
    """Issue 28's review: iw_estimate switched a training model to eval mode for good (BN's running averages
    then stop updating in the training that follows)."""
    from training.evaluate import iw_estimate
    torch.manual_seed(0)
    model = build_model(small_cfg("lvae"))
    model.train()
    ll = iw_estimate(model, torch.bernoulli(torch.full((5, model.cfg.input_dim), 0.3)), 4)
    assert ll.shape == (5,) and torch.isfinite(ll).all()
    assert model.training
