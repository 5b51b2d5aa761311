"""`python -m training reproduce`: a tiny grid on digits, resumed, tabulated."""
import json

import pytest

from training.errors import UserError
from training.reproduce import PAPER_MNIST, grid, markdown_table, reproduce


def test_grid_is_the_papers_four_configurations_by_layers():
    entries = grid("mnist", "d", ["vae", "vae+bn", "vae+bn+wu", "lvae+bn+wu"], [1, 2, 3, 4, 5], 1, 2000, 200, 1,
                   0, 10, "auto", 100)
    assert len(entries) == 20
    labels = {(e.cfg.label, e.cfg.layers) for e in entries}
    assert {l for l, _ in labels} == {"VAE", "VAE+BN", "VAE+BN+WU", "LVAE+BN+WU"}
    e = next(e for e in entries if e.cfg.label == "LVAE+BN+WU" and e.cfg.layers == 5)
    assert (e.cfg.lr, e.cfg.batch_size, e.cfg.warmup_epochs, e.cfg.epochs) == (2e-3, 256, 200, 2000)
    assert e.cfg.hidden_sizes == [512, 256, 128, 64, 32] and e.cfg.latent_sizes == [64, 32, 16, 8, 4]
    ft = grid("mnist", "d", ["lvae+bn+wu"], [5], 1, 2000, 200, 10, 100, 10, "auto", 100)
    assert [x.name for x in ft] == ["lvae-bn-wu-L5-iw10-s0", "lvae-bn-wu-L5-iw10-s0-ft"]
    assert (ft[1].cfg.lr_decay, ft[1].cfg.lr_decay_every, ft[1].cfg.iw_samples, ft[1].variant) == \
        (0.75, 200, 10, "finetuned+iw")
    assert ft[1].cfg.lr_at(399) == pytest.approx(2e-3 * 0.75)


def test_tiny_grid_runs_resumes_and_tables(tmp_path):
    out = tmp_path / "results"
    kw = dict(models=["lvae+bn+wu"], layers=[1], seeds=2, epochs=2, warmup_epochs=1, finetune_epochs=1,
              eval_samples=5, eval_every=1, device="cpu", jobs=1, group=2)  # both seeds in one lockstep worker
    path, complete = reproduce("digits", "data", out, **kw)
    assert complete
    results = json.loads(path.read_text())
    assert sorted(r["name"] for r in results) == ["lvae-bn-wu-L1-s0", "lvae-bn-wu-L1-s0-ft",
                                                  "lvae-bn-wu-L1-s1", "lvae-bn-wu-L1-s1-ft"]
    for r in results:
        assert {"model", "layers", "bn", "warmup", "epochs", "iw_samples", "iw_ll", "elbo", "active_units",
                "kl_per_layer", "seconds", "device", "date"} <= set(r)
        assert r["iw_ll"] < 0 and len(r["active_units"]) == 1
    ft = next(r for r in results if r["name"] == "lvae-bn-wu-L1-s0-ft")
    assert ft["variant"] == "finetuned" and ft["train_iw_samples"] == 10
    md = (out / "paper-digits.md").read_text()
    assert "± " in md and "LVAE+BN+WU" in md
    # a second call finds everything done and changes nothing
    before = path.read_text()
    _, complete = reproduce("digits", "data", out, **kw)
    assert complete and path.read_text() == before


def test_markdown_quotes_the_paper_only_for_mnist():
    r = {"model": "lvae+bn+wu", "variant": "plain", "layers": 5, "train_iw_samples": 1, "iw_ll": -83.0,
         "iw_samples": 5000, "elbo": -85.0, "active_units": [64, 32, 16, 8, 4]}
    assert f"{PAPER_MNIST[('lvae+bn+wu', 5, 'plain')]:.2f}" in markdown_table([r], "mnist")
    assert "-82.12" not in markdown_table([r], "digits")


def test_bad_grid_arguments():
    with pytest.raises(UserError, match="unknown model"):
        reproduce("digits", "data", "/tmp/x", ["gan"], [1])
    with pytest.raises(UserError, match="1 to 5"):
        reproduce("digits", "data", "/tmp/x", ["vae"], [6])
