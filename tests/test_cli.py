"""The command line: exit codes, one-line errors, eval --json."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "LVAE_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "training", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


TRAIN = ["train", "--model", "lvae", "--layers", "2", "--dataset", "digits", "--epochs", "1", "--batch-size", "64",
         "--device", "cpu"]


@pytest.mark.parametrize("args,match", [
    ([], "required"),
    (["train", "--model", "gan", "--layers", "2", "--dataset", "digits", "--epochs", "1", "--out", "x"], "invalid choice"),
    (["train", "--model", "vae", "--layers", "two", "--dataset", "digits", "--epochs", "1", "--out", "x"], "invalid int"),
    (["train", "--model", "vae", "--layers", "0", "--dataset", "digits", "--epochs", "1", "--out", "x"], "layers"),
    (["train", "--model", "vae", "--layers", "6", "--dataset", "digits", "--epochs", "1", "--out", "x"], "sizes"),
    (["train", "--model", "vae", "--layers", "2", "--dataset", "digits", "--epochs", "0", "--out", "x"], "epochs"),
    (["train", "--model", "vae", "--layers", "2", "--dataset", "digits", "--epochs", "1", "--lr", "-1", "--out", "x"], "learning rate"),
    (["train", "--model", "vae", "--layers", "2", "--dataset", "digits", "--epochs", "1", "--hidden-sizes", "a,b", "--out", "x"], "comma"),
    (["train", "--model", "vae", "--layers", "2", "--dataset", "digits", "--epochs", "1", "--batch-size", "5000", "--out", "x"], "batch size"),
    (["eval", "does/not/exist"], "no such run folder"),
    (["eval", "."], "not a run folder"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_exit_2_with_one_line(args, match, tmp_path, capsys):
    args = [str(tmp_path / a) if a == "x" else a for a in args]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert match in err


def test_help_exits_0(capsys):
    assert main(["train", "--help"]) == 0
    assert "--warmup-epochs" in capsys.readouterr().out


def test_missing_mnist_files_exit_2_naming_the_files(tmp_path):
    r = run_cli("train", "--model", "vae", "--layers", "1", "--dataset", "mnist", "--data-dir", str(tmp_path),
                "--epochs", "1", "--out", str(tmp_path / "run"))
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "train-images-idx3-ubyte" in r.stderr and "t10k-labels-idx1-ubyte" in r.stderr
    assert not (tmp_path / "run").exists()


def test_train_then_eval_json_and_resume(tmp_path):
    out = tmp_path / "run"
    r = run_cli(*TRAIN, "--out", str(out))
    assert r.returncode == 0, r.stderr
    again = run_cli(*TRAIN, "--out", str(out))
    assert again.returncode == 2 and "--resume" in again.stderr
    more = run_cli(*[a if a != "1" or i != TRAIN.index("--epochs") + 1 else "2" for i, a in enumerate(TRAIN)],
                   "--out", str(out), "--resume")
    assert more.returncode == 0, more.stderr
    r = run_cli("eval", str(out), "--iw-samples", "10", "--json", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    from training.evaluate import TEST_MEASURES
    # the same keys as the training history's test measures (one set everywhere)
    assert {*TEST_MEASURES, "iw_ll", "iw_samples"} <= set(result)
    from training.checkpoint import read_history
    assert set(TEST_MEASURES) <= set(read_history(out)[-1])
    assert result["iw_samples"] == 10 and result["epochs"] == 2
    assert len(result["active_units"]) == len(result["test_kl_per_layer"]) == 2
    assert result["iw_ll"] > result["test_elbo"] - 1.0
    assert result["command"] == f"python -m training eval {out} --iw-samples 10 --json --device cpu"
    assert result["date"] and result["test_images"] == 360 and result["bn_stats"] == "recomputed"


def test_eval_of_a_broken_run_exits_2(digits_runs, tmp_path):
    import shutil
    run = tmp_path / "b"
    shutil.copytree(digits_runs["vae"], run)
    (run / "checkpoint.safetensors").write_bytes(b"\x00\x01garbage")
    r = run_cli("eval", str(run), "--iw-samples", "2")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "safetensors" in r.stderr


def test_training_package_imports_no_app_packages():
    code = ("import sys, training.cli, training.train, training.evaluate, training.demo; "
            "bad = [m for m in ('streamlit', 'plotly', 'pandas') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_train_command_round_trips_every_config_field():
    import dataclasses

    from training.cli import build_parser, config_from_args
    from training.config import RunConfig, train_command
    cfg = RunConfig.make(model="vae", layers=2, dataset="mnist", data_dir="d", hidden_sizes=[7, 5], latent_sizes=[3, 2],
                         batch_norm=False, warmup_epochs=0, likelihood="gaussian", epochs=9, batch_size=17, lr=0.01,
                         lr_decay=0.75, lr_decay_every=200, init_from="runs/a", iw_samples=4, grad_clip=3.5,
                         eval_every=3, snapshot_every=2, checkpoint_every=5, seed=7, device="cpu", step_mode="eager",
                         pixel_scale=255, mc_samples=3, adam_eps=1e-8, grad_clip_value=0.0, skip_limit=4, init="torch",
                         bn_heads=True, mirror_generative_widths=True, skip_threshold=50.0, ema_rate=0.5,
                         warmup_per_step=True)
    argv = train_command(cfg, Path("out"))[3:]  # drop "python -m training"
    assert config_from_args(build_parser("vae").parse_args(argv)) == cfg
    # and every field of both parts differs from its default here, so a field the CLI forgot would show
    defaults = RunConfig.make(model="vae", layers=2, dataset="mnist", hidden_sizes=[7, 5], latent_sizes=[3, 2])
    same = [f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) == getattr(defaults, f.name)]
    same += [f.name for f in dataclasses.fields(cfg.arch) if getattr(cfg.arch, f.name) == getattr(defaults.arch, f.name)]
    assert set(same) <= {"model", "layers", "dataset", "hidden_sizes", "latent_sizes", "input_dim", "image_shape",
                         "format_version"}, same
    # the LVAE's own options too, through the family the command line names
    lvae = RunConfig.make(model="lvae", layers=2, dataset="digits", epochs=3, up_from_mean=True, separate_top_down=True)
    argv = train_command(lvae, Path("o"))[3:]
    from training.cli import family_in
    assert family_in(argv) == "lvae" and config_from_args(build_parser(family_in(argv)).parse_args(argv)) == lvae
    # a family's own defaults for common settings (VDVAE's EMA) give way to the values a command line states
    vdvae = RunConfig.make(model="vdvae", dataset="digits", epochs=3, ema_rate=0.0, width=8)
    argv = train_command(vdvae, Path("o"))[3:]
    assert config_from_args(build_parser(family_in(argv)).parse_args(argv)) == vdvae and vdvae.ema_rate == 0.0
    assert RunConfig.make(model="vdvae", dataset="digits", epochs=3).ema_rate > 0
    # the defaults round-trip too (an empty --init-from, default sizes), and --no-warmup is warm-up 0
    plain = RunConfig.make(model="lvae", layers=3, dataset="digits", epochs=5)
    assert config_from_args(build_parser().parse_args(train_command(plain, Path("o"))[3:])) == plain
    legacy = build_parser("vae").parse_args(["train", "--model", "vae", "--layers", "2", "--dataset", "digits",
                                             "--epochs", "3", "--no-bn", "--no-warmup", "--out", "o"])
    assert (config_from_args(legacy).arch.batch_norm, config_from_args(legacy).warmup_epochs) == (False, 0)


def test_family_option_names_the_family_and_another_familys_options_are_refused(tmp_path, capsys):
    """--family is --model's other name; an option of the LVAE's architecture on a VAE is an error in one line."""
    from training.cli import build_parser, config_from_args, family_in
    argv = ["train", "--family", "vae", "--layers", "2", "--dataset", "digits", "--epochs", "1", "--out", "o"]
    assert config_from_args(build_parser(family_in(argv)).parse_args(argv)).model == "vae"
    code = main(["train", "--family", "vae", "--layers", "2", "--dataset", "digits", "--epochs", "1",
                 "--up-from-mean", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "--up-from-mean" in err and len(err.strip().splitlines()) == 1


def test_train_help_lists_every_config_field(capsys):
    import dataclasses

    from training.config import RunConfig
    from training.models import arch_class
    from training.options import option_flag
    for family in ("vae", "lvae", "nvae"):
        assert main(["train", "--family", family, "--help"]) == 0
        text = capsys.readouterr().out
        internal = {"input_dim", "image_shape", "format_version", "arch"}  # filled in by the code, not options
        for f in dataclasses.fields(RunConfig) + dataclasses.fields(arch_class(family)):
            assert (option_flag(f.name) in text) != (f.name in internal), (family, f.name)
        assert ("--up-from-mean" in text) == (family == "lvae")


def test_export_writes_a_weights_only_run_that_loads_and_refuses_resume(digits_runs, tmp_path):
    import json as _json

    import torch

    from training import checkpoint as ckpt
    from training.errors import CheckpointError
    src = digits_runs["lvae"]
    out = tmp_path / "shipped"
    assert main(["export", str(src), str(out), "--dtype", "float16", "--iw-samples", "5"]) == 0
    tensors, meta = ckpt.read_tensors(out / ckpt.CHECKPOINT)
    assert not any(k.startswith(("optim.", "rng.")) for k in tensors) and meta[ckpt.WEIGHTS_ONLY] == "true"
    assert all(t.dtype == torch.float16 for k, t in tensors.items() if t.is_floating_point())
    assert (out / ckpt.CHECKPOINT).stat().st_size < 0.6 * (src / ckpt.CHECKPOINT).stat().st_size
    model, cfg, epoch = ckpt.load_model(out)
    original, _, epoch0 = ckpt.load_model(src)
    assert epoch == epoch0 and next(model.parameters()).dtype == torch.float32
    assert cfg.data_dir == "data"  # not the training machine's folder
    for (name, a), b in zip(original.state_dict().items(), model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-2, rtol=1e-2), name
    assert ckpt.read_history(out) == ckpt.read_history(src)
    assert ckpt.snapshot_epochs(out) == ckpt.snapshot_epochs(src)
    ev = _json.loads((out / "eval.json").read_text())
    assert ev["iw_samples"] == 5 and ev["bn_stats"] == "recomputed" and ev["weights_dtype"] == "float16"
    assert ev["test_images"] == 360 and ev["seconds"] > 0 and ev["export_date"] and "export" in ev["export_command"]
    with pytest.raises(CheckpointError, match="weights only"):
        ckpt.load_training_state(out)


def test_export_of_a_run_still_training_stops_at_its_checkpoint(digits_runs, tmp_path):
    import shutil

    from training import checkpoint as ckpt
    src = tmp_path / "training"
    shutil.copytree(digits_runs["vae"], src)
    last = ckpt.read_history(src)[-1]
    ckpt.append_history(src, {**last, "epoch": last["epoch"] + 1})  # written after the last checkpoint
    later = src / ckpt.SNAPSHOTS / f"epoch_{last['epoch'] + 1:05d}.safetensors"
    shutil.copyfile(src / ckpt.SNAPSHOTS / f"epoch_{ckpt.snapshot_epochs(src)[-1]:05d}.safetensors", later)
    out = tmp_path / "shipped"
    assert main(["export", str(src), str(out)]) == 0
    assert [r["epoch"] for r in ckpt.read_history(out)] == [r["epoch"] for r in ckpt.read_history(digits_runs["vae"])]
    assert ckpt.snapshot_epochs(out) == ckpt.snapshot_epochs(digits_runs["vae"])


def test_export_and_resume_errors_are_one_line_exit_2(digits_runs, tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["export", str(digits_runs["vae"]), str(out)]) == 0
    assert main(["export", str(digits_runs["vae"]), str(out)]) == 2  # refuses a folder that holds files
    assert main(["train", "--model", "vae", "--layers", "3", "--dataset", "digits", "--epochs", "30",
                 "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("error: ") for line in err) and "weights only" in err[-1]
    assert main(["export", str(tmp_path / "missing"), str(tmp_path / "y")]) == 2


def test_export_keeps_evenly_spaced_snapshots_with_the_first_and_last(digits_runs, tmp_path):
    from training import checkpoint as ckpt
    from training.export import evenly_spaced
    assert evenly_spaced([0, 5, 10, 15, 20, 25, 30, 35, 40], 4) == [0, 15, 25, 40]
    assert evenly_spaced([0, 5, 10], 5) == [0, 5, 10] and evenly_spaced([0, 5, 10], 1) == [10]
    src = digits_runs["vae"]
    every = ckpt.snapshot_epochs(src)
    assert len(every) >= 3
    out = tmp_path / "thin"
    assert main(["export", str(src), str(out), "--snapshots", "2"]) == 0
    assert ckpt.snapshot_epochs(out) == [every[0], every[-1]]
    assert (out / ckpt.SNAPSHOTS / "points.safetensors").is_file()  # the test images always travel
    assert main(["export", str(src), str(tmp_path / "none"), "--snapshots", "0"]) == 2
