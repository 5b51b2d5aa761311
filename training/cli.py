"""python -m training {train,eval,reproduce,export,demo}: user errors end in one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .config import DATASETS, DEVICES, INITS, LIKELIHOODS, MODELS, PIXEL_SCALES, STEP_MODES, RunConfig
from .errors import UserError


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) with exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    return sizes


def _names(text: str) -> list[str]:
    return [s.strip().lower() for s in text.split(",") if s.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m training", description="Train and evaluate VAEs and Ladder VAEs (Sønderby et al. 2016).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    t = sub.add_parser("train", help="train a VAE or LVAE into a run folder")
    t.add_argument("--model", choices=MODELS, required=True)
    t.add_argument("--layers", type=int, required=True, help="stochastic layers (1..5 with the default sizes)")
    t.add_argument("--no-bn", action="store_true", help="no batch normalization")
    t.add_argument("--no-warmup", action="store_true", help="beta = 1 from the first epoch")
    t.add_argument("--warmup-epochs", type=int, default=200, help="epochs for beta to rise from 0 to 1 (paper: 200)")
    t.add_argument("--dataset", choices=DATASETS, required=True)
    t.add_argument("--data-dir", default="data", help="folder with the dataset's files (not needed for digits)")
    t.add_argument("--likelihood", choices=LIKELIHOODS, default="bernoulli", help="p(x|z_1); bernoulli binarizes the data")
    t.add_argument("--hidden-sizes", type=_sizes, default=None, help="deterministic units per layer, e.g. 512,256,128")
    t.add_argument("--latent-sizes", type=_sizes, default=None, help="stochastic units per layer, e.g. 64,32,16")
    t.add_argument("--epochs", type=int, required=True)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--lr-decay", type=float, default=1.0, help="multiply lr by this every --lr-decay-every epochs")
    t.add_argument("--lr-decay-every", type=int, default=0)
    t.add_argument("--init-from", default="", help="start from the weights of this run folder (fine-tuning)")
    t.add_argument("--time-limit", type=float, default=None,
                   help="seconds; then checkpoint after the current epoch and stop (continue with --resume)")
    t.add_argument("--pixel-scale", type=int, choices=PIXEL_SCALES, default=256,
                   help="MNIST/Fashion-MNIST pixels are bytes/this (256: the authors' data; 255: 255 becomes 1.0)")
    t.add_argument("--iw-samples", type=int, default=1, help="importance samples inside the log of the training bound")
    t.add_argument("--mc-samples", type=int, default=1, help="Monte-Carlo samples averaged outside the log (authors' eq_samples)")
    t.add_argument("--adam-eps", type=float, default=1e-4, help="Lasagne-style Adam epsilon (authors: 1e-4)")
    t.add_argument("--grad-clip", type=float, default=4.0, help="scale the gradient's total norm to at most this (authors: 4); 0 = off")
    t.add_argument("--grad-clip-value", type=float, default=0.9, help="then clip each gradient element to +-this (authors: 0.9); 0 = off")
    t.add_argument("--skip-limit", type=int, default=10, help="stop after this many consecutive non-finite (skipped) steps")
    t.add_argument("--init", choices=INITS, default=RunConfig.init, help="weight initialisation (glorot: the authors')")
    t.add_argument("--bn-heads", action="store_true", help="BN on every latent mean and variance head (authors' code)")
    t.add_argument("--up-from-mean", action="store_true",
                   help="LVAE: each upward block reads the bottom-up mean of the layer below (authors' only_mu_up)")
    t.add_argument("--separate-top-down", action="store_true",
                   help="LVAE: q merges with a top-down network of its own, not p (authors' ladder_share_params False)")
    t.add_argument("--mirror-generative-widths", action="store_true",
                   help="p(z_i|z_i+1) as wide as layer i+1's MLP, mirroring the encoder (authors' VAE)")
    t.add_argument("--eval-every", type=int, default=10, help="epochs between test-set evaluations")
    t.add_argument("--snapshot-every", type=int, default=0, help="epochs between latent snapshots (0: ten per run)")
    t.add_argument("--checkpoint-every", type=int, default=0, help="epochs between checkpoints (0: fifty per run)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", choices=DEVICES, default="auto")
    t.add_argument("--step-mode", choices=STEP_MODES, default="auto",
                   help="graph: capture each training step as one CUDA graph (auto: on a GPU); compile: torch.compile "
                        "as well (slow first epoch); eager: plain PyTorch")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--out", type=Path, required=True, help="run folder to write")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal, off in CI)")

    e = sub.add_parser("eval", help="test-set ELBO, IW log-likelihood, active units and KL of a run")
    e.add_argument("run_dir", type=Path)
    e.add_argument("--iw-samples", type=int, default=5000, help="importance samples (paper: 5000)")
    e.add_argument("--data-dir", default=None, help="dataset folder (default: the one the run was trained with)")
    e.add_argument("--device", choices=DEVICES, default="auto")
    e.add_argument("--bn-stats", choices=("recomputed", "running"), default="recomputed",
                   help="BN statistics: recomputed over the training set as the authors did (default), or training's running averages")
    e.add_argument("--json", action="store_true", help="print one JSON object")

    r = sub.add_parser("reproduce", help="train and evaluate the paper's grid (VAE, VAE+BN, VAE+BN+WU, LVAE+BN+WU x 1-5 layers)")
    r.add_argument("--dataset", choices=DATASETS, default="mnist")
    r.add_argument("--data-dir", default="data")
    r.add_argument("--out", type=Path, default=Path("results"))
    r.add_argument("--models", type=_names, default="vae,vae+bn,vae+bn+wu,lvae+bn+wu",
                   help="comma-separated subset of vae,vae+bn,vae+bn+wu,lvae+bn+wu")
    r.add_argument("--layers", type=_sizes, default=[1, 2, 3, 4, 5], help="comma-separated, e.g. 5 or 1,2,3,4,5")
    r.add_argument("--seeds", type=int, default=1, help="seeds per configuration, for error bars")
    r.add_argument("--epochs", type=int, default=2000)
    r.add_argument("--warmup-epochs", type=int, default=200)
    r.add_argument("--iw-samples", type=int, default=1, help="importance samples K to train the base runs with")
    r.add_argument("--mc-samples", type=int, default=1, help="Monte-Carlo samples M to train the base runs with")
    r.add_argument("--finetune-epochs", type=int, default=0,
                   help="also run the paper's two fine-tuning stages from each base run for this many epochs "
                        "(beta 1, lr x0.75 every 200 epochs)")
    r.add_argument("--finetune-mc-samples", type=int, default=10, help="Monte-Carlo samples of the 'finetune' stage")
    r.add_argument("--finetune-iw-samples", type=int, default=10, help="importance samples of the 'finetune+iw' stage")
    r.add_argument("--pixel-scale", type=int, choices=PIXEL_SCALES, default=256, help="pixels are bytes/this (authors: 256)")
    r.add_argument("--eval-samples", type=int, default=5000, help="importance samples for the test log-likelihood")
    r.add_argument("--eval-every", type=int, default=100)
    r.add_argument("--jobs", type=int, default=1, help="worker processes at once (on one GPU too)")
    r.add_argument("--group", type=int, default=1,
                   help="models each worker trains in lockstep (one CUDA graph for the group on a GPU)")
    r.add_argument("--device", choices=DEVICES, default="auto")
    r.add_argument("--time-limit", type=float, default=None, help="seconds; stop cleanly, run again to resume")
    r.add_argument("--add", type=Path, nargs="+", metavar="RUN_DIR", default=None,
                   help="train nothing: add these trained base runs, each with an eval.json (`export "
                        "--iw-samples K`), to the --out tables as rows labelled with the epochs they had")

    x = sub.add_parser("export", help="write a weights-only copy of a run folder (no optimizer state) with eval.json")
    x.add_argument("run_dir", type=Path)
    x.add_argument("out_dir", type=Path)
    x.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="weights' precision")
    numbers = x.add_mutually_exclusive_group()
    numbers.add_argument("--eval-json", type=Path, default=None, help="an `eval --json` result to store as eval.json")
    numbers.add_argument("--iw-samples", type=int, default=0,
                         help="evaluate the exported weights now with this many importance samples (0: not)")
    x.add_argument("--data-dir", default=None, help="dataset folder for --iw-samples (default: the run's)")

    d = sub.add_parser("demo", help="train the app's default pair: VAE+BN+WU and LVAE+BN+WU, 5 layers, digits")
    d.add_argument("--out", type=Path, default=Path("runs"))
    d.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    return p


def config_from_args(a: argparse.Namespace) -> RunConfig:
    return RunConfig(
        model=a.model, layers=a.layers, dataset=a.dataset,
        hidden_sizes=a.hidden_sizes or [], latent_sizes=a.latent_sizes or [],
        batch_norm=not a.no_bn, warmup_epochs=0 if a.no_warmup else a.warmup_epochs,
        likelihood=a.likelihood, data_dir=a.data_dir, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
        lr_decay=a.lr_decay, lr_decay_every=a.lr_decay_every, init_from=a.init_from,
        pixel_scale=a.pixel_scale, iw_samples=a.iw_samples, mc_samples=a.mc_samples, adam_eps=a.adam_eps,
        grad_clip=a.grad_clip, grad_clip_value=a.grad_clip_value, skip_limit=a.skip_limit, init=a.init,
        bn_heads=a.bn_heads, up_from_mean=a.up_from_mean, separate_top_down=a.separate_top_down,
        mirror_generative_widths=a.mirror_generative_widths, eval_every=a.eval_every,
        snapshot_every=a.snapshot_every, checkpoint_every=a.checkpoint_every, seed=a.seed, device=a.device, step_mode=a.step_mode)


def train_command(cfg: RunConfig, out: Path, resume: bool = False) -> list[str]:
    """The `python -m training train` argv that trains cfg into out (the inverse of config_from_args)."""
    cmd = [sys.executable, "-m", "training", "train", "--model", cfg.model, "--layers", str(cfg.layers),
           "--dataset", cfg.dataset, "--data-dir", cfg.data_dir, "--likelihood", cfg.likelihood,
           "--hidden-sizes", ",".join(map(str, cfg.hidden_sizes)), "--latent-sizes", ",".join(map(str, cfg.latent_sizes)),
           "--epochs", str(cfg.epochs), "--batch-size", str(cfg.batch_size), "--lr", str(cfg.lr),
           "--lr-decay", str(cfg.lr_decay), "--lr-decay-every", str(cfg.lr_decay_every),
           "--pixel-scale", str(cfg.pixel_scale), "--iw-samples", str(cfg.iw_samples),
           "--mc-samples", str(cfg.mc_samples), "--adam-eps", repr(cfg.adam_eps), "--grad-clip", repr(cfg.grad_clip),
           "--grad-clip-value", repr(cfg.grad_clip_value), "--skip-limit", str(cfg.skip_limit), "--init", cfg.init,
           "--eval-every", str(cfg.eval_every),
           "--snapshot-every", str(cfg.snapshot_every), "--checkpoint-every", str(cfg.checkpoint_every),
           "--seed", str(cfg.seed), "--device", cfg.device, "--step-mode", cfg.step_mode, "--out", str(out)]
    cmd += ["--warmup-epochs", str(cfg.warmup_epochs)] if cfg.warmup_epochs else ["--no-warmup"]
    cmd += [] if cfg.batch_norm else ["--no-bn"]
    cmd += [flag for flag, on in (("--bn-heads", cfg.bn_heads), ("--up-from-mean", cfg.up_from_mean),
                                  ("--separate-top-down", cfg.separate_top_down),
                                  ("--mirror-generative-widths", cfg.mirror_generative_widths)) if on]
    cmd += ["--init-from", cfg.init_from] if cfg.init_from else []
    return cmd + (["--resume"] if resume else [])


def run(argv: list[str] | None = None) -> int:
    try:
        a = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse has printed its one line (or --help)
        return e.code if isinstance(e.code, int) else 2
    if a.command == "train":
        from .train import train
        out = train(config_from_args(a), a.out, resume=a.resume, progress=a.progress, time_limit=a.time_limit)
        print(f"trained {out}")
    elif a.command == "eval":
        from .evaluate import evaluate_run, format_report
        if a.iw_samples < 1:
            raise UserError("--iw-samples must be at least 1")
        result = evaluate_run(a.run_dir, a.iw_samples, a.data_dir, a.device, bn_stats=a.bn_stats)
        print(json.dumps(result) if a.json else format_report(result))
    elif a.command == "reproduce" and a.add:
        from .reproduce import add_runs
        print(f"added {len(a.add)} run{'s' if len(a.add) != 1 else ''} to {add_runs(a.add, a.out)}")
    elif a.command == "reproduce":
        from .reproduce import reproduce
        for name, value in (("--seeds", a.seeds), ("--epochs", a.epochs), ("--jobs", a.jobs), ("--group", a.group),
                            ("--eval-samples", a.eval_samples), ("--iw-samples", a.iw_samples),
                            ("--mc-samples", a.mc_samples), ("--finetune-mc-samples", a.finetune_mc_samples),
                            ("--finetune-iw-samples", a.finetune_iw_samples)):
            if value < 1:
                raise UserError(f"{name} must be at least 1")
        path, complete = reproduce(a.dataset, a.data_dir, a.out, a.models, a.layers, a.seeds, a.epochs,
                                   a.warmup_epochs, a.iw_samples, a.finetune_epochs, a.finetune_iw_samples,
                                   a.eval_samples, a.jobs, a.device, a.eval_every, a.time_limit, a.group,
                                   a.mc_samples, a.finetune_mc_samples, a.pixel_scale)
        print(f"{'complete' if complete else 'partial (run the same command again to continue)'}: {path}")
    elif a.command == "export":
        from .export import export_run
        evaluation = None
        if a.eval_json is not None:
            try:
                evaluation = json.loads(a.eval_json.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise UserError(f"--eval-json {a.eval_json}: not a readable JSON file ({e})") from None
            if not isinstance(evaluation, dict):
                raise UserError(f"--eval-json {a.eval_json}: must hold one JSON object (what `eval --json` prints)")
        out = export_run(a.run_dir, a.out_dir, a.dtype, evaluation, a.iw_samples, a.data_dir,
                         command=shlex.join(["python", "-m", "training", *(sys.argv[1:] if argv is None else argv)]))
        print(f"exported {out}")
    elif a.command == "demo":
        from .demo import run_demo
        for path in run_demo(a.out, progress=a.progress):
            print(f"demo run ready: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is intact, continue with --resume", file=sys.stderr)
        return 130
