"""`python -m training reproduce`: a tiny grid on digits, resumed, tabulated."""
import json
import os

import pytest

from training import checkpoint as ckpt
from training.errors import UserError
from training.paper import PAPER_MNIST, paper_iw_ll
from training.reproduce import grid, markdown_table, reproduce


def test_grid_is_the_papers_four_configurations_by_layers():
    entries = grid("mnist", "d", ["vae", "vae+bn", "vae+bn+wu", "lvae+bn+wu"], [1, 2, 3, 4, 5], 1, 2000, 200, 1,
                   0, 10, "auto", 100)
    assert len(entries) == 20
    labels = {(e.cfg.label, e.cfg.layers) for e in entries}
    assert {label for label, _ in labels} == {"VAE", "VAE+BN", "VAE+BN+WU", "LVAE+BN+WU"}
    e = next(e for e in entries if e.cfg.label == "LVAE+BN+WU" and e.cfg.layers == 5)
    assert (e.cfg.lr, e.cfg.batch_size, e.cfg.warmup_epochs, e.cfg.epochs) == (2e-3, 256, 200, 2000)
    assert e.cfg.arch.hidden_sizes == [512, 256, 128, 64, 32] and e.cfg.arch.latent_sizes == [64, 32, 16, 8, 4]
    # the authors' optimizer, clipping, initialisation and pixel scale
    assert (e.cfg.adam_eps, e.cfg.grad_clip, e.cfg.grad_clip_value, e.cfg.arch.init, e.cfg.pixel_scale) == \
        (1e-4, 4.0, 0.9, "glorot", 256)
    ft = grid("mnist", "d", ["lvae+bn+wu"], [5], 1, 2000, 200, 1, 100, 10, "auto", 100)
    assert [(x.name, x.stage, x.parent) for x in ft] == [
        ("lvae-bn-wu-L5-s0", "base", ""), ("lvae-bn-wu-L5-s0-ft", "finetune", "lvae-bn-wu-L5-s0"),
        ("lvae-bn-wu-L5-s0-ftiw", "finetune+iw", "lvae-bn-wu-L5-s0")]
    for x, samples in zip(ft[1:], [(10, 1), (1, 10)]):
        assert (x.cfg.lr_decay, x.cfg.lr_decay_every, x.cfg.warmup_epochs, x.cfg.epochs) == (0.75, 200, 0, 100)
        assert (x.cfg.mc_samples, x.cfg.iw_samples) == samples
    assert ft[1].cfg.lr_at(399) == pytest.approx(2e-3 * 0.75)


def test_the_papers_numbers_stand_only_beside_rows_trained_as_the_paper_did():
    assert paper_iw_ll("mnist", "lvae+bn+wu", 5, "base", 1, 1) == -82.12
    assert paper_iw_ll("mnist", "lvae+bn+wu", 5, "finetune", 10, 1) == -81.84
    assert paper_iw_ll("mnist", "lvae+bn+wu", 5, "finetune+iw", 1, 10) == -81.74
    assert paper_iw_ll("mnist", "lvae+bn+wu", 5, "base", 1, 10) is None        # an IW-trained base is not -82.12
    assert paper_iw_ll("mnist", "lvae+bn+wu", 5, "finetune", 1, 10) is None    # IW fine-tuning is not -81.84
    assert paper_iw_ll("mnist", "lvae+bn+wu", 5, "finetune+iw", 1, 10, base_iw_samples=10) is None
    assert paper_iw_ll("mnist", "lvae+bn+wu", 4, "base", 1, 1) is None
    assert paper_iw_ll("mnist", "vae+bn+wu", 5, "base", 1, 1) is None
    assert paper_iw_ll("digits", "lvae+bn+wu", 5, "base", 1, 1) is None
    assert set(PAPER_MNIST.values()) == {-82.12, -81.84, -81.74}


def test_tiny_grid_runs_resumes_and_tables(tmp_path):
    out = tmp_path / "results"
    kw = dict(models=["lvae+bn+wu"], layers=[1], seeds=2, epochs=2, warmup_epochs=1, finetune_epochs=1,
              eval_samples=5, eval_every=1, device="cpu", jobs=1, group=2)  # both seeds in one lockstep worker
    path, complete = reproduce("digits", "data", out, **kw)
    assert complete
    results = json.loads(path.read_text())
    assert sorted(r["name"] for r in results) == sorted(f"lvae-bn-wu-L1-s{s}{t}" for s in (0, 1)
                                                        for t in ("", "-ft", "-ftiw"))
    for r in results:
        assert {"model", "layers", "bn", "warmup", "epochs", "iw_samples", "iw_ll", "elbo", "active_units",
                "kl_per_layer", "seconds", "device", "date", "stage", "train_mc_samples", "train_iw_samples",
                "stage_epochs", "pixel_scale", "paper_iw_ll", "bn_stats"} <= set(r)
        assert r["iw_ll"] < 0 and len(r["active_units"]) == 1 and r["bn_stats"] == "recomputed"
        assert r["paper_iw_ll"] is None and r["pixel_scale"] is None  # digits: no paper number, no byte scale
    by = {r["name"]: r for r in results}
    assert (by["lvae-bn-wu-L1-s0-ft"]["stage"], by["lvae-bn-wu-L1-s0-ft"]["train_mc_samples"],
            by["lvae-bn-wu-L1-s0-ft"]["train_iw_samples"]) == ("finetune", 10, 1)
    assert (by["lvae-bn-wu-L1-s0-ftiw"]["stage"], by["lvae-bn-wu-L1-s0-ftiw"]["train_iw_samples"]) == ("finetune+iw", 10)
    assert by["lvae-bn-wu-L1-s0-ft"]["stage_epochs"] == {"base": 2, "finetune": 1}
    cfg = ckpt.load_config(out / "runs" / "lvae-bn-wu-L1-s0")
    assert (cfg.grad_clip, cfg.grad_clip_value, cfg.adam_eps) == (4.0, 0.9, 1e-4)
    md = (out / "paper-digits.md").read_text()
    assert "± " in md and "LVAE+BN+WU" in md
    # a second call finds everything done and changes nothing
    before = path.read_text()
    _, complete = reproduce("digits", "data", out, **kw)
    assert complete and path.read_text() == before


def test_markdown_quotes_the_paper_only_for_mnist():
    r = {"model": "lvae+bn+wu", "stage": "base", "layers": 5, "train_mc_samples": 1, "train_iw_samples": 1,
         "iw_ll": -83.0, "iw_samples": 5000, "elbo": -85.0, "active_units": [64, 32, 16, 8, 4], "pixel_scale": 256}
    assert f"{PAPER_MNIST[('lvae+bn+wu', 5, 'base')]:.2f}" in markdown_table([r], "mnist")
    assert "1/256" in markdown_table([r], "mnist")
    assert "-82.12" not in markdown_table([r], "digits")
    assert "-82.12" not in markdown_table([{**r, "train_iw_samples": 10}], "mnist")
    # a row written before stages existed: its legacy "finetuned" (an IW-10 fine-tune) gets no paper number
    legacy = {k: v for k, v in r.items() if k not in ("stage", "train_mc_samples", "pixel_scale")}
    assert "-81.84" not in markdown_table([{**legacy, "variant": "finetuned", "train_iw_samples": 10}], "mnist")


def test_a_killed_worker_stops_the_grid_cleanly_and_the_next_call_completes_it(tmp_path, monkeypatch):
    """A worker that dies (here: the second spawned worker SIGKILLs itself as it starts) makes reproduce stop the
    others, name the entry and keep the finished results; the same command then resumes and completes the grid."""
    hook = tmp_path / "hook"
    hook.mkdir()
    # Every spawned worker is a fresh interpreter that imports sitecustomize from PYTHONPATH first.
    (hook / "sitecustomize.py").write_text(
        "import os, signal, sys\n"
        f"count = {str(hook / 'count')!r}\n"
        "if any('multiprocessing' in a for a in sys.argv) and os.environ.get('KILL_SECOND_WORKER'):\n"
        "    n = len(open(count).read()) if os.path.exists(count) else 0\n"
        "    open(count, 'a').write('x')\n"
        "    if n == 1:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("KILL_SECOND_WORKER", "1")
    out = tmp_path / "results"
    kw = dict(models=["vae+bn+wu", "lvae+bn+wu"], layers=[1], seeds=1, epochs=2, warmup_epochs=1,
              eval_samples=5, eval_every=1, device="cpu", jobs=1, group=1)
    with pytest.raises(UserError, match=r"lvae-bn-wu-L1-s0: worker exited.*run the same command again"):
        reproduce("digits", "data", out, **kw)
    assert [r["name"] for r in json.loads((out / "paper-digits.json").read_text())] == ["vae-bn-wu-L1-s0"]
    monkeypatch.delenv("KILL_SECOND_WORKER")
    path, complete = reproduce("digits", "data", out, **kw)
    assert complete
    assert sorted(r["name"] for r in json.loads(path.read_text())) == ["lvae-bn-wu-L1-s0", "vae-bn-wu-L1-s0"]
    assert (out / "runs" / "lvae-bn-wu-L1-s0" / "result.json").is_file()  # each entry's row beside its run


def test_a_failing_entry_is_named_and_the_others_finish(tmp_path):
    out = tmp_path / "results"
    broken = out / "runs" / "lvae-bn-wu-L1-s0"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{not json")  # resuming it fails with a user error
    kw = dict(models=["vae+bn+wu", "lvae+bn+wu"], layers=[1], seeds=1, epochs=1, warmup_epochs=1,
              eval_samples=5, eval_every=1, device="cpu", jobs=1, group=1)
    with pytest.raises(UserError, match=r"lvae-bn-wu-L1-s0: .*config"):
        reproduce("digits", "data", out, **kw)
    assert [r["name"] for r in json.loads((out / "paper-digits.json").read_text())] == ["vae-bn-wu-L1-s0"]


def test_bad_grid_arguments():
    with pytest.raises(UserError, match="unknown model"):
        reproduce("digits", "data", "/tmp/x", ["gan"], [1])
    with pytest.raises(UserError, match="1 to 5"):
        reproduce("digits", "data", "/tmp/x", ["vae"], [6])


def test_add_puts_exported_runs_in_the_tables_with_the_epochs_they_had(digits_runs, tmp_path, capsys):
    from training.cli import main
    shipped = tmp_path / "shipped"
    for model in ("vae", "lvae"):
        assert main(["export", str(digits_runs[model]), str(shipped / f"digits-{model}"), "--iw-samples", "5"]) == 0
    out = tmp_path / "results"
    (out).mkdir()
    (out / "paper-digits.json").write_text(json.dumps([{"name": "digits-vae", "model": "vae", "old": True}]))
    assert main(["reproduce", "--out", str(out), "--add", str(shipped / "digits-vae"), str(shipped / "digits-lvae")]) == 0
    rows = {r["name"]: r for r in json.loads((out / "paper-digits.json").read_text())}
    assert set(rows) == {"digits-vae", "digits-lvae"} and "old" not in rows["digits-vae"]  # replaced by name
    ev = json.loads((shipped / "digits-lvae" / ckpt.EVAL).read_text())
    row = rows["digits-lvae"]
    assert (row["model"], row["stage"], row["epochs"], row["stage_epochs"]) == ("lvae+bn+wu", "base", 15, {"base": 15})
    assert row["iw_ll"] == ev["iw_ll"] and row["iw_samples"] == 5 and row["active_units"] == ev["active_units"]
    assert "LVAE+BN+WU" in (out / "paper-digits.md").read_text()
    capsys.readouterr()
    assert main(["reproduce", "--out", str(out), "--add", str(digits_runs["vae"])]) == 2  # no eval.json
    assert "eval.json" in capsys.readouterr().err
