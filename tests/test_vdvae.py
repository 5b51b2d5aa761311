"""The VDVAE family (training/models/vdvae.py) and the training features it brought: gradient skipping over a
norm threshold and the weights' moving average (EMA), evaluated and explored in place of the weights."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from conftest import assert_resumes_exactly, every_page_opens, train_on_one_thread

from training import checkpoint as ckpt
from training.config import RunConfig
from training.models import build_model
from training.models.vdvae import parse_blocks

ROOT = Path(__file__).resolve().parent.parent


def vdvae_cfg(**kw) -> RunConfig:
    base = dict(model="vdvae", dataset="digits", epochs=2, batch_size=64, warmup_epochs=1, eval_every=1,
                snapshot_every=1, checkpoint_every=1, seed=0, device="cpu", width=8, latent_channels=2, lr=1e-3,
                ema_rate=0.9, skip_threshold=1e6)
    return RunConfig.make(**{**base, **kw})


@pytest.fixture(scope="module")
def vdvae_run(tmp_path_factory):
    return train_on_one_thread(vdvae_cfg(), tmp_path_factory.mktemp("vdvae") / "digits-vdvae")


def test_block_strings_read_as_openai_vdvaes():
    assert parse_blocks("1x2,4m1,4x1,8m4") == [(1, None), (1, None), (4, 1), (4, None), (8, 4)]
    assert parse_blocks("8x1,8d2,4d4") == [(8, None), (8, 2), (4, 4)]
    cfg = RunConfig.make(model="vdvae", dataset="mnist", epochs=1)
    specs = [r for r, _ in parse_blocks(cfg.arch.dec_blocks)]
    assert cfg.layers == 24 and [specs.count(r) for r in (1, 4, 8, 16)] == [5, 5, 10, 4] and cfg.arch.image_stride == 2


def test_a_skipped_update_leaves_weights_optimizer_and_average_untouched():
    """An update whose gradient norm is over --skip-threshold changes nothing and is counted; under it, it
    changes the weights and the moving average."""
    import copy

    from training.models import build_model
    from training.step import ModelStep, make_optimizer
    cfg = vdvae_cfg()
    cfg.image_shape, cfg.input_dim = [1, 8, 8], 64
    torch.manual_seed(0)
    model = build_model(cfg).train()
    ema = copy.deepcopy(model)
    opt = make_optimizer(model, 1e-3)
    x = torch.rand(16, 64).bernoulli(generator=torch.Generator().manual_seed(0))
    good = ModelStep(model, opt, 16, ema=ema, ema_rate=0.9)
    good.load(x, 1.0)
    good.eager()  # one real step: Adam has moments now
    before = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()), copy.deepcopy(ema.state_dict())
    bad = ModelStep(model, opt, 16, skip_threshold=1e-6, ema=ema, ema_rate=0.9)
    bad.load(x, 1.0)
    _, ok = bad.eager()
    assert not bool(ok) and int(bad.skipped) == 1
    for k, v in before[0].items():
        assert torch.equal(model.state_dict()[k], v), k
    for k, v in before[2].items():
        assert torch.equal(ema.state_dict()[k], v), k
    after = opt.state_dict()
    for i, state in before[1]["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(after["state"][i][name]), torch.as_tensor(value)), (i, name)
    _, ok = good.eager()
    assert bool(ok) and any(not torch.equal(model.state_dict()[k], v) for k, v in before[0].items())


def test_the_moving_average_on_a_hand_made_case():
    """ema <- rate * ema + (1 - rate) * weights: from 1 toward 3 at rate 0.75 is 1.5, then 1.875."""
    from training.step import ModelStep
    model, ema = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(3.0)
        ema.weight.fill_(1.0)
    step = ModelStep.__new__(ModelStep)
    step.model, step.ema_params, step.ema_buffers = model, list(ema.parameters()), []
    step.update_ema(1 - 0.75)
    assert ema.weight.item() == pytest.approx(1.5)
    step.update_ema(1 - 0.75)
    assert ema.weight.item() == pytest.approx(1.875)
    step.update_ema(torch.tensor(0.0))  # a skipped step's weight
    assert ema.weight.item() == pytest.approx(1.875)


def test_a_run_is_evaluated_and_explored_with_its_moving_average(vdvae_run):
    """model.* in the checkpoint is the average (what eval, the app and export load); train.* the optimizer's
    weights, which differ from it."""
    from training.evaluate import evaluate_run
    averaged, _ = ckpt.read_tensors(vdvae_run / ckpt.CHECKPOINT, "model.")
    trained, _ = ckpt.read_tensors(vdvae_run / ckpt.CHECKPOINT, "train.")
    assert averaged.keys() == trained.keys()
    assert any(not torch.equal(averaged[k], trained[k]) for k in averaged)
    model, cfg, epoch = ckpt.load_model(vdvae_run)
    assert epoch == 2 and cfg.ema_rate == 0.9 and type(model).__name__ == "VDVAE"
    for k, v in model.state_dict().items():
        assert torch.equal(v, averaged[k]), k
    r = evaluate_run(vdvae_run, iw_samples=30)
    assert math.isfinite(r["iw_ll"]) and r["iw_ll"] > r["test_elbo"]  # Burda et al. 2016, Thm 1
    assert len(r["test_kl_per_layer"]) == cfg.layers == 6


def test_a_killed_vdvae_run_resumes_exactly(vdvae_run, tmp_path):
    """Stopped after epoch 1 and resumed: the same weights, average and Adam state as the straight run."""
    assert any(k.startswith("train.") for k in assert_resumes_exactly(vdvae_cfg, vdvae_run, tmp_path))


def test_keeping_every_layer_from_the_posterior_is_the_posterior_path(vdvae_run):
    """openai/vdvae's forward_samples_set_latents at k = L: the first k layers from the posterior and the rest
    sampled is then the reconstruction itself, whatever the temperature; at k = 0 the images differ."""
    import numpy as np

    from explorer.traverse import hierarchy_decomposition
    from training.data import load_dataset
    from training.evaluate import eval_mode
    model, _, _ = ckpt.load_model(vdvae_run)
    image = load_dataset("digits").test_x[:1].round()
    g = torch.Generator().manual_seed(0)
    with eval_mode(model):
        layers = model.posterior(torch.as_tensor(image), generator=torch.Generator().manual_seed(0))
        path = model.decode({i: q.z for i, q in enumerate(layers)}, 1).numpy().reshape(1, -1)
    rows = hierarchy_decomposition(model, image, keep_top=model.n_layers, n=4, seed=0, temperature=0.7)
    np.testing.assert_allclose(rows, np.repeat(path, 4, axis=0), rtol=1e-5, atol=1e-6)
    free = hierarchy_decomposition(model, image, keep_top=0, n=4, seed=0)
    assert np.abs(free - free[:1]).max() > 1e-4
    del g


def test_every_page_opens_on_a_vdvae_run(vdvae_run, monkeypatch, tmp_path):
    at = every_page_opens(vdvae_run.parent, monkeypatch, tmp_path)
    assert any("digits-vdvae" in str(o) for s in at.selectbox for o in s.options)


def test_vdvae_from_the_command_line_keeps_an_average_by_default(tmp_path):
    from training.cli import main
    out = tmp_path / "cli-vdvae"
    assert main(["train", "--family", "vdvae", "--dataset", "digits", "--epochs", "1", "--width", "8",
                 "--latent-channels", "2", "--batch-size", "64", "--device", "cpu", "--no-progress",
                 "--out", str(out)]) == 0
    cfg = ckpt.load_config(out)
    assert cfg.ema_rate > 0 and cfg.skip_threshold > 0  # the family's defaults for the common settings
    assert main(["train", "--family", "vdvae", "--dataset", "digits", "--epochs", "1", "--dec-blocks", "1x2,64m1",
                 "--out", str(tmp_path / "bad")]) == 2


def test_the_top_variates_and_their_share_of_the_kl_on_a_hand_made_case():
    import numpy as np

    from explorer.depth import top_variates
    kl = [np.array([3.0, 1.0]), np.array([[2.0, 0.0]])]
    kept = top_variates(kl, 0.5)
    assert [m.tolist() for m in kept.masks] == [[True, False], [[True, False]]]
    assert (kept.count, kept.total) == (2, 4) and kept.kl_share == pytest.approx(5 / 6)
    assert top_variates(kl, 0.0).kl_share == 0.0 and top_variates(kl, 1.0).kl_share == pytest.approx(1.0)


def test_layers_in_use_count_the_layers_with_at_least_1e4_nats():
    """Efficient-VDVAE's "active groups": a layer is in use when its variates' KL sums to at least 1e-4 nats."""
    import numpy as np

    from explorer.depth import layers_in_use
    kl = [np.array([5e-5, 5e-5]), np.array([[9e-5]]), np.array([0.0]), np.array([2.0, 0.0])]
    assert layers_in_use(kl) == 2


def test_masked_decoding_keeps_what_it_is_told(vdvae_run):
    """Keeping every variate decodes the image's own posterior sample; keeping none with the prior's mean is the
    prior's mean path; in between the image differs from both. The KL shares add up."""
    import numpy as np

    from explorer.depth import kl_share, masked_decode, top_variates, variate_kl
    from explorer.encode import test_points
    from training.evaluate import eval_mode
    model, cfg, _ = ckpt.load_model(vdvae_run)
    points = test_points(cfg, vdvae_run, n=40)
    kl = variate_kl(model, points.images)
    assert [k.shape for k in kl] == [(int(np.prod(s.shape)),) for s in model.layer_specs()]
    image = points.images[3]
    every = masked_decode(model, image, top_variates(kl, 1.0).masks, seed=5)
    with eval_mode(model):
        layers = model.posterior(torch.as_tensor(image[None]), generator=torch.Generator().manual_seed(5))
        own = model.decode({i: q.z for i, q in enumerate(layers)}, 1).numpy().reshape(1, -1)
        prior_mean = model.generate(1, use_mean=True).images.numpy().reshape(1, -1)
    np.testing.assert_allclose(every, own, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(masked_decode(model, image, top_variates(kl, 0.0).masks, prior_mean=True), prior_mean,
                               rtol=1e-5, atol=1e-6)
    some = masked_decode(model, image, top_variates(kl, 0.2).masks, n=3, seed=5)
    assert some.shape == (3, 64) and np.abs(some - own).max() > 1e-4
    share = kl_share(model, [float(k.sum()) for k in kl])
    assert share.by_layer[-1] == pytest.approx(1.0) and share.by_resolution.sum() == pytest.approx(1.0)
    assert share.layers[0] == f"z{model.n_layers}" and share.resolutions == ["1x1", "4x4", "8x8"]


def test_the_depth_page_keeps_the_top_variates_live(vdvae_run, monkeypatch, tmp_path):
    from test_app import image_url
    at = every_page_opens(vdvae_run.parent, monkeypatch, tmp_path)  # ends on the Depth page
    before = image_url(at, "decoded keeping the top")
    at.select_slider(key="depth_keep_percent").set_value(50).run()
    assert not at.exception
    assert image_url(at, "decoded keeping the top") != before
    assert any("of the KL" in c for img in at.image for c in img.captions)
    assert any("layers in use" in c.value for c in at.caption)


def test_a_deep_models_layers_are_shown_a_resolution_at_a_time():
    from explorer.depth import layer_groups
    assert layer_groups([16] * 4 + [8] * 10 + [4] * 5 + [1] * 5, 8) == [
        (0, 4, "z1–z4 · 16x16"), (4, 12, "z5–z12 · 8x8"), (12, 14, "z13–z14 · 8x8"), (14, 19, "z15–z19 · 4x4"),
        (19, 24, "z20–z24 · 1x1")]
    assert layer_groups([None] * 10, 8) == [(0, 8, "z1–z8"), (8, 10, "z9–z10")]
    assert layer_groups([4, 8], 8) == [(0, 1, "z1 · 4x4"), (1, 2, "z2 · 8x8")]


def test_the_layers_page_shows_a_deep_vdvae_a_resolution_at_a_time(tmp_path_factory, monkeypatch, tmp_path):
    """14 layers at 1, 4 and 8 px: the Layers grid opens on the 8x8 layers (z1-z5) and the picker offers one
    group per resolution."""
    import json

    from streamlit.testing.v1 import AppTest
    root = tmp_path_factory.mktemp("deep-vdvae")
    train_on_one_thread(vdvae_cfg(epochs=1, dec_blocks="1x4,4m1,4x4,8m4,8x4"), root / "deep-vdvae")
    monkeypatch.setenv("LVAE_RUNS_DIR", str(root))
    monkeypatch.setenv("LVAE_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("app_pages/layers.py").run()
    assert not at.exception and not at.error
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["text"].split(" ")[0] for t in fig["layout"]["annotations"] if t["text"].startswith("z")] == \
        [f"z{i}" for i in range(1, 6)]
    assert len(at.get("button_group")[0].options) == 3


def test_vdvae_balances_kl_across_layers_only_during_the_warm_up():
    """Efficient-VDVAE's early NVAE-style balancing: while beta < 1 each layer's KL weighs (KL + 0.01) / alpha
    (normalised to mean 1; alpha: side squared over the layers at that side), from beta 1 on every weight is 1;
    beta 0 still charges NVAE's floor; --no-kl-balance weighs every layer 1 throughout."""
    from training.models.topdown import MIN_KL_WEIGHT, alphas_by_side
    cfg = RunConfig.make(model="vdvae", dataset="digits", input_dim=64, image_shape=[1, 8, 8], epochs=1)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    sides = [spec.resolution for spec in model.layer_specs()]
    torch.testing.assert_close(model.alpha, alphas_by_side(sides))
    x = torch.rand(16, 64).bernoulli(generator=torch.Generator().manual_seed(0))
    _, warm = model.loss(x, 0.5, generator=torch.Generator().manual_seed(1))
    kl = warm.kl_per_layer() / 16  # the batch mean of each layer's KL
    expected = (kl + 0.01) / model.alpha
    torch.testing.assert_close(warm.kl_weights, expected / expected.mean(), rtol=1e-4, atol=1e-6)
    _, done = model.loss(x, 1.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(done.kl_weights, torch.ones_like(done.kl_weights))
    zero, _ = model.loss(x, 0.0, generator=torch.Generator().manual_seed(1))
    floor, _ = model.loss(x, MIN_KL_WEIGHT, generator=torch.Generator().manual_seed(1))
    assert zero.item() == pytest.approx(floor.item(), rel=1e-6)
    plain = build_model(dataclasses.replace(cfg, arch=dataclasses.replace(cfg.arch, kl_balance=False))).eval()
    _, unbalanced = plain.loss(x, 0.5)
    assert torch.equal(unbalanced.kl_weights, torch.ones_like(unbalanced.kl_weights))


def test_the_kept_line_is_patched_into_the_cached_ranking():
    """A Depth slider move draws the kept line into the ranking figure's dict instead of rebuilding its 14,000
    points: the same line variate_ranking draws, the traces shared."""
    import numpy as np

    from explorer.figures.depth import variate_ranking, with_kept_line
    kl = [np.array([3.0, 1.0, 0.5]), np.array([2.0, 0.0])]
    spec = variate_ranking(kl).to_dict()
    patched = with_kept_line(spec, 2)
    assert patched["data"] is spec["data"] and "shapes" not in spec["layout"]
    drawn = variate_ranking(kl, 2).to_dict()["layout"]
    assert patched["layout"]["shapes"] == drawn["shapes"] and patched["layout"]["shapes"][0]["x0"] == 2.5
    assert patched["layout"]["annotations"][-1]["text"] == "kept: the top 2"
