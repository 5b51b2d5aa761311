"""The NVAE family (training/models/nvae.py): its parts against direct computations, and a tiny run on digits
that trains, resumes exactly, evaluates and exports through the same commands as every family."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import every_page_opens, train_on_one_thread

from training import checkpoint as ckpt
from training.config import RunConfig
from training.models.nvae import residual_normal, spectral_norm_power_iteration
from training.models.topdown import balance_alphas, kl_balance_coefficients


def nvae_cfg(**kw) -> RunConfig:
    base = dict(model="nvae", dataset="digits", epochs=2, batch_size=64, warmup_epochs=2, eval_every=1,
                snapshot_every=1, checkpoint_every=1, seed=0, device="cpu", groups=[1, 2], channels=8,
                latent_channels=2, lr=1e-3)
    return RunConfig.make(**{**base, **kw})


@pytest.fixture(scope="module")
def nvae_run(tmp_path_factory):
    return train_on_one_thread(nvae_cfg(), tmp_path_factory.mktemp("nvae") / "digits-nvae")


def test_the_residual_normals_kl_is_the_papers_closed_form():
    """Vahdat & Kautz 2020, eq. 3: KL(q || p) = 1/2 (d_mu^2 / sigma_p^2 + d_sigma^2 - log d_sigma^2 - 1) for
    q = N(mu_p + d_mu, sigma_p d_sigma): the residual normal's KL through the analytic Gaussian KL matches it."""
    from training.distributions import gaussian_analytical_kl
    g = torch.Generator().manual_seed(0)
    mu_p, log_sigma_p, d_mu, d_log_sigma = (torch.randn(1000, generator=g, dtype=torch.float64) for _ in range(4))
    mu_q, log_sigma_q = residual_normal(mu_p, log_sigma_p, d_mu, d_log_sigma)
    kl = gaussian_analytical_kl(mu_q, torch.exp(2 * log_sigma_q), mu_p, torch.exp(2 * log_sigma_p))
    d_sigma2, sigma_p2 = torch.exp(2 * d_log_sigma), torch.exp(2 * log_sigma_p)
    direct = 0.5 * (d_mu ** 2 / sigma_p2 + d_sigma2 - torch.log(d_sigma2) - 1)
    torch.testing.assert_close(kl, direct, rtol=1e-10, atol=1e-10)


def test_spectral_power_iteration_finds_the_largest_singular_value():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(16, 8, 3, 3, generator=g, dtype=torch.float64)
    u = torch.nn.functional.normalize(torch.randn(16, generator=g, dtype=torch.float64), dim=0)
    v = torch.nn.functional.normalize(torch.randn(72, generator=g, dtype=torch.float64), dim=0)
    sigma, u, v = spectral_norm_power_iteration(w, u, v, steps=200)
    assert sigma.item() == pytest.approx(torch.linalg.matrix_norm(w.reshape(16, -1), ord=2).item(), rel=1e-6)
    again, _, _ = spectral_norm_power_iteration(w, u, v, steps=1)  # the kept vectors are already there
    assert again.item() == pytest.approx(sigma.item(), rel=1e-9)
    w.requires_grad_(True)
    spectral_norm_power_iteration(w, u, v, steps=0)[0].backward()  # the gradient is u v' (reshaped)
    torch.testing.assert_close(w.grad.reshape(16, -1), torch.outer(u, v))


def test_kl_balancing_coefficients_on_a_hand_made_case():
    """(KL + 0.01) / alpha, normalised to mean 1: two groups with 1 and 3 nats, equal alpha -> 2 x (1.01, 3.01)
    / 4.02; a group four times as large (alpha 4) with the same 3 nats weighs a quarter as much."""
    c = kl_balance_coefficients(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(c, torch.tensor([2 * 1.01 / 4.02, 2 * 3.01 / 4.02]))
    c = kl_balance_coefficients(torch.tensor([3.0, 3.0]), torch.tensor([1.0, 4.0]))
    torch.testing.assert_close(c, torch.tensor([1.6, 0.4]))
    # alpha: the scale's side squared over its groups (NVAE's "square"), top (smaller) scale first, smallest 1
    torch.testing.assert_close(balance_alphas([1, 2], [2, 4]), torch.tensor([1.0, 2.0, 2.0]))  # 2^2/1, 4^2/2


def test_a_digits_nvae_trains_evaluates_and_its_iw_bound_is_above_the_elbo(nvae_run):
    from training.evaluate import evaluate_run
    model, cfg, epoch = ckpt.load_model(nvae_run)
    assert epoch == 2 and type(model).__name__ == "NVAE"
    assert [s.shape for s in model.layer_specs()] == [(2, 4, 4), (2, 4, 4), (2, 2, 2)]  # z1 nearest the image
    r = evaluate_run(nvae_run, iw_samples=50)
    assert math.isfinite(r["iw_ll"]) and r["iw_ll"] > r["test_elbo"]  # Burda et al. 2016, Thm 1
    assert len(r["active_units"]) == len(r["test_kl_per_layer"]) == 3
    assert r["bn_stats"] == "running"  # NVAE's evaluate.py scores with training's BN averages


def test_eval_scores_the_first_n_test_images_with_the_same_draws(nvae_run, capsys):
    """--test-images N: the first N of the one binarized test set (the same draws for every run), so a subset's
    numbers are comparable across runs; a count outside the test set is one line and exit code 2."""
    import json

    from training.cli import main
    from training.evaluate import evaluate_run
    some = evaluate_run(nvae_run, iw_samples=20, test_images=40)
    assert some["test_images"] == 40
    assert main(["eval", str(nvae_run), "--test-images", "0"]) == 2
    assert "--test-images" in capsys.readouterr().err
    assert main(["eval", str(nvae_run), "--iw-samples", "20", "--test-images", "40", "--bn-stats", "recomputed",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["test_images"] == 40 and r["bn_stats"] == "recomputed" and math.isfinite(r["iw_ll"])


def test_the_warm_up_weight_has_nvaes_floor(nvae_run):
    """beta 0 (the first warm-up epoch) still charges 1e-4 of the KL (NVAE's kl_const_coeff): without it the
    first epoch pushed a MNIST model's KL to 11,776 nats."""
    from training.models.topdown import MIN_KL_WEIGHT
    model = ckpt.load_model(nvae_run)[0].eval()  # eval: BN fixed and no spectral term, so only beta differs between calls
    x = torch.rand(8, 64).bernoulli(generator=torch.Generator().manual_seed(0))
    losses = {beta: model.loss(x, beta, generator=torch.Generator().manual_seed(1))[0].item()
              for beta in (0.0, MIN_KL_WEIGHT, 0.5)}
    assert losses[0.0] == pytest.approx(losses[MIN_KL_WEIGHT], rel=1e-6)
    assert losses[0.5] > losses[0.0]


def test_decoding_with_every_group_fixed_is_the_reconstruction(nvae_run):
    """The top-down pass from the posterior's codes (generate with every group fixed) gives the very image the
    encoding pass decoded: the explorer's reconstructions and traversals use the one sampler."""
    from training.data import load_dataset
    from training.evaluate import eval_mode
    model, _, _ = ckpt.load_model(nvae_run)
    x = torch.as_tensor(load_dataset("digits").test_x[:16]).bernoulli(generator=torch.Generator().manual_seed(0))
    with eval_mode(model):
        layers, logits = model._encode(x, 1, True, None, None)
        decoded = model.decode({i: q.z for i, q in enumerate(layers)}, len(x))
        torch.testing.assert_close(decoded, torch.sigmoid(logits))
        # and the likelihood from the codes equals the one the forward pass scores
        fp = model(x, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(model.log_likelihood(x, fp.layers), fp.log_px, rtol=1e-5, atol=1e-4)


def test_a_killed_nvae_run_resumes_exactly(nvae_run, tmp_path):
    """Stopped after epoch 1 (as a kill after a checkpoint) and resumed: the same weights, Adam state and
    spectral-regularisation vectors as the run trained straight through."""
    cut = tmp_path / "cut"  # as the straight run: another thread count sums in another order
    train_on_one_thread(nvae_cfg(epochs=1), cut)
    train_on_one_thread(nvae_cfg(epochs=2), cut, resume=True)
    a, _ = ckpt.read_tensors(nvae_run / ckpt.CHECKPOINT, "model.")
    b, _ = ckpt.read_tensors(cut / ckpt.CHECKPOINT, "model.")
    assert a.keys() == b.keys() and any(k.startswith("sr_u") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_nvae_from_the_command_line_trains_and_exports(tmp_path):
    from training.cli import main
    out = tmp_path / "cli-nvae"
    assert main(["train", "--family", "nvae", "--dataset", "digits", "--epochs", "1", "--groups", "1,1",
                 "--channels", "8", "--latent-channels", "2", "--batch-size", "64", "--device", "cpu",
                 "--no-progress", "--out", str(out)]) == 0
    assert main(["export", str(out), str(tmp_path / "shipped"), "--iw-samples", "5"]) == 0
    model, cfg, _ = ckpt.load_model(tmp_path / "shipped")
    assert cfg.model == "nvae" and cfg.arch.groups == [1, 1] and (tmp_path / "shipped" / ckpt.EVAL).is_file()
    assert main(["train", "--family", "nvae", "--dataset", "digits", "--epochs", "1", "--groups", "1,1,1",
                 "--out", str(tmp_path / "bad")]) == 2


def test_every_page_opens_on_an_nvae_run(nvae_run, monkeypatch, tmp_path):
    """Through the interface alone: each page opens on the NVAE run with no exception and no error box."""
    at = every_page_opens(nvae_run.parent, monkeypatch, tmp_path)
    assert any("digits-nvae" in str(o) for s in at.selectbox for o in s.options)


def test_kl_maps_sum_to_each_layers_kl_and_control_maps_show_what_a_layer_decides(nvae_run):
    """Issue 29's views for spatial latents: a layer's KL map sums over positions to its mean-path KL; a layer's
    control map is zero where redrawing it changes nothing: with every layer fixed above the image's and the
    layer itself at temperature 0 the images are all alike."""
    import numpy as np

    from explorer.encode import test_points
    from explorer.figures import layer_maps
    from explorer.spatial import control_maps, kl_maps
    from training.distributions import gaussian_analytical_kl
    from training.evaluate import eval_mode
    model, cfg, _ = ckpt.load_model(nvae_run)
    image = test_points(cfg, nvae_run, n=10).images[2]
    maps = kl_maps(model, image)
    assert sorted(maps) == [0, 1, 2] and maps[0].shape == (4, 4) and maps[2].shape == (2, 2)
    with eval_mode(model):
        layers = model.posterior(torch.as_tensor(image[None]), mean_path=True)
        for i, q in enumerate(layers):
            total = float(gaussian_analytical_kl(q.mu, q.var, q.prior_mu, q.prior_var).sum())
            assert maps[i].sum() == pytest.approx(total, rel=1e-5)
    control = control_maps(model, image, n=8)
    assert sorted(control) == [0, 1, 2] and all(m.shape == (8, 8) and (m >= 0).all() for m in control.values())
    assert max(float(m.max()) for m in control.values()) > 1e-4  # redrawing a layer changes some pixels
    fig = layer_maps(maps, "KL", "nats")
    assert [a["text"] for a in fig.layout.annotations] == ["z3", "z2", "z1"]  # top first, as the pass goes
    assert np.isclose(sum(float(v) for v in fig._numbers["value"]), sum(float(m.sum()) for m in maps.values()))


def test_the_maps_of_a_model_without_spatial_layers_say_so():
    from explorer.figures import layer_maps
    fig = layer_maps({}, "KL", "nats")
    assert "no layer of this model is a spatial map" in fig.layout.annotations[0].text


def test_active_channels_follow_nvaes_rule_on_a_hand_made_case():
    """A channel is active with over 0.1 nats summed over its positions: 4 positions of 0.03 make 0.12 (active),
    of 0.02 make 0.08 (not); a vector layer's channels are its units."""
    from training.objectives import count_active_channels
    spatial = torch.tensor([0.03] * 4 + [0.02] * 4)  # two channels of 2 x 2
    vector = torch.tensor([0.2, 0.05, 0.11])
    assert count_active_channels([spatial, vector], [(2, 2, 2), (3,)]) == [1, 2]


def test_the_kl_balancing_weights_are_in_the_history_and_on_the_curves_page(nvae_run, monkeypatch, tmp_path):
    """Each epoch records every layer's mean KL-balancing weight; during the warm-up they average 1 over the
    layers (normalised to mean 1 at every step); the Curves page draws them beside the KL per layer."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest
    history = ckpt.read_history(nvae_run)
    for record in history:
        assert record["beta"] < 1 and len(record["kl_balance"]) == 3
        assert sum(record["kl_balance"]) / 3 == pytest.approx(1.0, abs=1e-5)
    monkeypatch.setenv("LVAE_RUNS_DIR", str(nvae_run.parent))
    monkeypatch.setenv("LVAE_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/curves.py").run()
    assert not at.exception
    import json
    titles = [json.loads(el.proto.spec)["layout"].get("title", {}).get("text", "") for el in at.get("plotly_chart")]
    assert any(t.startswith("KL-balancing weight per latent layer") for t in titles), titles


def test_the_nvae_losss_statistics_are_the_generic_bounds_sums(nvae_run):
    """The statistics NVAE's own loss (KL balancing, spectral regularisation) reports are the ELBO, the
    reconstruction and the KL per unit summed over the batch, as the generic ELBO gives them on the same draws
    (a first version divided by the batch twice: the training history read 128 times too small)."""
    from training.data import load_dataset
    from training.models.bounds import training_loss
    model, _, _ = ckpt.load_model(nvae_run)
    model.train()
    x = torch.as_tensor(load_dataset("digits").train_x[:32]).bernoulli(generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, own = model.loss(x, 0.5, generator=torch.Generator().manual_seed(4))
        _, generic = training_loss(model, x, 0.5, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(own.elbo, generic.elbo, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(own.recon, generic.recon, rtol=1e-4, atol=1e-3)
    for a, b in zip(own.kl_per_unit, generic.kl_per_unit):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    history = ckpt.read_history(nvae_run)  # the epochs' training ELBO is a per-image value, near the test one
    assert abs(history[-1]["train_elbo"] - history[-1]["test_elbo"]) < 0.5 * abs(history[-1]["test_elbo"])
