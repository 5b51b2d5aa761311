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


def train_on_one_thread(cfg: RunConfig, out: Path, resume: bool = False) -> Path:
    """Train cfg into out on one thread: a run's weights then do not depend on the machine's core count
    (another thread count sums in another order), so a resumed run can be compared bit for bit."""
    from training.train import train
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg, out, resume=resume, progress=False)
    finally:
        torch.set_num_threads(threads)
    return out


def assert_resumes_exactly(make_cfg, straight: Path, tmp_path: Path) -> dict:
    """A run of make_cfg(epochs=1) resumed to make_cfg(epochs=2) ends with exactly the checkpoint of `straight` (the
    same config trained to 2 epochs at once): every weight, buffer and optimizer moment. Returns its tensors."""
    from training import checkpoint as ckpt
    cut = tmp_path / "cut"
    train_on_one_thread(make_cfg(epochs=1), cut)
    train_on_one_thread(make_cfg(epochs=2), cut, resume=True)
    a, _ = ckpt.read_tensors(straight / ckpt.CHECKPOINT)
    b, _ = ckpt.read_tensors(cut / ckpt.CHECKPOINT)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    return a


def every_page_opens(runs: Path, monkeypatch, tmp_path) -> object:
    """Open each page of the app on the runs under `runs` (offline, from an empty working folder): no exception
    and no error box on any; returns the AppTest, left on the last page."""
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("LVAE_RUNS_DIR", str(runs))
    monkeypatch.setenv("LVAE_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=120)
    at.run()
    for name in ("compare", "layers", "traverse", "paths", "curves", "samples", "codes", "depth"):
        at.switch_page(f"app_pages/{name}.py").run()
        problems = [str(e.value) for e in at.exception] + [str(e.value) for e in at.error]
        assert not problems, (name, problems)
    return at


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
