"""The shipped pretrained/ pair: the app opens on it with nothing to train and no MNIST files at hand,
every page works on it, and nothing the app does writes into it."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import SHIPPED_DIR
from streamlit.testing.v1 import AppTest
from test_app import APP, TIMEOUT, by_title, image_url, no_exceptions, page

from explorer import jobs
from training import checkpoint as ckpt
from training.config import PAPER_HIDDEN, PAPER_LATENT

PAIR = ("mnist-vae-bn-wu", "mnist-lvae-bn-wu")


def tree_state(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under root: size, mtime and content hash (a root user ignores read-only modes)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


def stored(name: str) -> dict:
    return json.loads((SHIPPED_DIR / name / ckpt.EVAL).read_text())


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A fresh clone's first start: the shipped pair only, an empty working folder (no runs/, data/ or
    results/), no job. Afterwards pretrained/ must be exactly as it was."""
    for name in PAIR:
        assert (SHIPPED_DIR / name / ckpt.CHECKPOINT).is_file(), f"pretrained/{name} is missing"
    monkeypatch.delenv("LVAE_PRETRAINED_DIR")
    monkeypatch.delenv("LVAE_RUNS_DIR", raising=False)
    monkeypatch.delenv("LVAE_RESULTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(jobs, "demo", None)
    monkeypatch.setattr(jobs, "submitted", {})
    monkeypatch.setattr(jobs, "scheduler", jobs.Scheduler())
    before = tree_state(SHIPPED_DIR)
    yield tmp_path
    assert tree_state(SHIPPED_DIR) == before, "the app wrote into pretrained/"


def test_the_shipped_pair_is_the_papers_setup_and_weights_only():
    for name, model in zip(PAIR, ("vae", "lvae")):
        cfg = ckpt.load_config(SHIPPED_DIR / name)
        assert (cfg.model, cfg.layers, cfg.dataset, cfg.arch.batch_norm) == (model, 5, "mnist", True)
        assert list(cfg.arch.hidden_sizes) == list(PAPER_HIDDEN) and list(cfg.arch.latent_sizes) == list(PAPER_LATENT)
        assert cfg.warmup_epochs > 0 and cfg.pixel_scale == 256 and cfg.batch_size == 256 and cfg.lr == 2e-3
        tensors, meta = ckpt.read_tensors(SHIPPED_DIR / name / ckpt.CHECKPOINT)
        assert meta[ckpt.WEIGHTS_ONLY] == "true" and all(k.startswith("model.") for k in tensors)
        ev = stored(name)
        assert ev["iw_samples"] == 5000 and ev["test_images"] == 10000 and ev["bn_stats"] == "recomputed"
        assert ev["epochs"] == cfg.epochs and ev["pixel_scale"] == 256
        size = sum(p.stat().st_size for p in (SHIPPED_DIR / name).rglob("*") if p.is_file())
        assert size < 10e6, f"{name}: {size / 1e6:.1f} MB"


def test_first_start_opens_on_the_mnist_pair_with_nothing_to_train(fresh):
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    no_exceptions(at)
    assert at.header[0].value.startswith("Compare")
    units = by_title(at, "Active units")
    assert [t["name"] for t in units["data"]] == list(PAIR)
    assert [t["y"] for t in units["data"]] == [stored(n)["active_units"] for n in PAIR]
    iw = [m for m in at.metric if m.label == f"log p(x), IW-{stored(PAIR[1])['iw_samples']}"]  # 5000: test above
    assert [m.value for m in iw] == [f"{stored(n)['iw_ll']:.2f}" for n in PAIR]
    assert any("-82.12" in i.value and f"{stored(PAIR[1])['iw_ll']:.2f}" in i.value for i in at.info)
    assert not jobs.submitted and jobs.demo is None and not (fresh / "runs").exists()
    assert not at.get("progress")


def test_every_page_works_on_the_pair_without_the_mnist_files(fresh):
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    no_exceptions(at)
    page(at, "layers")
    assert any("1,000 points" in c.value or "1000 points" in c.value for c in at.caption)
    grid = by_title(at, "every latent layer")
    assert {t["meta"] for t in grid["data"]} == {"z1", "z2", "z3", "z4", "z5"}
    assert image_url(at, "reconstruction")

    page(at, "traverse")
    before = image_url(at, "decoded")
    next(s for s in at.slider if s.label.startswith("PC")).set_value(2.0).run()
    no_exceptions(at)
    assert image_url(at, "decoded") != before

    page(at, "curves")
    assert len(by_title(at, "warm-up")["data"]) == 2
    epochs = ckpt.snapshot_epochs(SHIPPED_DIR / PAIR[0])
    assert list(at.select_slider(key="training_replay_epoch").options) == [str(e) for e in epochs]

    page(at, "samples")
    assert image_url(at, "samples z_L") and image_url(at, "reconstructions")

    page(at, "train")  # the form trains into runs/, never into pretrained/
    assert not [s for s in at.selectbox if s.key == "train_dir"]
    assert (fresh / "runs").resolve() != SHIPPED_DIR


# ---- the shipped NVAE (issue 29) ------------------------------------------------------------------

NVAE = "mnist-nvae"
VDVAE = "mnist-vdvae"
VQVAE = "mnist-vqvae"


def test_the_shipped_nvae_is_weights_only_small_and_evaluated_as_nvae_does():
    cfg = ckpt.load_config(SHIPPED_DIR / NVAE)
    assert (cfg.model, cfg.dataset, cfg.likelihood, cfg.pixel_scale) == ("nvae", "mnist", "bernoulli", 256)
    assert cfg.arch.residual_normal and cfg.arch.kl_balance and cfg.arch.spectral_reg > 0 and cfg.warmup_epochs > 0
    tensors, meta = ckpt.read_tensors(SHIPPED_DIR / NVAE / ckpt.CHECKPOINT)
    assert meta[ckpt.WEIGHTS_ONLY] == "true" and all(k.startswith("model.") for k in tensors)
    ev = stored(NVAE)
    assert ev["bn_stats"] == "running" and ev["epochs"] == cfg.epochs and ev["iw_samples"] >= 1000
    assert ev["pixel_scale"] == 256 and ev["test_images"] >= 1000 and ev["iw_ll"] > ev["test_elbo"]
    # both activity rules per group, as the issue asks: A_u over the channel summaries and KL > 0.1 per channel
    assert len(ev["active_units"]) == len(ev["active_channels"]) == len(ev["test_kl_per_layer"]) == cfg.layers
    assert (SHIPPED_DIR / NVAE / ckpt.SNAPSHOTS / "points.safetensors").is_file()
    size = sum(p.stat().st_size for p in (SHIPPED_DIR / NVAE).rglob("*") if p.is_file())
    assert size < 10e6, f"{NVAE}: {size / 1e6:.1f} MB"


def test_the_shipped_vdvae_is_deep_weights_only_small_and_evaluated():
    """Issue 30: at least 20 layers over at least three resolutions, the moving average's weights alone, evaluated
    with the layers in use and A_u per layer."""
    cfg = ckpt.load_config(SHIPPED_DIR / VDVAE)
    assert (cfg.model, cfg.dataset, cfg.likelihood, cfg.pixel_scale) == ("vdvae", "mnist", "bernoulli", 256)
    assert cfg.layers >= 20 and cfg.ema_rate > 0 and cfg.warmup_per_step and cfg.arch.kl_balance
    from training.models.vdvae import parse_blocks
    assert len({res for res, _ in parse_blocks(cfg.arch.dec_blocks)}) >= 3
    tensors, meta = ckpt.read_tensors(SHIPPED_DIR / VDVAE / ckpt.CHECKPOINT)
    assert meta[ckpt.WEIGHTS_ONLY] == "true" and all(k.startswith("model.") for k in tensors)  # the average, no train.*
    ev = stored(VDVAE)
    assert ev["bn_stats"] == "running" and ev["epochs"] == cfg.epochs and ev["pixel_scale"] == 256
    assert ev["test_images"] >= 1000 and ev["iw_ll"] > ev["test_elbo"] and ev["iw_samples"] >= 100
    assert len(ev["active_units"]) == len(ev["test_kl_per_layer"]) == cfg.layers and 1 <= ev["active_layers"] <= cfg.layers
    size = sum(p.stat().st_size for p in (SHIPPED_DIR / VDVAE).rglob("*") if p.is_file())
    assert size < 10e6, f"{VDVAE}: {size / 1e6:.1f} MB"


def test_the_shipped_vqvae_uses_its_codebooks_and_is_evaluated_over_the_whole_test_set():
    """Issue 31: two levels of codes with their PixelCNN priors in one weights-only file of at most 10 MB; eval.json
    over all 10,000 test images with the bound, the reconstruction and, per level, codes used (target: at least 90%)
    and perplexity. The bound is log p(x|z) + log p(z): the IW estimate is the bound itself."""
    cfg = ckpt.load_config(SHIPPED_DIR / VQVAE)
    assert (cfg.model, cfg.dataset, cfg.likelihood, cfg.pixel_scale, cfg.layers) == ("vqvae", "mnist", "bernoulli", 256, 2)
    assert cfg.arch.commitment == 0.25 and cfg.arch.decay == 0.99 and cfg.arch.prior_epochs > 0
    tensors, meta = ckpt.read_tensors(SHIPPED_DIR / VQVAE / ckpt.CHECKPOINT)
    assert meta[ckpt.WEIGHTS_ONLY] == "true" and all(k.startswith("model.") for k in tensors)
    assert any("prior" in k for k in tensors), "the priors over codes were not shipped"
    ev = stored(VQVAE)
    assert ev["test_images"] == 10000 and ev["epochs"] == cfg.epochs and ev["pixel_scale"] == 256
    assert ev["codebook"] == list(cfg.arch.codes)
    for used, size, perplexity in zip(ev["test_codes_used"], ev["codebook"], ev["test_perplexity"]):
        assert used >= 0.9 * size and 1 < perplexity <= used
    assert abs(ev["test_elbo"] - (ev["test_recon"] - sum(ev["test_kl_per_layer"]))) < 1e-3
    assert abs(ev["iw_ll"] - ev["test_elbo"]) < 1e-3
    size = sum(p.stat().st_size for p in (SHIPPED_DIR / VQVAE).rglob("*") if p.is_file())
    assert size < 10e6, f"{VQVAE}: {size / 1e6:.1f} MB"


@pytest.mark.parametrize("name", [NVAE, VDVAE, VQVAE])
def test_every_page_works_on_a_shipped_conv_family_without_the_mnist_files(fresh, name):
    """The NVAE or the VDVAE picked on each page (the choice carries from page to page); its layers' codes (a deep
    model's a resolution at a time), decoding with layers fixed, samples, the spatial views and the Depth page's
    masked decoding, with no MNIST files at hand."""
    from test_app import select_run
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    no_exceptions(at)
    select_run(at, "compare_run_b", name)
    units = by_title(at, "Used per layer" if name == VQVAE else "Active units")
    assert [t["name"] for t in units["data"]] == [PAIR[0], name]
    if name == VQVAE:  # one code map per image: the bound is the number, and IW says it adds nothing
        assert [m.value for m in at.metric if m.label.startswith("Test bound")] == [f"{stored(name)['test_elbo']:.2f}"]
        assert [m.value for m in at.metric if m.label == "log p(x), IW"] == ["= the bound"]
    else:
        assert [m.value for m in at.metric if m.label == f"log p(x), IW-{stored(name)['iw_samples']}"][-1] \
            == f"{stored(name)['iw_ll']:.2f}"

    select_run(page(at, "layers"), "layers_run", name)
    grid = by_title(at, "every latent layer")
    layers = {f"z{i}" for i in range(1, ckpt.load_config(SHIPPED_DIR / name).layers + 1)}
    shown = {t["meta"] for t in grid["data"]}
    assert shown == layers if len(layers) <= 8 else (shown < layers and 1 <= len(shown) <= 8)
    assert image_url(at, "reconstruction")

    page(at, "traverse")
    assert at.selectbox(key="traverse_run").value.endswith(name)  # remembered from the Layers page
    before = image_url(at, "decoded")
    next(s for s in at.slider if s.label.startswith("PC")).set_value(2.0).run()
    no_exceptions(at)
    assert image_url(at, "decoded") != before

    page(at, "paths")
    page(at, "samples")
    assert image_url(at, "samples z_L") and image_url(at, "reconstructions")
    assert by_title(at, "Where each layer spends its nats") and by_title(at, "What each layer controls")
    page(at, "depth")
    assert image_url(at, "decoded keeping the top")
    if name == VQVAE:  # the discrete Traverse: another code in a cell of the shipped model's map decodes anew
        page(at, "codes")
        assert at.selectbox(key="codes_run").value.endswith(name)
        swap = next(s for s in at.selectbox if s.key and s.key.startswith("codes_swap_"))
        before = image_url(at, "choose another code")
        swap.select_index(1).run()
        no_exceptions(at)
        assert image_url(at, "with code") != before
        assert by_title(at, "codebook")
