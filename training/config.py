"""RunConfig: the one description of a run, saved as the run folder's config.json.

Two parts: the common run settings (data, optimiser, schedule, warm-up, checkpoints, device) as RunConfig's
own fields, and the family's architecture as its own dataclass in `arch` (training/models/; nested as
"arch" in config.json). Every field of both is a `train` option of the same name.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError
from .models import arch_class, family_names
from .models.mlp import PAPER_HIDDEN, PAPER_LATENT  # noqa: F401  (the paper's sizes, read by reproduce and the explorer)
from .options import default_of, help_of, internal, option, option_flag, options_of

MODELS = family_names()  # the built-in families (training/models/); a registered one is valid too
DATASETS = ("digits", "mnist", "fashion-mnist", "omniglot")
LIKELIHOODS = ("bernoulli", "gaussian")
DEVICES = ("auto", "cpu", "cuda")
STEP_MODES = ("auto", "eager", "graph", "compile")
PIXEL_SCALES = (255, 256)
FORMAT_VERSION = 2  # 2: no Linear bias in front of BatchNorm
# What a config.json written before a field existed means: how those runs were trained.
LEGACY_VALUES = {"pixel_scale": 255, "adam_eps": 1e-8, "grad_clip_value": 0.0}
IMAGE_SHAPES = {"digits": (8, 8), "mnist": (28, 28), "fashion-mnist": (28, 28), "omniglot": (28, 28)}


def to_argv(cfg: RunConfig) -> list[str]:
    """cfg as `train` options, one per field of both parts (the inverse of training/cli.py's parser)."""
    argv: list[str] = []
    for obj in (cfg, cfg.arch):
        for f in options_of(type(obj)):
            value = getattr(obj, f.name)
            flag = option_flag(f.name)
            if isinstance(value, bool):
                argv.append(flag if value else "--no-" + flag[2:])
            elif isinstance(value, list):
                argv += [flag, ",".join(map(str, value))] if value else []
            elif value == "":
                continue  # an empty string option is its default ("" = none)
            else:
                argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    return argv


def train_command(cfg: RunConfig, out: Path, resume: bool = False) -> list[str]:
    """The `python -m training train` argv that trains cfg into out."""
    return [sys.executable, "-m", "training", "train", *to_argv(cfg), "--out", str(out)] + (["--resume"] if resume else [])


@dataclass
class RunConfig:
    """The one description of a run; every field but the internal ones is a `train` option of the same name."""
    model: str = option("lvae", "the model family (training/models/): vae, bottom-up inference; lvae, the Ladder VAE",
                        choices=MODELS, required=True, aliases=("--family",))
    dataset: str = option("digits", "digits is built in; the others read their files from --data-dir",
                          choices=DATASETS, required=True)
    # The family's architecture (its Arch dataclass; a dict is read into one): training/models/.
    arch: Any = internal(None)
    warmup_epochs: int = option(200, "epochs for beta to rise from 0 to 1 (paper: 200); 0: beta = 1 throughout")
    warmup_per_step: bool = option(False, "raise beta a little every training step instead of once an epoch "
                                          "(Efficient-VDVAE's warm-up), reaching 1 after the same --warmup-epochs")
    likelihood: str = option("bernoulli", "p(x|z_1); bernoulli binarizes the data", choices=LIKELIHOODS)
    data_dir: str = option("data", "folder with the dataset's files (not needed for digits)")
    # IDX pixels (MNIST, Fashion-MNIST) are bytes / pixel_scale. 256 is the authors' data (the LISA
    # mnist.pkl.gz their loader reads holds bytes/256, so 255 becomes 255/256); 255 maps 255 to 1.0,
    # which makes binarized MNIST 1.3 nats per test image less noisy than theirs.
    pixel_scale: int = option(256, "MNIST/Fashion-MNIST pixels are bytes/this (256: the authors' data; 255: "
                                   "255 becomes 1.0)", choices=PIXEL_SCALES)
    epochs: int = option(2000, "epochs to train", required=True)
    batch_size: int = option(256, "examples per step")
    lr: float = option(2e-3, "Adam learning rate")
    lr_decay: float = option(1.0, "multiply lr by this every --lr-decay-every epochs (paper's fine-tuning: 0.75)")
    lr_decay_every: int = option(0, "epochs between lr decays (paper's fine-tuning: 200); 0: constant lr")
    init_from: str = option("", "start from the weights of this run folder (fine-tuning)")
    iw_samples: int = option(1, "K: importance samples inside the log of the training bound (authors' iw_samples)")
    mc_samples: int = option(1, "Monte-Carlo samples averaged outside the log (authors' eq_samples)")
    # The optimizer and clipping of the authors' code (run_models.py l.731-737, Lasagne's adam):
    adam_eps: float = option(1e-4, "Lasagne-style Adam epsilon, added to sqrt(v) before bias correction "
                                   "(authors: 1e-4; training/optim.py)")
    grad_clip: float = option(4.0, "scale the gradient's total norm to at most this (authors: 4); 0 = off")
    grad_clip_value: float = option(0.9, "then clip each gradient element to +-this (authors: 0.9); 0 = off")
    skip_limit: int = option(10, "stop after this many consecutive skipped steps")
    skip_threshold: float = option(0.0, "also skip an update whose gradient norm is over this, counted as the non-finite "
                                        "ones are (VDVAE's grad skipping); 0: skip only non-finite ones")
    ema_rate: float = option(0.0, "keep an exponential moving average of the weights at this rate (VDVAE: 0.9999) and "
                                  "evaluate, snapshot, explore and export it; 0: none")
    eval_every: int = option(10, "epochs between test-set evaluations")
    snapshot_every: int = option(0, "epochs between latent snapshots (0: about ten per run)")
    checkpoint_every: int = option(0, "epochs between checkpoints (0: about fifty per run, and always the last)")
    seed: int = option(0, "random seed (weights, batches, binarization)")
    device: str = option("auto", "where to train (auto: a CUDA GPU if there is one)", choices=DEVICES)
    step_mode: str = option("auto", "graph: capture each training step as one CUDA graph (auto: on a GPU); "
                                    "compile: torch.compile as well (slow first epoch); eager: plain PyTorch",
                            choices=STEP_MODES)
    input_dim: int = internal(0)    # filled in from the dataset when training starts
    image_shape: list[int] = internal([])  # (C, H, W), likewise; runs saved before it: see image_dims
    format_version: int = internal(FORMAT_VERSION)

    def __post_init__(self) -> None:
        if self.model not in family_names():
            raise UserError(f"model must be one of {', '.join(family_names())}, not {self.model!r}")
        arch_cls = arch_class(self.model)
        if self.arch is None:
            self.arch = arch_cls()
        elif isinstance(self.arch, dict):
            try:
                self.arch = arch_cls(**self.arch)
            except TypeError as e:  # an option the family does not have
                raise UserError(f"{self.model} architecture: {e}") from None
        elif not isinstance(self.arch, arch_cls):
            raise UserError(f"a {type(self.arch).__name__} is not the {self.model} family's architecture")
        self.arch = self.arch.completed(self.dataset)
        self.validate()

    @classmethod
    def make(cls, **values: Any) -> RunConfig:
        """A RunConfig from flat values, as the `train` options give them: the family's architecture
        fields (layers, hidden_sizes, ...) go into arch, the others are the common settings."""
        model = values.get("model", cls.model)
        if model not in family_names():
            raise UserError(f"model must be one of {', '.join(family_names())}, not {model!r}")
        arch_names = {f.name for f in dataclasses.fields(arch_class(model))}
        arch_values = {k: values.pop(k) for k in list(values) if k in arch_names}
        if values.get("arch") is not None and arch_values:
            raise UserError(f"give the architecture either as arch or as {', '.join(arch_values)}, not both")
        if values.get("arch") is None:
            values["arch"] = arch_values
        for name, value in getattr(arch_class(model), "RUN_DEFAULTS", {}).items():  # the family's own defaults
            values.setdefault(name, value)
        try:
            return cls(**values)
        except TypeError as e:  # an option neither part has
            raise UserError(f"not a setting of a {model} run: {e}") from None

    @property
    def layers(self) -> int:
        """The number of stochastic layers (the family's architecture says)."""
        return self.arch.layers

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise UserError(msg)
        need(self.dataset in DATASETS, f"dataset must be one of {', '.join(DATASETS)}, not {self.dataset!r}")
        need(self.likelihood in LIKELIHOODS, f"likelihood must be one of {', '.join(LIKELIHOODS)}")
        need(self.step_mode in STEP_MODES, f"step mode must be one of {', '.join(STEP_MODES)}")
        need(self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        need(not self.image_shape or (len(self.image_shape) == 3 and self.image_shape[0] * self.image_shape[1]
                                      * self.image_shape[2] == self.input_dim),
             "image_shape must be (channels, height, width) with input_dim pixels in all")
        need(self.epochs >= 1, "epochs must be at least 1")
        need(self.batch_size >= 2, "batch size must be at least 2 (batch normalization needs two examples)")
        need(self.lr > 0, "learning rate must be positive")
        need(0 < self.lr_decay <= 1 and self.lr_decay_every >= 0, "lr decay must be in (0, 1] with a period of 0 or more epochs")
        need(self.iw_samples >= 1, "iw-samples must be at least 1")
        need(self.mc_samples >= 1, "mc-samples must be at least 1")
        need(self.skip_limit >= 1, "skip-limit must be at least 1")
        need(self.skip_threshold >= 0, "skip-threshold must be 0 (off) or positive")
        need(0 <= self.ema_rate < 1, "ema-rate must be in [0, 1) (0: no moving average)")
        need(self.pixel_scale in PIXEL_SCALES, f"pixel scale must be 255 or 256, not {self.pixel_scale!r}")
        need(self.adam_eps > 0, "adam-eps must be positive")
        need(self.grad_clip_value >= 0, "grad-clip-value must be 0 (off) or positive")
        need(self.warmup_epochs >= 0, "warmup-epochs must be 0 or more")
        need(self.grad_clip >= 0, "grad-clip must be 0 (off) or positive")
        need(self.eval_every >= 1, "eval-every must be at least 1")
        need(self.snapshot_every >= 0 and self.checkpoint_every >= 0, "snapshot/checkpoint intervals must be 0 or more")

    @property
    def image_dims(self) -> tuple[int, int, int]:
        """(C, H, W) of the run's images: image_shape, or for a run saved before it, the dataset's grey
        images (a square guess, then one row, for an unknown pixel count)."""
        if self.image_shape:
            c, h, w = self.image_shape
            return c, h, w
        shape = IMAGE_SHAPES.get(self.dataset)
        if shape and shape[0] * shape[1] == self.input_dim:
            return 1, *shape
        side = int(round(self.input_dim ** 0.5))
        return (1, side, side) if side * side == self.input_dim else (1, 1, self.input_dim)

    @property
    def snapshot_interval(self) -> int:
        return self.snapshot_every or max(1, self.epochs // 10)

    @property
    def checkpoint_interval(self) -> int:
        return self.checkpoint_every or max(1, self.epochs // 50)

    def lr_at(self, epoch: int) -> float:
        """Learning rate in epoch `epoch` (0-based): step decay, as in the paper's fine-tuning stage."""
        return self.lr * self.lr_decay ** (epoch // self.lr_decay_every) if self.lr_decay_every else self.lr

    @property
    def label(self) -> str:
        """The paper's name for this configuration, e.g. 'LVAE+BN+WU'."""
        return "+".join([self.model.upper(), *self.arch.tags()] + (["WU"] if self.warmup_epochs else []))

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of a field (the `train` option's), for every form that offers it."""
        return help_of(cls, name)

    @classmethod
    def options(cls) -> list[dataclasses.Field]:
        """The common settings that are `train` options (all but the internal ones), in declaration order."""
        return options_of(cls)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> RunConfig:
        if not isinstance(data, dict):
            raise UserError("config.json must hold a JSON object")
        if data.get("model") not in family_names():
            raise UserError(f"config.json: model must be one of {', '.join(family_names())}, not {data.get('model')!r}")
        arch_cls = arch_class(data["model"])
        names = {f.name for f in dataclasses.fields(cls)}
        arch_names = {f.name for f in dataclasses.fields(arch_cls)}
        if "arch" in data:  # the nested form
            required, arch = ("model", "dataset", "input_dim"), data["arch"]
            if not isinstance(arch, dict):
                raise UserError("config.json: arch must hold a JSON object")
        else:  # a run saved before the two parts: one flat object
            required = ("model", "layers", "dataset", "hidden_sizes", "latent_sizes", "input_dim")
            arch = {k: data[k] for k in arch_names if k in data}
            data = {k: v for k, v in data.items() if k not in arch_names}
            # Then every family's options were global: another family's option at its default meant nothing.
            for other in family_names():
                for f in dataclasses.fields(arch_class(other)):
                    if f.name in data and f.name not in names and data[f.name] == default_of(f):
                        del data[f.name]
        unknown = sorted(set(data) - names) + sorted(set(arch) - arch_names)
        if unknown:
            raise UserError(f"config.json has unknown keys: {', '.join(unknown)}")
        for key in required:
            if key not in data and key not in arch:
                raise UserError(f"config.json is missing the key {key!r}")
        # Runs saved before a field existed were trained the way the code then worked.
        data = {**{k: v for k, v in LEGACY_VALUES.items() if k not in data}, **data}
        arch = {**{k: v for k, v in getattr(arch_cls, "LEGACY", {}).items() if k not in arch}, **arch}
        if data.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
            raise UserError(f"config.json has format_version {data['format_version']}, this version reads {FORMAT_VERSION}")
        try:
            return cls(**{**data, "arch": arch_cls(**arch)})
        except TypeError as e:  # wrong value types, e.g. a string where a list belongs
            raise UserError(f"config.json has a bad value: {e}") from None
