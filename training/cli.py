"""python -m training {train,eval,reproduce,export,demo}: user errors end in one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import typing
from pathlib import Path

from .config import DATASETS, DEVICES, PIXEL_SCALES, STEP_MODES, RunConfig
from .models import arch_class, family_names
from .options import default_of, option_flag, options_of
from .errors import TrainingError, UserError


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


def family_in(argv: list[str]) -> str:
    """The family a command line names (--family or --model), "lvae" if none or an unknown one (the full
    parser then says what is wrong): it decides which architecture options `train` takes."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--family", "--model", dest="model", default="lvae")
    known, _ = pre.parse_known_args(argv)
    return known.model if known.model in family_names() else "lvae"


def build_parser(family: str = "lvae") -> argparse.ArgumentParser:
    """The CLI; `train` takes the common run settings and `family`'s architecture options."""
    p = OneLineParser(prog="python -m training", description="Train and evaluate VAEs and Ladder VAEs (Sønderby et al. 2016).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    t = sub.add_parser("train", help="train a model of any family (--family) into a run folder",
                       epilog=f"The architecture options above are the {family} family's; "
                              f"`train --family NAME --help` lists another's (families: {', '.join(family_names())}).")
    add_config_arguments(t, family)
    t.add_argument("--no-warmup", action="store_true", help="beta = 1 from the first epoch (--warmup-epochs 0)")
    t.add_argument("--time-limit", type=float, default=None,
                   help="seconds; then checkpoint after the current epoch and stop (continue with --resume)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--out", type=Path, required=True, help="run folder to write")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal, off in CI)")

    e = sub.add_parser("eval", help="test-set ELBO, IW log-likelihood, active units and KL of a run")
    e.add_argument("run_dir", type=Path)
    e.add_argument("--iw-samples", type=int, default=5000, help="importance samples (paper: 5000)")
    e.add_argument("--data-dir", default=None, help="dataset folder (default: the one the run was trained with)")
    e.add_argument("--device", choices=DEVICES, default="auto")
    e.add_argument("--bn-stats", choices=("recomputed", "running"), default=None,
                   help="BN statistics: recomputed over the training set as the LVAE authors did, or training's running "
                        "averages as NVAE's evaluation does (default: the family's own way)")
    e.add_argument("--test-images", type=int, default=None,
                   help="score only the first N test images (the same images and binarization for every run; default: all)")
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
    r.add_argument("--step-mode", choices=STEP_MODES, default="auto",
                   help="graph: each step one CUDA graph (auto: on a GPU); compile: torch.compile's kernels, captured "
                        "too; eager: neither (benchmarks/train_speed.py says which is fastest)")
    r.add_argument("--time-limit", type=float, default=None, help="seconds; stop cleanly, run again to resume")
    r.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: worker processes on this machine; ray: Ray tasks (pip install -r requirements-ray.txt)")
    r.add_argument("--address", default=None,
                   help="--engine ray: the cluster to join (e.g. auto, or ray://HOST:10001); default a local Ray")
    r.add_argument("--tasks-per-gpu", type=int, default=1,
                   help="--engine ray on a GPU: tasks sharing one GPU (each asks for 1/N of it)")
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
    x.add_argument("--snapshots", type=int, default=None,
                   help="keep at most N latent snapshots, evenly spaced with the first and last (default: all)")

    d = sub.add_parser("demo", help="train the app's default pair: VAE+BN+WU and LVAE+BN+WU, 5 layers, digits")
    d.add_argument("--out", type=Path, default=Path("runs"))
    d.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    return p


def add_config_arguments(parser: argparse.ArgumentParser, family: str = "lvae") -> None:
    """One option per field of RunConfig and of the family's architecture, from the field's type, default
    and metadata (training/options.py)."""
    arch = arch_class(family)
    hints = {**typing.get_type_hints(RunConfig), **typing.get_type_hints(arch)}
    for f in options_of(RunConfig) + options_of(arch):
        meta, kind = f.metadata, hints[f.name]
        flags = [option_flag(f.name), *meta["aliases"]]
        # a family may set its own defaults for common settings (VDVAE: the weights' EMA, gradient skipping)
        default = getattr(arch, "RUN_DEFAULTS", {}).get(f.name, default_of(f))
        kw: dict = {"dest": f.name, "help": meta["help"]}
        if kind is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default, **kw)
            continue
        if meta["required"]:
            kw["required"] = True
        else:
            kw["default"] = default
        parser.add_argument(*flags, type=_sizes if kind == list[int] else kind, choices=meta["choices"], **kw)


def config_from_args(a: argparse.Namespace) -> RunConfig:
    """The RunConfig a `train` command line describes (its fields by name, --no-warmup as warm-up 0)."""
    values = {f.name: getattr(a, f.name) for f in options_of(RunConfig)}
    values.update({f.name: getattr(a, f.name) for f in options_of(arch_class(a.model)) if hasattr(a, f.name)})
    if getattr(a, "no_warmup", False):
        values["warmup_epochs"] = 0
    return RunConfig.make(**values)


def run(argv: list[str] | None = None) -> int:
    try:
        a = build_parser(family_in(sys.argv[1:] if argv is None else argv)).parse_args(argv)
    except SystemExit as e:  # argparse has printed its one line (or --help)
        return e.code if isinstance(e.code, int) else 2
    command = shlex.join(["python", "-m", "training", *(sys.argv[1:] if argv is None else argv)])  # for the records
    if a.command == "train":
        from .train import train
        out = train(config_from_args(a), a.out, resume=a.resume, progress=a.progress, time_limit=a.time_limit)
        print(f"trained {out}")
    elif a.command == "eval":
        from .evaluate import evaluate_run, format_report
        if a.iw_samples < 1:
            raise UserError("--iw-samples must be at least 1")
        result = evaluate_run(a.run_dir, a.iw_samples, a.data_dir, a.device, bn_stats=a.bn_stats,
                              test_images=a.test_images)
        result["date"] = dt.date.today().isoformat()
        result["command"] = command
        print(json.dumps(result) if a.json else format_report(result))
    elif a.command == "reproduce" and a.add:
        from .reproduce import add_runs
        print(f"added {len(a.add)} run{'s' if len(a.add) != 1 else ''} to {add_runs(a.add, a.out)}")
    elif a.command == "reproduce":
        from .reproduce import reproduce
        for name, value in (("--seeds", a.seeds), ("--epochs", a.epochs), ("--jobs", a.jobs), ("--group", a.group),
                            ("--eval-samples", a.eval_samples), ("--iw-samples", a.iw_samples),
                            ("--mc-samples", a.mc_samples), ("--finetune-mc-samples", a.finetune_mc_samples),
                            ("--finetune-iw-samples", a.finetune_iw_samples), ("--tasks-per-gpu", a.tasks_per_gpu)):
            if value < 1:
                raise UserError(f"{name} must be at least 1")
        path, complete = reproduce(a.dataset, a.data_dir, a.out, a.models, a.layers, a.seeds, a.epochs,
                                   a.warmup_epochs, a.iw_samples, a.finetune_epochs, a.finetune_iw_samples,
                                   a.eval_samples, a.jobs, a.device, a.eval_every, a.time_limit, a.group,
                                   a.mc_samples, a.finetune_mc_samples, a.pixel_scale, a.engine, a.address,
                                   a.tasks_per_gpu, a.step_mode)
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
        out = export_run(a.run_dir, a.out_dir, a.dtype, evaluation, a.iw_samples, a.data_dir, command=command,
                         snapshots=a.snapshots)
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
    except TrainingError as e:  # not the user's doing: a run whose loss stayed non-finite
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is intact, continue with --resume", file=sys.stderr)
        return 130
