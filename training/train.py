"""The training loop: data resident on the device, metrics read once per epoch, atomic checkpoints."""
from __future__ import annotations

import copy
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from . import checkpoint as ckpt
from .config import RunConfig
from .data import Dataset, load_dataset
from .distributions import warmup_beta, warmup_beta_at_step
from .errors import TrainingError, UserError
from .evaluate import eval_mode, evaluate_test, resolve_device, test_tensors
from .models import LatentHierarchy, build_model
from .objectives import BatchStats, code_use_record, posterior_means
from .step import GroupStep, ModelStep, make_optimizer, set_lr, use_compile, use_graph

SNAPSHOT_POINTS = 1000


class EpochMeter:
    """Sums of an epoch's batch statistics over the steps that were not skipped, kept on the device until read."""

    def __init__(self) -> None:
        self.stats: BatchStats | None = None
        self.rows: torch.Tensor | None = None
        self.weights: torch.Tensor | None = None  # the sum of the steps' KL-balancing weights, and their count
        self.steps: torch.Tensor | None = None

    def add(self, stats: BatchStats, ok: torch.Tensor, rows: int) -> None:
        # torch.where, not a product: a skipped step's statistics may be NaN. New tensors, not views:
        # with a CUDA graph, `stats` is a buffer the next replay overwrites.
        zero = torch.zeros((), device=ok.device)
        keep = [torch.where(ok, t, zero) for t in (stats.elbo, stats.recon)]
        kl = [torch.where(ok, k, zero) for k in stats.kl_per_unit]
        n = ok.to(torch.float32) * rows
        if stats.kl_weights is not None:
            w = torch.where(ok, stats.kl_weights, torch.zeros_like(stats.kl_weights))
            self.weights = w if self.weights is None else self.weights + w
            self.steps = ok.to(torch.float32) + (0 if self.steps is None else self.steps)
        counts = [torch.where(ok, c, torch.zeros_like(c)) for c in stats.code_counts] if stats.code_counts else None
        revived = torch.where(ok, stats.revived, torch.zeros_like(stats.revived)) if stats.revived is not None else None
        if self.stats is None or self.rows is None:
            self.stats, self.rows = BatchStats(keep[0], keep[1], kl, code_counts=counts, revived=revived), n
        else:
            s = self.stats
            self.stats = BatchStats(s.elbo + keep[0], s.recon + keep[1], [a + b for a, b in zip(s.kl_per_unit, kl)],
                                    code_counts=[a + b for a, b in zip(s.code_counts, counts)] if counts else None,
                                    revived=s.revived + revived if revived is not None else None)
            self.rows = self.rows + n

    def read(self) -> dict:
        assert self.stats is not None and self.rows is not None
        s = self.stats
        packed = torch.cat([self.rows.view(1), s.elbo.view(1), s.recon.view(1), s.kl_per_layer()]).tolist()  # one sync
        n = packed[0] or math.nan  # every step skipped: no statistics (NaN), the caller decides
        record = {"train_elbo": packed[1] / n, "recon": packed[2] / n, "kl_per_layer": [k / n for k in packed[3:]]}
        if s.code_counts:  # a family with codebooks (VQ-VAE): their use over the whole epoch, not one batch
            record.update(code_use_record(s.code_counts))
            record["codes_revived"] = [int(r) for r in s.revived.tolist()] if s.revived is not None else []
        if self.weights is not None and self.steps is not None:  # a family that balances its KL terms (NVAE)
            steps = float(self.steps) or math.nan
            record["kl_balance"] = [w / steps for w in self.weights.tolist()]
        return record


def _rng_state(gen: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    state = {"data": gen.get_state(), "torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], gen: torch.Generator, device: torch.device) -> None:
    if "data" in state:
        gen.set_state(state["data"])
    if "torch_cpu" in state:
        torch.set_rng_state(state["torch_cpu"])
    if device.type == "cuda" and "torch_cuda" in state:
        torch.cuda.set_rng_state(state["torch_cuda"], device)


def prepare_run(cfg: RunConfig, out: Path, resume: bool) -> RunConfig:
    """The config to train with: cfg for a new run, the saved one (epochs and device from cfg) on resume."""
    out = Path(out)
    existing = (out / ckpt.CONFIG).is_file()
    if resume:
        if not existing:
            raise UserError(f"{out}: nothing to resume (no {ckpt.CONFIG}); drop --resume to start a new run")
        saved = ckpt.load_config(out)
        return replace(saved, epochs=max(cfg.epochs, 1), device=cfg.device)
    # A killed run's temporary files (".*.tmp", e.g. from its first config write) do not make the folder taken.
    if existing or (out.is_dir() and any(not (f.name.startswith(".") and f.name.endswith(".tmp")) for f in out.iterdir())):
        raise UserError(f"{out}: already holds files; use --resume to continue that run or choose another --out")
    return cfg


class Trainer:
    """One run being trained: config, model, optimizer, data on the device and run folder.

    `train` drives one Trainer (read it first); `train_group` drives several in lockstep so their
    steps can share one CUDA graph. An epoch is begin_epoch(), a step per batch, end_epoch().
    """

    def __init__(self, cfg: RunConfig, out: Path, resume: bool = False, deadline: float | None = None,
                 load: Callable[[str, str, int], Dataset] = load_dataset):
        self.deadline = deadline  # time.monotonic() after which the run checkpoints and stops
        self.out = out = Path(out)
        cfg = prepare_run(cfg, out, resume)
        self.device = device = resolve_device(cfg.device)
        data = load(cfg.dataset, cfg.data_dir, cfg.pixel_scale)
        if cfg.input_dim and cfg.input_dim != data.input_dim:
            raise UserError(f"{out}: the run was trained on {cfg.input_dim}-pixel data, {cfg.dataset} has {data.input_dim}")
        self.cfg = cfg = replace(cfg, input_dim=data.input_dim, image_shape=list(data.image_dims))

        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(cfg.seed)
        self.model = model = build_model(cfg).to(device)
        self.graph = use_graph(cfg.step_mode, device)
        if cfg.step_mode == "graph" and not self.graph:
            print("warning: --step-mode graph needs a CUDA device; training eagerly", file=sys.stderr)
        self.optimizer = make_optimizer(model, cfg.lr, self.graph, cfg.adam_eps)

        start = 0
        if cfg.init_from and not (resume and (out / ckpt.CHECKPOINT).is_file()):
            source, source_cfg, _ = ckpt.load_model(Path(cfg.init_from), device)
            theirs = {k: v.shape for k, v in source.state_dict().items()}
            if source_cfg.model != cfg.model or theirs != {k: v.shape for k, v in model.state_dict().items()}:
                raise UserError(f"--init-from {cfg.init_from}: that run's architecture differs from this one")
            model.load_state_dict(source.state_dict())
        # The weights' moving average (VDVAE's EMA): what the run is evaluated, snapshotted, explored and
        # exported with; `model` stays the optimizer's.
        self.ema = copy.deepcopy(model).requires_grad_(False) if cfg.ema_rate > 0 else None
        if resume and (out / ckpt.CHECKPOINT).is_file():
            loaded, _, start = ckpt.load_model(out, device)
            state = ckpt.load_training_state(out)
            if self.ema is not None:
                self.ema.load_state_dict(loaded.state_dict())
                if state.weights is None:
                    raise UserError(f"{out}: the checkpoint keeps no training weights beside the moving average "
                                    "(was it trained without --ema-rate?)")
                model.load_state_dict({k: v.to(device) for k, v in state.weights.items()})
            else:
                model.load_state_dict(loaded.state_dict())
            if state.optimizer is not None:
                self.optimizer.load_state_dict(state.optimizer)
            _set_rng_state(state.rng, self.gen, device)
        self.start = start
        out.mkdir(parents=True, exist_ok=True)
        ckpt.remove_stale_temp_files(out)  # one training process per run folder: leftovers are a killed run's
        ckpt.save_config(out, cfg)
        ckpt.truncate_history(out, start)
        ckpt.remove_snapshots_after(out, start)

        self.train_x = torch.as_tensor(data.train_x, device=device)
        self.x_test, y_test = test_tensors(data, cfg, device)
        self.points = torch.randperm(self.x_test.shape[0], generator=torch.Generator().manual_seed(0))[:SNAPSHOT_POINTS]
        self.points = self.points.to(device)
        if start == 0:
            ckpt.save_snapshot_points(out, self.points, y_test[self.points], self.x_test[self.points])
            self.snapshot(0)
        self.n_batches = self.train_x.shape[0] // cfg.batch_size  # drop the ragged last batch: fixed shapes
        if self.n_batches == 0:
            raise UserError(f"batch size {cfg.batch_size} is larger than the {self.train_x.shape[0]} training images")
        self.step = ModelStep(model, self.optimizer, cfg.batch_size, cfg.iw_samples, cfg.grad_clip,
                              use_compile(cfg.step_mode), cfg.grad_clip_value, cfg.mc_samples,
                              cfg.skip_threshold, self.ema, cfg.ema_rate)
        model.train()

    @property
    def evaluated(self) -> LatentHierarchy:
        """The weights the run is evaluated and explored with: the moving average where kept."""
        return self.ema if self.ema is not None else self.model

    def snapshot(self, epoch: int) -> None:
        with eval_mode(self.evaluated, fork_rng=True):
            ckpt.save_snapshot(self.out, epoch, posterior_means(self.evaluated, self.x_test[self.points]))

    def begin_epoch(self, epoch: int) -> None:
        cfg = self.cfg
        self.t0 = time.perf_counter()
        self.epoch = epoch
        # The history's beta: the epoch's own, or with a warm-up per step the mean over the epoch's steps.
        self.beta = warmup_beta(epoch, cfg.warmup_epochs) if not cfg.warmup_per_step else \
            sum(self.beta_at(b) for b in range(self.n_batches)) / self.n_batches
        set_lr(self.optimizer, cfg.lr_at(epoch), self.graph)
        for m in (self.model, self.ema):
            if m is not None:
                m.begin_epoch(epoch, cfg.epochs)
        self.order = torch.randperm(self.train_x.shape[0], generator=self.gen, device=self.device)
        # Dynamic binarization: a fresh Bernoulli(pixel) sample of every training image each epoch.
        self.xs = torch.bernoulli(self.train_x, generator=self.gen) if cfg.likelihood == "bernoulli" else self.train_x
        self.meter = EpochMeter()
        self.step.reset_counters()

    def beta_at(self, b: int) -> float:
        """The KL weight of the epoch's batch b: the epoch's beta, or with warmup_per_step the step's own."""
        cfg = self.cfg
        if not cfg.warmup_per_step:
            return self.beta
        return warmup_beta_at_step(self.epoch * self.n_batches + b, cfg.warmup_epochs * self.n_batches)

    def batch(self, b: int) -> torch.Tensor:
        size = self.cfg.batch_size
        return self.xs[self.order[b * size:(b + 1) * size]]

    def end_epoch(self, epoch: int) -> dict:
        """Record, evaluate, snapshot and checkpoint the finished epoch; returns its history record."""
        cfg, out = self.cfg, self.out
        record = {"epoch": epoch + 1, "beta": self.beta, **self.meter.read()}
        skipped, streak = int(self.step.skipped), int(self.step.max_streak)
        if skipped:
            record["skipped_steps"] = skipped
        if streak >= self.cfg.skip_limit:
            raise TrainingError(f"{out.name}, epoch {epoch + 1}: {streak} steps in a row had a NaN or infinite loss or "
                                f"gradient (or one over --skip-threshold) and were skipped; stopped, the last good checkpoint (epoch "
                                f"{self.last_checkpoint()}) is intact; try a lower --lr")
        if not all(map(math.isfinite, [record["train_elbo"], record["recon"], *record["kl_per_layer"]])):
            raise TrainingError(f"{out.name}, epoch {epoch + 1}: the loss became NaN or infinite; stopped, the last "
                                f"good checkpoint (epoch {self.last_checkpoint()}) is intact; try a lower --lr")
        record["seconds"] = time.perf_counter() - self.t0
        last_epoch = epoch + 1 == cfg.epochs
        if (epoch + 1) % cfg.eval_every == 0 or last_epoch:
            record.update(evaluate_test(self.evaluated, self.x_test))
        ckpt.append_history(out, record)
        if (epoch + 1) % cfg.snapshot_interval == 0 or last_epoch:
            self.snapshot(epoch + 1)
        if (epoch + 1) % cfg.checkpoint_interval == 0 or last_epoch or self.out_of_time():
            ckpt.save_checkpoint(out, self.evaluated, self.optimizer, epoch + 1, _rng_state(self.gen, self.device),
                                 trained=self.model if self.ema is not None else None)
        return record

    def last_checkpoint(self) -> int:
        """The epoch of the run's saved checkpoint (0 if none yet)."""
        return ckpt.load_training_state(self.out).epoch if (self.out / ckpt.CHECKPOINT).is_file() else 0

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline


def _progress_bar(show: bool | None, start: int, total: int, desc: str) -> tqdm:
    show = show if show is not None else (sys.stderr.isatty() and not os.environ.get("CI"))
    return tqdm(range(start, total), initial=start, total=total, disable=not show, desc=desc, unit="epoch",
                dynamic_ncols=True)


def train(cfg: RunConfig, out: Path, resume: bool = False, progress: bool | None = None,
          time_limit: float | None = None) -> Path:
    """Train (or resume) one run into `out` and return the run folder: the lockstep group of one.

    Each epoch: the warm-up weight, the learning rate and a fresh binarization of the training set;
    one step per batch (a non-finite one changes nothing); then the epoch's history line, a test
    evaluation, a snapshot and a checkpoint when they are due. time_limit: seconds after which
    training checkpoints at the end of the current epoch and returns (continue with resume=True).
    """
    return train_group([(cfg, out)], resume, progress, time_limit)[0]


def train_group(runs: list[tuple[RunConfig, Path]], resume: bool | list[bool] = False, progress: bool | None = None,
                time_limit: float | None = None) -> list[Path]:
    """`train` for several runs at once, in lockstep: one step of each per batch, one CUDA graph for all
    on a GPU (an accelerator for the paper's grid; each run ends exactly as `train` would leave it).

    Runs that share the epoch reached, the epoch count, the batch count and the
    device move together (the paper's grid does); the others train on their
    own. Each keeps its own data order, history, snapshots and checkpoints,
    exactly as if trained alone, except that the sampling noise of the models
    comes from one shared stream.
    """
    deadline = time.monotonic() + time_limit if time_limit else None  # one for the group: all stop together
    resumes = resume if isinstance(resume, list) else [resume] * len(runs)
    datasets: dict[tuple[str, str, int], Dataset] = {}  # a group on MNIST reads and unpacks it once

    def load(name: str, data_dir: str, pixel_scale: int) -> Dataset:
        key = (name, str(data_dir), pixel_scale)
        if key not in datasets:
            datasets[key] = load_dataset(name, data_dir, pixel_scale)
        return datasets[key]

    trainers = [Trainer(cfg, out, r, deadline, load) for (cfg, out), r in zip(runs, resumes)]
    # Runs that can move in lockstep (same epoch reached, epochs, batches, device) train together.
    groups: dict[tuple, list[Trainer]] = {}
    for t in trainers:
        if t.start < t.cfg.epochs:
            groups.setdefault((t.start, t.cfg.epochs, t.n_batches, str(t.device)), []).append(t)
    failures = [f for members in groups.values() for f in _train_lockstep(members, progress)]
    if failures:  # raised once every other run has finished: one bad run never costs the others
        raise TrainingError("; ".join(failures))
    return [t.out for t in trainers]


def _train_lockstep(todo: list[Trainer], progress: bool | None) -> list[str]:
    """Train the runs together to their last epoch; returns the messages of runs that had to stop."""
    todo, failures = list(todo), []
    lead = todo[0]
    group = GroupStep([t.step for t in todo], graph=all(t.graph for t in todo))
    desc = f"{lead.cfg.label} L={lead.cfg.layers}" if len(todo) == 1 else f"{len(todo)} models"
    bar = _progress_bar(progress, lead.start, lead.cfg.epochs, desc)
    for epoch in bar:
        for t in todo:
            t.begin_epoch(epoch)
        for b in range(lead.n_batches):
            stats = group([t.batch(b) for t in todo], [t.beta_at(b) for t in todo])
            for t, (s, ok) in zip(todo, stats):
                t.meter.add(s, ok, t.cfg.batch_size)
        records, failed = [], []
        for t in todo:
            try:
                records.append(t.end_epoch(epoch))
            except TrainingError as e:
                failed.append(t)
                failures.append(str(e))
                if len(todo) > 1:
                    print(f"error: {e}; the other runs of the group go on", file=sys.stderr)
        if failed:
            todo = [t for t in todo if t not in failed]
            if not todo:
                break
            group = GroupStep([t.step for t in todo], graph=group.graph_wanted)  # a new graph without them
        bar.set_postfix(elbo=f"{records[0]['train_elbo']:.2f}", beta=f"{records[0]['beta']:.2f}")
        if any(t.out_of_time() for t in todo) and epoch + 1 < lead.cfg.epochs:
            print(f"time limit reached after epoch {epoch + 1}; continue with --resume", file=sys.stderr)
            break
    bar.close()
    return failures
