"""The VQ-VAE family (training/models/vqvae.py): the quantiser (straight-through gradient, EMA codebook update,
dead-code revival), the gated PixelCNN prior's masks, the bound log p(x|z) + log p(z), codebook use over an epoch,
and training that resumes exactly."""
from __future__ import annotations

import math

import numpy as np

import pytest
import torch
from conftest import assert_resumes_exactly, train_on_one_thread

from training import checkpoint as ckpt
from training.config import RunConfig
from training.models import build_model
from training.models.pixelcnn import GatedPixelCNN
from training.models.quantize import Codebook, ema_codebook_update, perplexity, revive_dead_codes, straight_through


def vq_cfg(**kw) -> RunConfig:
    base = dict(model="vqvae", dataset="digits", epochs=2, batch_size=64, eval_every=1, snapshot_every=1,
                checkpoint_every=1, seed=0, device="cpu", channels=8, code_dim=4, codes=[16, 8], prior_channels=8,
                prior_layers=2)
    return RunConfig.make(**{**base, **kw})


def tiny_model(**kw):
    cfg = vq_cfg(**kw)
    cfg.image_shape, cfg.input_dim = [1, 8, 8], 64
    torch.manual_seed(0)
    return build_model(cfg)


@pytest.fixture(scope="module")
def vq_run(tmp_path_factory):
    return train_on_one_thread(vq_cfg(), tmp_path_factory.mktemp("vqvae") / "digits-vqvae")


def test_the_straight_through_gradient_reaches_the_encoder():
    """d z_q / d z_e is the identity (the codebook lookup is skipped in the backward pass), so the
    reconstruction's gradient reaches the encoder's first layer."""
    z_e = torch.randn(2, 3, requires_grad=True)
    straight_through(z_e, torch.zeros(2, 3)).mul(torch.arange(6.0).view(2, 3)).sum().backward()
    assert torch.equal(z_e.grad, torch.arange(6.0).view(2, 3))
    model = tiny_model().train()
    x = torch.rand(8, 64).bernoulli(generator=torch.Generator().manual_seed(0))
    layers, logits, _ = model._pass(x)
    torch.nn.functional.binary_cross_entropy_with_logits(logits, model.images_in(x)).backward()
    first = model.encoder[0].weight.grad
    assert first is not None and float(first.abs().sum()) > 0


def test_the_ema_codebook_update_on_a_hand_made_case():
    """Two 1-D codes at 0 and 2 with use 1 each; the batch puts 1, 1 on code 0 and 3 on code 1; decay 0.5:
    N = (1.5, 1.0), m = (1.0, 2.5), so e = m / N = (2/3, 2.5) (Laplace smoothing moves it by under 1e-4)."""
    cluster, sums = torch.tensor([1.0, 1.0]), torch.tensor([[0.0], [2.0]])
    e = ema_codebook_update(cluster, sums, torch.tensor([[1.0], [1.0], [3.0]]), torch.tensor([0, 0, 1]), decay=0.5)
    assert torch.allclose(cluster, torch.tensor([1.5, 1.0])) and torch.allclose(sums, torch.tensor([[1.0], [2.5]]))
    assert torch.allclose(e, torch.tensor([[2 / 3], [2.5]]), atol=1e-4)


def test_dead_code_revival_replaces_exactly_the_codes_under_the_threshold():
    codebook = torch.arange(8.0).view(4, 2)
    cluster = torch.tensor([0.5, 2.0, 0.99, 1.0])
    sums = codebook * cluster.unsqueeze(1)
    z = torch.full((5, 2), 100.0) + torch.arange(5.0).unsqueeze(1)
    before = codebook.clone()
    n = revive_dead_codes(codebook, cluster, sums, z, threshold=1.0)
    assert int(n) == 2
    assert torch.equal(codebook[[1, 3]], before[[1, 3]])  # at or over the threshold: kept
    for i in (0, 2):  # under it: an encoder output from the batch, its use set to the threshold
        assert any(torch.equal(codebook[i], row) for row in z) and float(cluster[i]) == 1.0
        assert torch.equal(sums[i], codebook[i])
    assert not torch.equal(codebook[0], codebook[2])  # two different outputs


def test_the_codebook_counts_revivals_and_moves_only_in_training():
    book = Codebook(4, 2, decay=0.9, dead_threshold=2.0)  # use 1 each; 4 vectors raise none to 2: all revived
    z = torch.randn(1, 2, 2, 2)
    book.train()(z)
    assert int(book.revived) == 4
    frozen = book.embed.clone()
    book.eval()(z)
    assert torch.equal(book.embed, frozen)


@pytest.mark.parametrize("cond", [False, True])
def test_the_pixelcnn_lets_no_position_see_itself_or_later_ones(cond):
    """The gradient of the logits at (i, j) with respect to the input features is 0 at (i, j) and after it in
    raster order, and non-zero at every position before it (no blind spot: the two stacks)."""
    torch.manual_seed(0)
    net = GatedPixelCNN(codes=5, channels=16, layers=4, cond_channels=3 if cond else 0)
    h = w = 4
    for i, j in [(0, 0), (1, 2), (3, 3), (2, 0)]:
        # a batch of inputs and a random mix of the logits: the output head's ReLUs cannot zero every path
        feats = torch.randn(8, 16, h, w, requires_grad=True)
        c = torch.randn(8, 3, h, w) if cond else None
        (net.logits_of_features(feats, c)[:, :, i, j] * torch.randn(8, 5)).sum().backward()
        seen = feats.grad.abs().sum((0, 1)) > 0
        for a in range(h):
            for b in range(w):
                assert bool(seen[a, b]) == ((a, b) < (i, j)), ((i, j), (a, b))


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sampling_row_by_row_draws_what_the_whole_map_gives(temperature):
    """The sampler passes only the rows down to the drawn one; drawing from the logits of the whole map, with the
    same generator and fixed cells, gives the same codes."""
    torch.manual_seed(0)
    net = GatedPixelCNN(codes=6, channels=8, layers=3, cond_channels=2).eval()
    cond, h, w = torch.randn(3, 2, 5, 4), 5, 4
    fixed = torch.full((1, h, w), -1)
    fixed[0, 1, 2] = 4
    drawn = net.sample(3, (h, w), cond, temperature, fixed=fixed, generator=torch.Generator().manual_seed(7))
    index, gen = fixed.expand(3, h, w).clamp(min=0).clone(), torch.Generator().manual_seed(7)
    with torch.no_grad():
        for i in range(h):
            for j in range(w):
                if (i, j) == (1, 2):
                    continue
                logits = net(index, cond)[:, :, i, j]
                index[:, i, j] = logits.argmax(1) if temperature == 0 else \
                    torch.multinomial(torch.softmax(logits / temperature, 1), 1, generator=gen).view(-1)
    assert torch.equal(drawn, index) and bool((drawn[:, 1, 2] == 4).all())


def test_the_bound_is_log_p_x_given_z_plus_log_p_z():
    """On a tiny model: the IW weights, the ELBO's estimate and the loss's stats all equal the likelihood of
    the decoded codes plus each prior's log-probability of the codes, computed here by hand."""
    from training.objectives import evaluate_elbo
    model = tiny_model().eval()
    x = torch.rand(5, 64).bernoulli(generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h = model.encoder(model.images_in(x))
        i_top = model.books[1].quantize(model.encoder_top(h))
        top = model.books[1].embed[i_top].permute(0, 3, 1, 2)
        z_e = model.pre_bottom(torch.cat([h, model._to_bottom(model.top_to_bottom(top))], 1))
        i_bot = model.books[0].quantize(z_e)
        bottom = model.books[0].embed[i_bot].permute(0, 3, 1, 2)
        logits = model.decoder(torch.cat([bottom, model._to_bottom(top)], 1))
        log_px = -torch.nn.functional.binary_cross_entropy_with_logits(logits, model.images_in(x), reduction="none").sum((1, 2, 3))
        lp_top = torch.log_softmax(model.priors[1](i_top), 1).gather(1, i_top.unsqueeze(1)).sum((1, 2, 3))
        cond = model.prior_cond(model._to_bottom(top))
        lp_bot = torch.log_softmax(model.priors[0](i_bot, cond), 1).gather(1, i_bot.unsqueeze(1)).sum((1, 2, 3))
        bound = log_px + lp_top + lp_bot
        assert torch.allclose(model.log_weights(x, 3), bound.expand(3, -1), atol=1e-4)
        assert math.isclose(float(evaluate_elbo(model, x).elbo), float(bound.sum()), rel_tol=1e-5)
        stats = model.loss(x, 1.0)[1]
        assert math.isclose(float(stats.elbo), float(bound.sum()), rel_tol=1e-5)
        assert math.isclose(float(sum(k.sum() for k in stats.kl_per_unit)), float(-(lp_top + lp_bot).sum()), rel_tol=1e-5)


def test_perplexity_is_the_number_of_codes_used_alike():
    assert math.isclose(float(perplexity(torch.tensor([5.0, 5.0, 5.0, 5.0]))), 4.0, rel_tol=1e-6)
    assert math.isclose(float(perplexity(torch.tensor([7.0, 0.0, 0.0]))), 1.0, rel_tol=1e-6)


def test_a_vqvae_run_records_code_use_over_each_epoch_and_the_test_set(vq_run):
    from training.evaluate import CODE_MEASURES, TEST_MEASURES
    h = ckpt.read_history(vq_run)
    assert [r["epoch"] for r in h] == [1, 2] and all(set(TEST_MEASURES + CODE_MEASURES) <= set(r) for r in h)
    for r in h:
        assert len(r["codes_used"]) == len(r["perplexity"]) == len(r["codes_revived"]) == 2
        assert all(1 <= used <= k for used, k in zip(r["codes_used"], (16, 8)))
        assert all(1 <= p <= used + 1e-6 for p, used in zip(r["perplexity"], r["codes_used"]))
        assert all(1 <= used <= k for used, k in zip(r["test_codes_used"], (16, 8)))
        assert math.isclose(r["test_elbo"], r["test_recon"] - sum(r["test_kl_per_layer"]), rel_tol=1e-6)
        assert all(k > 0 for k in r["test_kl_per_layer"])  # -log p of the codes: nats, as a Gaussian layer's KL
    assert h[0]["codes_revived"][0] >= 1  # the codes start under the threshold of use


def test_a_killed_vqvae_run_resumes_exactly(vq_run, tmp_path):
    """Stopped after epoch 1 and resumed: the same weights, codebooks (buffers) and Adam state as the straight run."""
    assert any("cluster_size" in k for k in assert_resumes_exactly(vq_cfg, vq_run, tmp_path))


def test_prior_samples_keep_fixed_codes_and_draw_the_rest(vq_run):
    """generate() keeps a fixed top level (the hierarchy decomposition: the bottom resampled under it), draws the
    same codes from the same seed, and at temperature 0 (or use_mean) takes the most likely codes."""
    model, _, _ = ckpt.load_model(vq_run)
    model.eval()
    with torch.no_grad():
        a = model.generate(4, generator=torch.Generator().manual_seed(3))
        b = model.generate(4, generator=torch.Generator().manual_seed(3))
        assert torch.equal(a.images, b.images) and a.images.shape == (4, 1, 8, 8)
        top = a.codes[1][:1]
        kept = model.generate(4, fixed={1: top}, generator=torch.Generator().manual_seed(4))
        assert torch.equal(kept.codes[1], top.expand(4, -1, -1, -1))
        partial = top.clone()
        partial[:, :, 0, 0] = float("nan")  # one position drawn, the rest kept
        mixed = model.generate(2, fixed={1: partial}, generator=torch.Generator().manual_seed(5))
        assert torch.equal(mixed.codes[1][:, :, 1:], top.expand(2, -1, -1, -1)[:, :, 1:])
        greedy = [model.generate(2, temperature=0.0, generator=torch.Generator().manual_seed(s)).images for s in (1, 2)]
        assert torch.equal(greedy[0], greedy[1])
        assert torch.equal(model.generate(2, use_mean=True).images, greedy[0])


def test_a_fixed_vector_between_codes_is_decoded_as_its_nearest_code(vq_run):
    """The decoder only ever saw codes: a Traverse step or a path point off the codebook is snapped to the nearest
    code at each position, so it decodes exactly as that code map does (and NaN positions are still drawn)."""
    model, _, _ = ckpt.load_model(vq_run)
    model.eval()
    with torch.no_grad():
        a = model.generate(3, generator=torch.Generator().manual_seed(3))
        moved = [z + 0.3 * torch.randn_like(z) * z.std() for z in a.codes]
        snapped = [book.lookup(book.quantize(z)) for book, z in zip(model.books, moved)]
        assert any(not torch.equal(m, z) for m, z in zip(moved, snapped))
        out = model.generate(3, fixed=dict(enumerate(moved)))
        assert all(torch.equal(c, z) for c, z in zip(out.codes, snapped))
        assert torch.equal(out.images, model.generate(3, fixed=dict(enumerate(snapped))).images)
        partial = moved[0].clone()
        partial[:, :, 0, 0] = float("nan")
        mixed = model.generate(3, fixed={0: partial, 1: moved[1]}, generator=torch.Generator().manual_seed(5))
        assert torch.equal(mixed.codes[0][:, :, 1:], snapped[0][:, :, 1:]) and not mixed.codes[0].isnan().any()


def test_a_path_between_two_images_ends_at_their_reconstructions_in_a_pooled_layer():
    """z1 of 80-number codes on a 2x2 map has 320 numbers: its summary is pooled to the map's mean. The Paths page's
    straight line runs between the whole code maps all the same, so its ends are the two reconstructions and each
    layer's row starts at image a's own codes (it used to spread the pooled mean over every cell: a flat map)."""
    from explorer.traverse import decode_layer, encode_full, interpolate, reconstruct, summaries
    model = tiny_model(code_dim=80, dead_threshold=2.0).train()
    x = torch.rand(64, 64, generator=torch.Generator().manual_seed(1)).round()
    with torch.no_grad():
        model._pass(x)  # every code revived from the batch's encoder outputs: the cells get different codes
    model.eval()
    assert model.layer_specs()[0].pool == 2
    a, b = x[:2].numpy()
    assert len(set(model.posterior(x[:1], mean_path=True)[0].index.flatten().tolist())) > 1
    ends = reconstruct(model, np.stack([a, b]))
    np.testing.assert_allclose(interpolate(model, a, b, steps=5)[[0, -1]], ends, atol=1e-6)
    np.testing.assert_allclose(interpolate(model, a, b, layer=0, steps=5)[0], ends[0], atol=1e-6)
    # the Traverse: a step from the image's whole codes; at offset 0 it decodes the image's reconstruction
    whole = encode_full(model, a)
    start = summaries(model, whole)[0]
    np.testing.assert_allclose(decode_layer(model, 0, start[None], whole=whole)[0], ends[0], atol=1e-6)
    moved = decode_layer(model, 0, start[None] + 3 * np.random.default_rng(0).standard_normal(start.shape), whole=whole)
    assert not np.allclose(moved[0], ends[0])


def test_bad_vqvae_options_are_refused_in_one_line():
    from training.errors import UserError
    for kw in (dict(codes=[16]), dict(levels=3), dict(decay=1.0), dict(code_dim=0)):
        with pytest.raises(UserError):
            vq_cfg(**kw)
    assert vq_cfg(levels=1, codes=[16]).layers == 1
    assert RunConfig.make(model="vqvae", dataset="mnist", epochs=1, levels=1).arch.codes == [128]


def test_eval_reports_the_bound_and_the_codes_used(vq_run):
    """`eval` on a VQ-VAE: its IW estimate is the bound itself (every weight alike), and the report gives codes used
    out of each codebook and the priors' nats in place of active units and KL."""
    from training.evaluate import evaluate_run, format_report
    r = evaluate_run(vq_run, iw_samples=7, data_dir="unused", device="cpu")
    assert math.isclose(r["iw_ll"], r["test_elbo"], rel_tol=1e-5) and r["codebook"] == [16, 8]
    text = format_report(r)
    assert "codes used" in text and "-log p(codes) per layer" in text and "active units" not in text


def test_every_page_opens_on_a_vqvae_run(vq_run, monkeypatch, tmp_path):
    from conftest import every_page_opens
    at = every_page_opens(vq_run.parent, monkeypatch, tmp_path)
    assert any("digits-vqvae" in str(o) for s in at.selectbox for o in s.options)


def test_the_codes_page_swaps_a_code_and_decodes_again(vq_run, monkeypatch, tmp_path):
    """The discrete Traverse: the page opens on the chosen image's top codes; choosing another code for the chosen
    cell decodes a different image; the codebook and the resampled bottom are shown."""
    from conftest import every_page_opens
    from test_app import image_url
    at = every_page_opens(vq_run.parent, monkeypatch, tmp_path)
    at.switch_page("app_pages/codes.py").run()
    own = image_url(at, "decoded from its own codes")
    swap = next(s for s in at.selectbox if s.key and s.key.startswith("codes_swap_"))
    assert "the image's own" in swap.options[0]
    before = image_url(at, "choose another code")
    swap.select_index(1).run()
    assert not at.exception and not at.error
    after = image_url(at, "with code")
    assert after != before and image_url(at, "decoded from its own codes") == own
    assert any("resampled" in s.value for s in at.subheader) and any("codebook" in s.value for s in at.subheader)


def test_a_code_swap_decodes_what_the_codes_say(vq_run):
    """decode_codes of the image's own codes is its reconstruction; a swapped cell changes the image."""
    import numpy as np

    from explorer.codemap import code_map, decode_codes, with_code
    from explorer.traverse import reconstruct
    from training.data import load_dataset
    model, _, _ = ckpt.load_model(vq_run)
    image = load_dataset("digits").test_x[:1].round()
    cm = code_map(model, image[0])
    np.testing.assert_allclose(decode_codes(model, cm.index), reconstruct(model, image)[0], atol=1e-6)
    assert cm.surprise(0).shape == cm.index[0].shape and (cm.surprise(0) > 0).all()
    probs = [p for _, p in cm.top_choices(1, (0, 0), k=8)]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    other = (int(cm.index[1][0, 0]) + 1) % 8
    assert np.abs(decode_codes(model, with_code(cm, 1, (0, 0), other)) - decode_codes(model, cm.index)).max() > 0


def test_prior_only_epochs_train_the_priors_alone(tmp_path):
    """With --prior-epochs 1 of 2, the second epoch changes the priors and nothing else: every other tensor (encoder,
    decoder, codebooks and their EMA state) is as after a 1-epoch run, and no code is revived in it."""
    a = train_on_one_thread(vq_cfg(epochs=2, prior_epochs=1), tmp_path / "a")
    b = train_on_one_thread(vq_cfg(epochs=1), tmp_path / "b")
    ta, _ = ckpt.read_tensors(a / ckpt.CHECKPOINT, "model.")
    tb, _ = ckpt.read_tensors(b / ckpt.CHECKPOINT, "model.")
    assert ta.keys() == tb.keys()
    moved = {k for k in ta if not torch.equal(ta[k], tb[k])}
    assert moved and all(k.startswith(("priors.", "prior_cond.")) for k in moved), sorted(moved)
    h = ckpt.read_history(a)
    assert h[1]["codes_revived"] == [0, 0]


def test_codebook_use_counts_every_position_and_names_each_codes_class(vq_run):
    import numpy as np

    from explorer.codemap import codebook_use
    from training.data import load_dataset
    model, _, _ = ckpt.load_model(vq_run)
    data = load_dataset("digits")
    images, labels = data.test_x[:100].round().astype(np.float32), data.test_y[:100]
    for method in ("PCA", "t-SNE"):
        use = codebook_use(model, 0, images, labels, method)
        assert use.xy.shape == (16, 2) and len(use.axes) == 2
        assert use.counts.sum() == 100 * 2 * 2  # every position of the 2x2 bottom map of every image
        assert ((use.top_class >= 0) == (use.counts > 0)).all() and (use.share[use.counts > 0] > 0).all()


def test_the_information_of_a_layer_of_codes_is_the_entropy_of_its_maps(vq_run):
    """Compare's information per layer on a VQ-VAE: a point-mass q makes I(x; z) = H(z), the plug-in entropy of the
    images' code maps (at most log N), finite where the Gaussian estimator would divide by a zero variance."""
    import numpy as np

    from explorer.information import code_map_entropy, layer_information
    from training.data import load_dataset
    assert code_map_entropy(np.array([[1, 2], [1, 2], [3, 4], [5, 6]])) == pytest.approx(-(0.5 * np.log(0.5) + 0.5 * np.log(0.25)))
    model, _, _ = ckpt.load_model(vq_run)
    images = load_dataset("digits").test_x[:60].round().astype(np.float32)
    info = layer_information(model, images)
    assert all(0 <= m <= np.log(60) + 1e-9 and np.isnan(se) for m, se in info.mi)  # finite: no zero variance used
    assert np.isfinite(info.elbo) and len(info.kl_per_unit) == 2
