"""Shared fixtures: tiny real runs (trained in-process, a few seconds) in a temporary runs folder."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from training.config import RunConfig

os.environ.setdefault("LVAE_OFFLINE", "1")  # no test may touch the network
# The shipped pretrained/ pair would join every run list; tests see only their own runs unless they
# ask for it (tests/test_pretrained.py clears this).
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "pretrained"
os.environ["LVAE_PRETRAINED_DIR"] = os.path.join(os.path.dirname(__file__), "no-pretrained-runs-here")

# ---- training tests: two small runs really trained on digits (15 epochs, 3 layers) ----

EPOCHS = 15


def digits_cfg(model: str, **kw) -> RunConfig:
    base = dict(model=model, layers=3, dataset="digits", epochs=EPOCHS, warmup_epochs=5, batch_size=64,
                eval_every=5, snapshot_every=5, device="cpu", seed=0)
    return RunConfig.make(**{**base, **kw})


@pytest.fixture(scope="session")
def digits_runs(tmp_path_factory):
    from training.train import train
    root = tmp_path_factory.mktemp("digits_runs")
    return {m: train(digits_cfg(m), root / m, progress=False) for m in ("vae", "lvae")}


@pytest.fixture(scope="session")
def digits_test():
    from training.data import binarize, load_dataset
    from training.evaluate import TEST_BINARIZATION_SEED
    return torch.as_tensor(binarize(load_dataset("digits").test_x, TEST_BINARIZATION_SEED))


# ---- app tests ----


def tiny_config(model: str, epochs: int = 2) -> RunConfig:
    """3 layers on digits, evaluated and snapshotted every epoch, so every chart has data."""
    return RunConfig.make(model=model, layers=3, dataset="digits", epochs=epochs, batch_size=64, warmup_epochs=2,
                     eval_every=1, snapshot_every=1, checkpoint_every=1, seed=0, device="cpu")


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    """A runs folder with a 3-layer VAE+BN+WU and LVAE+BN+WU (2 epochs each) and one broken run."""
    from training.train import train

    root = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster and leaves the other core to the app
    try:
        for model in ("vae", "lvae"):
            train(tiny_config(model), root / f"tiny-{model}", progress=False)
    finally:
        torch.set_num_threads(threads)
    broken = root / "broken-run"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model": "lvae", "layers": 3}))
    return root


@pytest.fixture
def app_env(runs_dir, monkeypatch) -> Path:
    """The app pointed at the fixture runs only (cwd without a runs/ folder), offline."""
    monkeypatch.setenv("LVAE_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("LVAE_OFFLINE", "1")
    return runs_dir
