"""Tests for explorer/ runs, encode, traverse, images and paper, on two tiny runs trained once per session."""
from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.decomposition import PCA

from explorer import encode as encode_mod
from explorer.encode import LayerPCA, encode, layer_pca, test_points
from explorer.images import (UploadError, image_data_uri, image_grid, png_bytes, read_upload, to_uint8)
from explorer.paper import PAPER_MNIST, paper_reference
from explorer.runs import (PRETRAINED_ENV, RUNS_ENV, RunInfo, default_pair, discover_runs, load_history, load_model,
                          runs_dirs, writable_runs_dirs)
from explorer.traverse import (along_directions, decode_layer, encode_one, hierarchy_decomposition, prior_samples,
                               prior_start, reconstruct, traversal_grid)
from training import checkpoint as ckpt
from training.config import RunConfig
from training.data import load_dataset
from training.errors import DataError, UserError
from training import evaluate as evaluate_mod
from training import train as train_mod

LAYERS = 3


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("LVAE_OFFLINE", "1")


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    """A runs folder with a 3-layer LVAE and a 3-layer VAE, 2 epochs each on digits (a few seconds)."""
    root = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models train faster on one thread
    try:
        for model in ("lvae", "vae"):
            cfg = RunConfig.make(model=model, layers=LAYERS, dataset="digits", epochs=2, batch_size=64, eval_every=1,
                            snapshot_every=1, device="cpu")
            train_mod.train(cfg, root / f"tiny-{model}", progress=False)
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture(scope="session")
def lvae(runs_root):
    model, cfg, _ = load_model(runs_root / "tiny-lvae")
    return model, cfg


@pytest.fixture(scope="session")
def points(lvae, runs_root):
    return test_points(lvae[1], runs_root / "tiny-lvae", n=200)


# ---- runs ----------------------------------------------------------------------------

def test_discover_finds_ok_runs(runs_root):
    found = {r.name: r for r in discover_runs([runs_root])}
    assert set(found) == {"tiny-lvae", "tiny-vae"}
    for name, model in (("tiny-lvae", "lvae"), ("tiny-vae", "vae")):
        r = found[name]
        assert r.ok and r.error is None and r.epochs_done == 2 and r.stamp > 0
        assert r.config.model == model
    assert found["tiny-lvae"].label == "tiny-lvae · LVAE+BN+WU, 3 layers, digits"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def broken_root(runs_root, tmp_path_factory) -> Path:
    """One folder per way a run can be broken, each a damaged copy of the good LVAE run."""
    root = tmp_path_factory.mktemp("broken")
    good = runs_root / "tiny-lvae"

    (_copy(good, root / "bad-json") / ckpt.CONFIG).write_text("{not json")
    cfg = (good / ckpt.CONFIG).read_text().replace('"model": "lvae"', '"model": "gan"')
    (_copy(good, root / "bad-model") / ckpt.CONFIG).write_text(cfg)
    (_copy(good, root / "no-checkpoint") / ckpt.CHECKPOINT).unlink()
    path = _copy(good, root / "truncated") / ckpt.CHECKPOINT
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    path = _copy(good, root / "nan-weights") / ckpt.CHECKPOINT
    tensors, meta = ckpt.read_tensors(path)
    tensors["model.generative.x_logits.weight"][0, 0] = float("nan")
    ckpt.save_tensors(path, tensors, meta)
    pickled = _copy(good, root / "pickle-only")
    (pickled / ckpt.CHECKPOINT).unlink()
    (pickled / "model.pt").write_bytes(b"\x80\x04not really a pickle")
    no_cfg = root / "no-config"
    no_cfg.mkdir()
    shutil.copy(good / ckpt.CHECKPOINT, no_cfg / ckpt.CHECKPOINT)
    (_copy(good, root / "bad-history") / ckpt.HISTORY).write_bytes(b"\xff\xfe\x00 not utf-8\n")
    (root / "not-a-run").mkdir()
    (root / "not-a-run" / "notes.txt").write_text("hello")
    return root


@pytest.mark.parametrize("name, reason", [
    ("bad-json", "not valid JSON"),
    ("bad-model", "model must be one of"),
    ("no-checkpoint", "no checkpoint.safetensors yet"),
    ("truncated", "not a readable safetensors file"),
    ("nan-weights", "NaN or infinite"),
    ("pickle-only", "pickle"),
    ("no-config", "no config.json"),
    ("bad-history", "unreadable"),
])
def test_discover_reports_broken_runs(broken_root, name, reason):
    found = {r.name: r for r in discover_runs([broken_root])}
    r = found[name]
    assert not r.ok and reason in r.error and "\n" not in r.error
    assert r.label.startswith(name)


def test_discover_skips_non_runs_and_missing_dirs(broken_root, tmp_path):
    found = discover_runs([broken_root, tmp_path / "missing", broken_root])  # a folder given twice is listed once
    names = [r.name for r in found]
    assert "not-a-run" not in names and len(names) == len(set(names)) == 8


def test_discover_never_raises(runs_root, tmp_path, monkeypatch):
    _copy(runs_root / "tiny-vae", tmp_path / "odd")

    def boom(*_args, **_kw):
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr(ckpt, "load_model", boom)
    [r] = discover_runs([tmp_path])
    assert r.error == "RuntimeError: something unexpected" and r.config is not None


def test_a_training_runs_new_epochs_reread_its_history_but_not_its_weights(runs_root, tmp_path, monkeypatch):
    """A run in training appends to history.jsonl every epoch: discovery re-reads the history, not the model."""
    run = _copy(runs_root / "tiny-vae", tmp_path / "growing")
    loads = []
    real = ckpt.load_model
    monkeypatch.setattr(ckpt, "load_model", lambda *a, **k: loads.append(1) or real(*a, **k))
    assert discover_runs([tmp_path])[0].ok and len(loads) == 1
    with open(run / ckpt.HISTORY, "a") as f:
        f.write('{"epoch": 3, "train_elbo": -1.0}\n')
    assert discover_runs([tmp_path])[0].ok and len(loads) == 1
    (run / ckpt.HISTORY).write_bytes(b"\xff\xfe not utf-8\n")  # a damaged history still shows
    assert "unreadable" in discover_runs([tmp_path])[0].error and len(loads) == 1


def test_discovery_with_a_max_age_looks_again_only_when_it_is_over(runs_root, tmp_path):
    from explorer.runs import forget_discovery
    assert discover_runs([tmp_path], max_age=60) == []
    _copy(runs_root / "tiny-vae", tmp_path / "new")
    assert discover_runs([tmp_path], max_age=60) == []  # the last look is recent: as it was
    assert [r.name for r in discover_runs([tmp_path])] == ["new"]  # max_age 0: always a fresh look
    shutil.rmtree(tmp_path / "new")
    assert [r.name for r in discover_runs([tmp_path], max_age=60)] == ["new"]
    forget_discovery()  # what the pages call when they know a run changed
    assert discover_runs([tmp_path], max_age=60) == []


def test_runs_dirs_env_and_dedup(monkeypatch, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv(RUNS_ENV, os.pathsep.join([str(a), "", str(b), str(a)]))
    shipped = tmp_path / "shipped"
    monkeypatch.setenv(PRETRAINED_ENV, str(shipped))
    assert runs_dirs([b]) == [Path("runs").resolve(), b.resolve(), a.resolve(), shipped.resolve()]
    assert writable_runs_dirs([b]) == [Path("runs").resolve(), b.resolve(), a.resolve()]
    monkeypatch.delenv(RUNS_ENV)
    assert runs_dirs() == [Path("runs").resolve(), shipped.resolve()]


def test_runs_under_pretrained_are_read_only_and_carry_their_evaluation(runs_root, tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    shutil.copytree(runs_root / "tiny-lvae", shipped / "tiny-lvae")
    (shipped / "tiny-lvae" / "eval.json").write_text(json.dumps({"iw_ll": -25.5, "iw_samples": 5000}))
    monkeypatch.setenv(PRETRAINED_ENV, str(shipped))
    [run] = discover_runs([shipped])
    assert run.ok and run.read_only and run.evaluation == {"iw_ll": -25.5, "iw_samples": 5000}
    [own] = discover_runs([runs_root / "tiny-lvae"])
    assert not own.read_only and own.evaluation is None
    (shipped / "tiny-lvae" / "eval.json").write_text("{not json")
    [run] = discover_runs([shipped])
    assert run.ok and run.evaluation is None  # an unreadable eval.json hides the numbers, not the run


def _info(name: str, model: str | None, error: str | None = None, read_only: bool = False,
          dataset: str = "digits") -> RunInfo:
    cfg = RunConfig.make(model=model, layers=2, dataset=dataset) if model else None
    return RunInfo(Path(name), name, cfg, error, 1, 1.0, read_only)


def test_default_pair_prefers_the_shipped_pair_then_the_demo_names():
    runs = [_info("a-vae", "vae"), _info("b-lvae", "lvae"), _info("digits-lvae-bn-wu", "lvae"),
            _info("digits-vae-bn-wu", "vae", error="broken"), _info("junk", None, error="bad")]
    vae, lvae = default_pair(runs)
    assert vae.name == "a-vae" and lvae.name == "digits-lvae-bn-wu"
    only_lvae = default_pair([_info("x", "lvae")])
    assert only_lvae[0] is None and only_lvae[1].name == "x"
    assert default_pair([]) == (None, None)
    shipped = [_info("mnist-vae-bn-wu", "vae", read_only=True, dataset="mnist"),
               _info("mnist-lvae-bn-wu", "lvae", read_only=True, dataset="mnist")]
    vae, lvae = default_pair(runs + shipped)
    assert (vae.name, lvae.name) == ("mnist-vae-bn-wu", "mnist-lvae-bn-wu")
    # a run of one's own that happens to have the shipped name is not the shipped pair
    assert default_pair(runs + [_info("mnist-vae-bn-wu", "vae")])[0].name == "a-vae"


def test_load_history(runs_root, tmp_path):
    h = load_history(runs_root / "tiny-lvae")
    assert list(h["epoch"]) == [1, 2] and {"train_elbo", "test_elbo", "active_units", "kl_per_unit"} <= set(h.columns)
    assert load_history(tmp_path).empty


# ---- encode ----------------------------------------------------------------------------

def test_test_points_from_dataset(lvae, runs_root, points):
    _, cfg = lvae
    assert points.images.shape == (200, 64) and points.images.dtype == np.float32
    assert points.labels.shape == (200,) and points.labels.dtype == np.int64
    assert points.image_shape == (8, 8) and "digits test set" in points.source
    x, y = evaluate_mod.test_tensors(load_dataset("digits"), cfg, torch.device("cpu"))
    # a class-balanced sample, never the first n (whose class mix is the file's order); seeded, so every
    # run on the same data shows the same points
    idx = points.index
    assert len(set(idx.tolist())) == 200 and not np.array_equal(idx, np.arange(200))
    np.testing.assert_array_equal(points.images, x.numpy()[idx])
    np.testing.assert_array_equal(points.labels, y.numpy()[idx])
    counts = np.bincount(points.labels, minlength=10)
    assert counts.max() - counts.min() <= 1
    assert "class-balanced" in points.source
    np.testing.assert_array_equal(test_points(cfg, runs_root / "tiny-vae", 200).index, idx)


def test_test_points_fall_back_to_snapshot(lvae, runs_root, monkeypatch, tmp_path):
    def missing(*_args, **_kw):
        raise DataError("digits files not found")

    monkeypatch.setattr(encode_mod, "load_dataset", missing)
    encode_mod._test_set.cache_clear()  # the test set is read once per process; make it be read again
    _, cfg = lvae
    tp = test_points(cfg, runs_root / "tiny-lvae", n=50)
    saved = ckpt.load_snapshot_points(runs_root / "tiny-lvae")
    # issue 27, item 9: said as what they are ("stored test images"), not as an error on the shipped runs
    assert "run's" in tp.source and "stored digits test images" in tp.source and "not found" not in tp.source
    assert tp.image_shape == (8, 8)
    saved_index = saved["index"].numpy().tolist()
    rows = [saved_index.index(i) for i in tp.index.tolist()]  # the saved points' own test-set positions
    assert len(set(rows)) == 50 and rows != list(range(50))   # a class-balanced 50 of them, not the first
    np.testing.assert_array_equal(tp.images, saved["image"][rows].float().numpy() / 255)
    np.testing.assert_array_equal(tp.labels, saved["label"][rows].numpy())
    with pytest.raises(UserError, match="no test images"):
        test_points(cfg, tmp_path, n=50)
    monkeypatch.undo()
    assert "digits test set" in test_points(cfg, runs_root / "tiny-lvae", n=50).source


def test_requests_leave_torch_global_state_alone(lvae, points):
    """The app serves sessions from threads of one process: a request must neither seed torch's global
    RNG nor change its thread count."""
    from explorer import traverse
    model = lvae[0]
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    from training.evaluate import eval_mode
    with eval_mode(model):
        assert torch.get_num_threads() == threads and not torch.is_grad_enabled()
    encode_mod.encode(model, points.images[:20], seed=3)
    traverse.prior_samples(model, 4, seed=5)
    traverse.hierarchy_decomposition(model, points.images[0], keep_top=2, n=3, seed=7)
    assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), rng)


def test_interleaved_seeded_requests_give_what_each_gives_alone(lvae, points):
    """Two sessions' seeded draws, interleaved in two threads, equal each one run alone."""
    import threading

    from explorer import traverse
    model = lvae[0]
    alone = {s: (traverse.prior_samples(model, 6, seed=s), encode_mod.encode(model, points.images[:50], seed=s).samples)
             for s in (1, 2)}
    got: dict = {}

    def request(seed: int) -> None:
        for _ in range(5):
            got[seed] = (traverse.prior_samples(model, 6, seed=seed),
                         encode_mod.encode(model, points.images[:50], seed=seed).samples)
            assert np.array_equal(got[seed][0], alone[seed][0])

    threads = [threading.Thread(target=request, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in (1, 2):
        assert np.array_equal(got[s][0], alone[s][0])
        assert all(np.array_equal(a, b) for a, b in zip(got[s][1], alone[s][1]))
    assert not np.array_equal(alone[1][0], alone[2][0])


def test_encode_shapes_and_determinism(lvae, points):
    model, cfg = lvae
    enc = encode(model, points.images)
    assert [m.shape for m in enc.means] == [(200, u) for u in cfg.arch.latent_sizes]
    assert [s.shape for s in enc.samples] == [(200, u) for u in cfg.arch.latent_sizes]
    again = encode(model, points.images)
    for a, b in zip(enc.means + enc.samples, again.means + again.samples):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert not np.allclose(enc.means[0], enc.samples[0])
    assert model.training is False


def test_layer_pca_matches_sklearn(lvae, points):
    z = encode(lvae[0], points.images).means[0]
    p = layer_pca(z, k=3)
    assert p.coords.shape == (200, 3) and p.components.shape == (3, z.shape[1])
    assert 0 < p.explained.sum() <= 1 + 1e-6 and np.all(np.diff(p.explained) <= 1e-9)
    np.testing.assert_allclose(p.coords, PCA(n_components=3).fit_transform(z), atol=1e-4)
    np.testing.assert_allclose(p.sd, p.coords.std(axis=0), rtol=1e-5)


def test_layer_pca_one_unit_and_collapsed_layers():
    z = np.random.default_rng(0).normal(size=(50, 1)).astype(np.float32)
    p = layer_pca(z, k=3)
    assert p.coords.shape == (50, 2) and np.all(p.coords[:, 1] == 0)
    assert p.explained[1] == 0 and p.sd[1] == 0 and np.isclose(p.explained[0], 1)
    flat = layer_pca(np.ones((20, 4), np.float32), k=3)
    assert np.all(np.isfinite(flat.explained)) and flat.explained.sum() <= 1


# ---- traverse --------------------------------------------------------------------------

def test_decode_layer_deterministic_and_in_range(lvae):
    model, cfg = lvae
    for layer, units in enumerate(cfg.arch.latent_sizes):
        z = np.random.default_rng(layer).normal(size=(5, units)).astype(np.float32)
        a, b = decode_layer(model, layer, z), decode_layer(model, layer, z)
        assert a.shape == (5, 64) and a.min() >= 0 and a.max() <= 1
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="units"):
        decode_layer(model, 0, np.zeros((1, 3)))


def test_along_directions_math():
    comps = np.array([[1, 0, 0], [0, 0.6, 0.8]], np.float32)
    pca = LayerPCA(np.zeros((4, 2)), np.array([0.6, 0.3]), comps, np.zeros(3), np.array([2.0, 0.5], np.float32))
    base = np.array([1, 1, 1], np.float32)
    np.testing.assert_allclose(along_directions(pca, base, [1.5, -2]), base + 1.5 * 2 * comps[0] - 2 * 0.5 * comps[1])
    np.testing.assert_allclose(along_directions(pca, base, [1.0]), [3, 1, 1])
    np.testing.assert_allclose(along_directions(pca, base, np.zeros((4, 2))), np.tile(base, (4, 1)))


def test_traversal_grid_changes_along_direction(lvae, points):
    model, _ = lvae
    z = encode(model, points.images).means[0]
    p = layer_pca(z)
    grid = traversal_grid(model, 0, p, z[0])
    assert grid.shape == (3, 7, 64)
    assert np.abs(grid[0, 0] - grid[0, -1]).max() > 0.05               # the first direction changes the image
    np.testing.assert_allclose(grid[:, 3], np.tile(decode_layer(model, 0, z[0]), (3, 1)), atol=1e-6)  # step 0 = base


def test_encode_one_and_prior_start(lvae, points):
    model, cfg = lvae
    zs = encode_one(model, points.images[3])
    np.testing.assert_allclose(zs[1], encode(model, points.images[:5]).means[1][3], atol=1e-5)
    start = prior_start(model, seed=1)
    assert [z.shape for z in start] == [(u,) for u in cfg.arch.latent_sizes]
    np.testing.assert_array_equal(start[-1], prior_start(model, seed=1)[-1])
    # the start is the mean path, so decoding from any of its layers gives the same picture
    np.testing.assert_allclose(decode_layer(model, LAYERS - 1, start[-1]), decode_layer(model, 0, start[0]), atol=1e-5)
    rec = reconstruct(model, points.images[:4])
    assert rec.shape == (4, 64) and 0 <= rec.min() and rec.max() <= 1


def test_hierarchy_decomposition(lvae, points):
    model, _ = lvae
    full = hierarchy_decomposition(model, points.images[0], keep_top=LAYERS, n=6)
    assert full.shape == (6, 64)
    np.testing.assert_allclose(full, np.tile(full[0], (6, 1)), atol=1e-6)  # same z_1; batched matmul rounding
    none = hierarchy_decomposition(model, points.images[0], keep_top=0, n=6)
    assert np.abs(none - none[0]).max() > 1e-3
    np.testing.assert_array_equal(hierarchy_decomposition(model, points.images[0], 1, n=6, seed=4),
                                  hierarchy_decomposition(model, points.images[0], 1, n=6, seed=4))
    with pytest.raises(ValueError):
        hierarchy_decomposition(model, points.images[0], keep_top=LAYERS + 1)


def test_prior_samples_seeded_and_zero_temperature(lvae):
    model, cfg = lvae
    a, b, c = prior_samples(model, 5, seed=1), prior_samples(model, 5, seed=1), prior_samples(model, 5, seed=2)
    assert a.shape == (5, 64) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    mean_path = decode_layer(model, LAYERS - 1, np.zeros((1, cfg.arch.latent_sizes[-1])))
    np.testing.assert_allclose(prior_samples(model, 3, temperature=0.0), np.tile(mean_path, (3, 1)), atol=1e-6)


# ---- images ----------------------------------------------------------------------------

def test_to_uint8_and_grid_sizes():
    imgs = np.linspace(-0.5, 1.5, 5 * 64, dtype=np.float32).reshape(5, 64)
    u = to_uint8(imgs, (8, 8))
    assert u.shape == (5, 8, 8) and u.dtype == np.uint8 and u.min() == 0 and u.max() == 255
    assert image_grid(imgs, (8, 8), ncols=5, scale=4, pad=1).size == (5 * 32 + 6, 32 + 2)
    assert image_grid(imgs, (8, 8)).size == (3 * 32 + 4, 2 * 32 + 3)           # 5 images -> 3 columns, 2 rows
    grid = np.zeros((3, 7, 64), np.float32)
    assert image_grid(grid, (8, 8), scale=2, pad=0).size == (7 * 16, 3 * 16)  # (width, height)


def test_png_and_data_uri():
    img = image_grid(np.ones((1, 64)), (8, 8))
    assert png_bytes(img).startswith(b"\x89PNG\r\n\x1a\n")
    uri = image_data_uri(np.zeros(64), (8, 8))
    assert uri.startswith("data:image/png;base64,")


def _png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_read_upload_png_dark_on_light_is_inverted():
    img = Image.new("RGB", (80, 80), "white")
    img.paste((0, 0, 0), (30, 10, 50, 70))       # a dark vertical bar on white paper
    x = read_upload(_png(img), (8, 8))
    assert x.shape == (64,) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    square = x.reshape(8, 8)
    assert square[4, 3:5].mean() > 0.9 and square[4, 0] < 0.1   # bar light, background dark, like MNIST


def test_read_upload_rgba_and_jpeg():
    rgba = Image.new("RGBA", (28, 28), (0, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), (10, 4, 18, 24))
    assert read_upload(_png(rgba), (28, 28)).reshape(28, 28)[14, 14] > 0.9
    jpeg = _png(Image.new("L", (40, 40), 0), "JPEG")
    assert read_upload(jpeg, (8, 8)).shape == (64,)


@pytest.mark.parametrize("data", [b"", b"this is not an image at all", _png(Image.new("L", (9, 9)))[:40]])
def test_read_upload_rejects_garbage(data):
    with pytest.raises(UploadError) as info:
        read_upload(data, (8, 8))
    assert isinstance(info.value, ValueError) and isinstance(info.value, UserError)
    assert "\n" not in str(info.value)


# ---- paper -----------------------------------------------------------------------------

def test_paper_reference():
    cfg = RunConfig.make(model="lvae", layers=5, dataset="mnist")
    assert paper_reference(cfg) == PAPER_MNIST["LVAE+BN+WU, 5 layers"] == -82.12
    assert paper_reference(RunConfig.make(model="vae", layers=5, dataset="mnist")) is None
    assert paper_reference(RunConfig.make(model="lvae", layers=5, dataset="digits")) is None
    assert paper_reference(RunConfig.make(model="lvae", layers=5, dataset="mnist", warmup_epochs=0)) is None


def test_interpolation_ends_at_the_two_reconstructions_and_moves_one_layer_at_a_time(lvae, points):
    from explorer.traverse import interpolate
    model, cfg = lvae
    a, b = points.images[0], points.images[1]
    path = interpolate(model, a, b, steps=5)
    assert path.shape == (5, cfg.input_dim)
    np.testing.assert_allclose(path[[0, -1]], reconstruct(model, np.stack([a, b])), atol=1e-5)
    top = interpolate(model, a, b, layer=cfg.layers - 1, steps=5)
    start = encode_one(model, a)[cfg.layers - 1]
    np.testing.assert_allclose(top[0], decode_layer(model, cfg.layers - 1, start[None])[0], atol=1e-5)
    assert not np.allclose(top[0], top[-1])
    with pytest.raises(ValueError):
        interpolate(model, a, b, layer=cfg.layers)


def test_prior_samples_take_one_temperature_per_layer(lvae):
    model, cfg = lvae
    same = prior_samples(model, 6, [0.7] * cfg.layers, seed=3)
    np.testing.assert_allclose(same, prior_samples(model, 6, 0.7, seed=3), atol=1e-6)
    np.testing.assert_allclose(prior_samples(model, 6, [0.0] * cfg.layers, seed=3), prior_samples(model, 6, 0.0),
                               atol=1e-6)
    only_top = prior_samples(model, 6, [0.0] * (cfg.layers - 1) + [1.0], seed=3)
    assert not np.allclose(only_top, prior_samples(model, 6, 0.0))  # the top layer's noise alone shows
    with pytest.raises(ValueError, match="temperatures"):
        prior_samples(model, 6, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0][:cfg.layers + 1])


def test_fashion_mnist_classes_are_named_and_digits_stay_digits():
    """Issue 27, item 12: Fashion-MNIST's ten classes by name in legends and captions."""
    from explorer.class_names import class_name, named_labels
    assert class_name("fashion-mnist", 3) == "Dress" and class_name("mnist", 3) == "3"
    assert named_labels("fashion-mnist", np.array([0, 9])).tolist() == ["T-shirt/top", "Ankle boot"]
    assert named_labels("digits", np.array([0, 9])).tolist() == [0, 9]
