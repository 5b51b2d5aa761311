"""Trying to break it: SIGKILLed training, fuzzed .mat files (IDX fuzzing lives in test_data.py)."""
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training import checkpoint as ckpt
from training.data import load_dataset
from training.errors import DataError

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = 12


def _history_lines(run: Path) -> list[dict]:
    """Every line of history.jsonl must parse: a torn line is a failure here, not skipped."""
    text = (run / ckpt.HISTORY).read_text() if (run / ckpt.HISTORY).exists() else ""
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "training", "train", "--model", "lvae", "--layers", "3", "--dataset", "digits",
           "--epochs", str(EPOCHS), "--batch-size", "64", "--eval-every", "2", "--snapshot-every", "1",
           "--checkpoint-every", "1", "--device", "cpu", "--no-progress", "--out", str(run)]
    env = {**os.environ, "LVAE_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    rng = random.Random(0)
    kills = 0
    for _ in range(40):
        resume = ["--resume"] if (run / ckpt.CONFIG).exists() else []
        proc = subprocess.Popen(cmd + resume, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            proc.wait(timeout=rng.uniform(2.0, 5.0))  # start-up takes ~2 s: kills land in training and in writes
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            assert proc.returncode == 0, proc.stderr.read().decode()
        lines = _history_lines(run)
        epochs = [h["epoch"] for h in lines]
        assert epochs == list(range(1, len(epochs) + 1)), epochs  # no torn, duplicated or missing line
        if (run / ckpt.CHECKPOINT).exists():
            _, _, saved = ckpt.load_model(run)  # always loads
            assert saved <= len(epochs)  # the history is at most ahead of the checkpoint, never behind
        if kills >= 10:  # enough: the last attempt below finishes the run (looping on for a clean exit cost
            break        # minutes on a slow machine, where no 2-5 s attempt finishes twelve epochs)
        if proc.returncode == 0:  # finished before ten kills (a fast, idle machine): train it again afresh
            shutil.rmtree(run)
    assert kills >= 10
    # finish the run if the last attempt was a kill
    if not (run / ckpt.CHECKPOINT).exists() or ckpt.load_model(run)[2] < EPOCHS:
        # (on a loaded machine every kill may have landed before the run folder existed: then a fresh start)
        resume = ["--resume"] if (run / ckpt.CONFIG).exists() else []
        subprocess.run(cmd + resume, cwd=ROOT, env=env, check=True, capture_output=True)
    assert [h["epoch"] for h in _history_lines(run)] == list(range(1, EPOCHS + 1))
    assert ckpt.load_model(run)[2] == EPOCHS
    assert ckpt.snapshot_epochs(run)[-1] == EPOCHS
    assert not [p for p in run.rglob("*.tmp")], "temporary files left behind"


def _mat_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    scipy.io.savemat(buf, arrays)
    return buf.getvalue()


VALID_MAT = _mat_bytes(data=np.random.default_rng(0).random((784, 6)), testdata=np.random.default_rng(1).random((784, 4)),
                       target=np.eye(50)[:, :6], testtarget=np.eye(50)[:, :4])


# derandomize: fixed examples keep CI deterministic. scipy's loadmat can crash on some corrupt files (a
# segfault once in CI); the read runs in a forked child, so that is a DataError too (test below).
@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(
    st.binary(max_size=3000),
    st.tuples(st.integers(0, len(VALID_MAT)), st.binary(max_size=64)).map(lambda t: VALID_MAT[:t[0]] + t[1]),
    st.tuples(st.integers(0, len(VALID_MAT) - 1), st.integers(0, 255)).map(
        lambda t: VALID_MAT[:t[0]] + bytes([t[1]]) + VALID_MAT[t[0] + 1:]),
))
def test_omniglot_reader_fuzz(tmp_path, payload):
    path = tmp_path / "chardata.mat"
    path.write_bytes(payload)
    try:
        data = load_dataset("omniglot", tmp_path)
    except DataError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert data.train_x.shape[1] == 784 and np.all((data.train_x >= 0) & (data.train_x <= 1))


def _crash(path: str) -> dict:
    import faulthandler
    faulthandler.disable()  # pytest's fault handler would print every loaded module of the dying child
    os.abort()


def test_a_crash_inside_the_mat_reader_is_a_one_line_data_error(tmp_path, monkeypatch):
    """What scipy's C reader did once on a corrupt file: the process dies. The read runs in a forked child
    (inheriting this patch), so the caller gets a DataError and lives on."""
    import training.data as data_mod
    (tmp_path / "chardata.mat").write_bytes(VALID_MAT)
    monkeypatch.setattr(data_mod, "_loadmat", _crash)
    with pytest.raises(DataError, match="crashed") as err:
        load_dataset("omniglot", tmp_path)
    assert "\n" not in str(err.value)
    monkeypatch.undo()
    assert load_dataset("omniglot", tmp_path).train_x.shape == (6, 784)  # a good file reads as before
