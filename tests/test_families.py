"""Model families through the registry: a family defined only in the tests (tests/conv_family.py, a two-layer
convolutional hierarchy with spatial latents) trains, evaluates, exports and opens on every page, with no
change outside its own module; and what every family gets from the interface (summary codes)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training import checkpoint as ckpt
from training.config import RunConfig

APP = Path(__file__).resolve().parent.parent / "app.py"
PAGES = ("compare", "layers", "traverse", "paths", "curves", "samples", "depth", "train")


@pytest.fixture(scope="module")
def conv_runs(tmp_path_factory) -> Path:
    import conv_family  # noqa: F401  (registers "testconv")
    from training.train import train
    root = tmp_path_factory.mktemp("conv-runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = RunConfig.make(model="testconv", dataset="digits", epochs=3, warmup_epochs=2, batch_size=64,
                             eval_every=1, snapshot_every=1, checkpoint_every=1, seed=0, device="cpu")
        train(cfg, root / "tiny-conv", progress=False)
    finally:
        torch.set_num_threads(threads)
    return root


def test_a_family_of_the_tests_trains_evaluates_and_exports_through_the_registry(conv_runs, tmp_path):
    from conv_family import ConvHierarchy

    from training.evaluate import bn_statistics_images, evaluate_run, recompute_bn_statistics
    from training.data import load_dataset
    from training.export import export_run
    run = conv_runs / "tiny-conv"
    model, cfg, epoch = ckpt.load_model(run)
    assert isinstance(model, ConvHierarchy) and epoch == 3 and cfg.image_dims == (1, 8, 8)
    assert json.loads((run / ckpt.CONFIG).read_text())["arch"] == {"layers": 2, "channels": 8, "latent_channels": 2}
    last = ckpt.read_history(run)[-1]
    # the test measures and A_u count spatial units: z1 is 2 x 4 x 4, z2 2 x 2 x 2
    assert np.isfinite(last["test_elbo"]) and len(last["active_units"]) == 2
    assert all(0 <= a <= u for a, u in zip(last["active_units"], (32, 8)))
    assert [len(k) for k in last["kl_per_unit"]] == [32, 8]
    # snapshots hold the summary codes (here the whole maps, flat)
    assert [tuple(s.shape[1:]) for s in ckpt.load_snapshot(run, 3)] == [(32,), (8,)]

    # BN statistics are recomputed for BatchNorm2d too, as the exact (biased) moments over the training set
    data = load_dataset("digits")
    x = bn_statistics_images(data, cfg, torch.device("cpu"))
    twin = recompute_bn_statistics(model, x, generator=torch.Generator().manual_seed(0))
    conv_out = twin.enc1[0](x.reshape(-1, 1, 8, 8))
    bn = twin.enc1[1]
    assert torch.allclose(bn.running_mean, conv_out.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, conv_out.var((0, 2, 3), unbiased=False), atol=1e-4)
    assert not torch.allclose(model.enc1[1].running_mean, bn.running_mean)

    result = evaluate_run(run, iw_samples=20)
    assert np.isfinite(result["iw_ll"]) and result["iw_ll"] > result["test_elbo"] - 0.5
    assert len(result["active_units"]) == 2 and len(result["test_kl_per_layer"]) == 2
    out = export_run(run, tmp_path / "exported", iw_samples=5)
    again, again_cfg, _ = ckpt.load_model(out)
    assert isinstance(again, ConvHierarchy) and again_cfg.model == "testconv"
    assert json.loads((out / ckpt.EVAL).read_text())["iw_samples"] == 5


def _select(at, key: str, name: str):
    box = at.selectbox(key=key)  # options are the shown labels: "name · ..."
    box.select_index(next(i for i, o in enumerate(box.options) if o.split(" · ")[0] == name)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _problems(at) -> list[str]:
    return [str(e.value) for e in at.exception] + [str(e.value) for e in at.error]


def test_every_page_opens_on_a_family_of_the_tests(conv_runs, runs_dir, monkeypatch, tmp_path):
    """No page knows a family: each opens on the conv family's run (beside an MLP LVAE where a page shows
    two), shows both of its layers, and the Train form offers the family and its options."""
    import os

    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("LVAE_RUNS_DIR", os.pathsep.join([str(conv_runs), str(runs_dir)]))
    monkeypatch.setenv("LVAE_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    _select(at, "compare_run_a", "tiny-conv")
    _select(at, "compare_run_b", "tiny-lvae")
    assert not _problems(at)
    for name, key in (("layers", "layers_run"), ("traverse", "traverse_run"), ("paths", "paths_run"),
                      ("samples", "samples_run"), ("depth", "depth_run"), ("curves", None)):
        at.switch_page(f"app_pages/{name}.py").run()
        if key is not None:
            _select(at, key, "tiny-conv")
            assert at.selectbox(key=key).value.endswith("tiny-conv")
        assert not _problems(at), (name, _problems(at))
        if name == "layers":  # one subplot per layer: z1 and z2
            fig = json.loads(at.get("plotly_chart")[0].proto.spec)
            assert {t["text"].split(" ")[0] for t in fig["layout"]["annotations"] if t["text"].startswith("z")} >= {"z1", "z2"}
        if name in ("traverse", "samples"):  # beside the MLP LVAE: two families, two image sizes
            at.toggle(key=f"{name}_beside").set_value(True).run()
            assert not _problems(at), (name, _problems(at))
    at.switch_page("app_pages/train.py").run()
    at.selectbox(key="train_model").set_value("testconv").run()  # its own options, from its Arch dataclass
    assert not _problems(at)
    assert at.number_input(key="train_channels").value == 8
    assert at.number_input(key="train_latent_channels").value == 2


def test_a_large_spatial_layer_is_summarised_by_pooling_and_spread_back():
    """Summary codes stay within SUMMARY_UNITS: a 4 x 16 x 16 map (1,024 units) is pooled 2 x 2; from_summary
    spreads each pooled value over its cells, and the pooled variance is that of the cells' mean."""
    from training.models.interface import SUMMARY_UNITS, LatentHierarchy, LayerSpec

    class Spatial(LatentHierarchy):
        def layer_specs(self):
            return [LayerSpec("z1", (4, 16, 16), "gaussian", 16), LayerSpec("z2", (8,), "gaussian")]

    model = Spatial(cfg=None)
    spec = model.layer_specs()[0]
    assert spec.pool == 2 and spec.summary_units == 256 <= SUMMARY_UNITS
    z = torch.randn(3, 4, 16, 16)
    codes = model.summary_codes(0, z)
    assert codes.shape == (3, 256)
    assert torch.allclose(codes.reshape(3, 4, 8, 8)[:, :, 0, 0], z[:, :, :2, :2].mean((2, 3)))
    back = model.from_summary(0, codes)
    assert back.shape == z.shape and torch.allclose(model.summary_codes(0, back), codes)
    var = torch.rand(3, 4, 16, 16)
    assert torch.allclose(model.summary_variances(0, var).reshape(3, 4, 8, 8)[:, :, 0, 0],
                          var[:, :, :2, :2].sum((2, 3)) / 16)
    assert model.summary_codes(1, torch.ones(2, 8)).shape == (2, 8)


def test_decoding_from_a_layer_keeps_the_codes_above_where_the_image_depends_on_them(conv_runs):
    """In the conv family the image depends on z2 as well as z1 (as in NVAE and VDVAE): a traversal's start
    (offset 0) reproduces the image's reconstruction only with the start's z2 kept, which the pages pass."""
    from explorer.encode import test_points
    from explorer.traverse import decode_layer, encode_full, encode_one, reconstruct
    model, cfg, _ = ckpt.load_model(conv_runs / "tiny-conv")
    image = test_points(cfg, conv_runs / "tiny-conv", n=20).images[3]
    codes = encode_one(model, image)
    again = decode_layer(model, 0, codes[0][None], whole=encode_full(model, image))
    np.testing.assert_allclose(again, reconstruct(model, image[None]), atol=1e-5)
    assert np.abs(decode_layer(model, 0, codes[0][None]) - again).max() > 1e-3  # z2 at p's mean instead


def test_an_eval_json_written_before_the_one_key_set_reads_under_todays_keys(tmp_path):
    """The shipped runs' eval.json say elbo and kl_per_layer (unchanged on disk); every reader sees the
    history's names, so Compare never mixes training and test numbers."""
    from explorer.runs import read_evaluation
    (tmp_path / ckpt.EVAL).write_text(json.dumps({"elbo": -84.0, "kl_per_layer": [1.0, 2.0], "iw_ll": -82.0,
                                                  "active_units": [3, 1]}))
    ev = read_evaluation(tmp_path)
    assert ev == {"test_elbo": -84.0, "test_kl_per_layer": [1.0, 2.0], "iw_ll": -82.0, "active_units": [3, 1]}


@pytest.fixture(scope="module")
def deep_runs(tmp_path_factory) -> Path:
    """A 10-layer LVAE (2 units a layer), one epoch: what a deep hierarchy asks of the pages."""
    from training.train import train
    root = tmp_path_factory.mktemp("deep-runs")
    cfg = RunConfig.make(model="lvae", layers=10, hidden_sizes=[16] * 10, latent_sizes=[2] * 10, dataset="digits",
                         epochs=1, batch_size=64, warmup_epochs=1, seed=0, device="cpu")
    train(cfg, root / "deep-lvae", progress=False)
    return root


def test_a_deep_hierarchy_shows_its_layers_in_groups_and_samples_per_layer_in_rows(deep_runs, monkeypatch, tmp_path):
    """Issue 28: 20-40 layers must stay usable: the Layers grid shows 8 at a time (a picker for the group),
    and the per-layer temperature sliders come in rows of 8."""
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("LVAE_RUNS_DIR", str(deep_runs))
    monkeypatch.setenv("LVAE_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page("app_pages/layers.py").run()
    assert not _problems(at), _problems(at)

    def subplot_layers() -> list[str]:
        fig = json.loads(at.get("plotly_chart")[0].proto.spec)
        return [t["text"].split(" ")[0] for t in fig["layout"]["annotations"] if t["text"].startswith("z")]
    assert subplot_layers() == [f"z{i}" for i in range(1, 9)]
    group = at.get("button_group")[0]
    assert group.options and len(group.options) == 2
    at.session_state["layers_group"] = 8
    at.run()
    assert not _problems(at) and subplot_layers() == ["z9", "z10"]
    at.switch_page("app_pages/samples.py").run()
    at.toggle(key="samples_per_layer").set_value(True).run()
    assert not _problems(at)
    assert len([s for s in at.slider if s.key and s.key.startswith("samples_temperature_z")]) == 10
