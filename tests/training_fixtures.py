"""Session fixtures for the training tests: two small runs really trained on digits.

Imported by the test modules that need them (tests/conftest.py belongs to the app tests).
"""
import pytest
import torch

from training.config import RunConfig
from training.data import load_dataset
from training.train import TEST_BINARIZATION_SEED, train

EPOCHS = 15


def digits_cfg(model: str, **kw) -> RunConfig:
    base = dict(model=model, layers=3, dataset="digits", epochs=EPOCHS, warmup_epochs=5, batch_size=64,
                eval_every=5, snapshot_every=5, device="cpu", seed=0)
    return RunConfig(**{**base, **kw})


@pytest.fixture(scope="session")
def digits_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits_runs")
    return {m: train(digits_cfg(m), root / m, progress=False) for m in ("vae", "lvae")}


@pytest.fixture(scope="session")
def digits_test():
    from training.data import binarize
    return torch.as_tensor(binarize(load_dataset("digits").test_x, TEST_BINARIZATION_SEED))
