"""RunConfig: the one description of a run, saved as the run folder's config.json."""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .models import family_names

MODELS = family_names()  # the built-in families (training/models/); a registered one is valid too

DATASETS = ("digits", "mnist", "fashion-mnist", "omniglot")
LIKELIHOODS = ("bernoulli", "gaussian")
DEVICES = ("auto", "cpu", "cuda")
STEP_MODES = ("auto", "eager", "graph", "compile")
INITS = ("torch", "glorot")
PIXEL_SCALES = (255, 256)
FORMAT_VERSION = 2  # 2: no Linear bias in front of BatchNorm
# What a config.json written before a field existed means: how those runs were trained.
LEGACY_VALUES = {"pixel_scale": 255, "adam_eps": 1e-8, "grad_clip_value": 0.0, "init": "torch"}

# Sønderby et al. 2016, Sec. 3: MNIST sizes for layers 1..5 (a model with L
# layers takes the first L of each).
PAPER_HIDDEN = (512, 256, 128, 64, 32)
PAPER_LATENT = (64, 32, 16, 8, 4)
# For 8x8 `digits` (64 pixels, 1,437 training images) the paper's 512-unit
# first layer is wider than the input and overfits in a few epochs; these keep
# the same shrinking shape at a scale that trains in seconds on a CPU.
SMALL_HIDDEN = (128, 64, 32, 32, 16)
SMALL_LATENT = (16, 8, 8, 4, 2)
MAX_LAYERS = len(PAPER_HIDDEN)
IMAGE_SHAPES = {"digits": (8, 8), "mnist": (28, 28), "fashion-mnist": (28, 28), "omniglot": (28, 28)}


def option_flag(name: str) -> str:
    """The command-line flag of a RunConfig field: hidden_sizes -> --hidden-sizes."""
    return "--" + name.replace("_", "-")


def to_argv(cfg: RunConfig) -> list[str]:
    """cfg as `train` options, one per field (the inverse of the parser training/cli.py builds from them)."""
    argv: list[str] = []
    for f in RunConfig.options():
        value = getattr(cfg, f.name)
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


def default_sizes(dataset: str, layers: int) -> tuple[list[int], list[int]]:
    hidden, latent = (SMALL_HIDDEN, SMALL_LATENT) if dataset == "digits" else (PAPER_HIDDEN, PAPER_LATENT)
    return list(hidden[:layers]), list(latent[:layers])


def option(default: Any, help: str, *, choices: tuple | None = None, required: bool = False,
           aliases: tuple[str, ...] = ()) -> Any:
    """A RunConfig field that is also a `train` option: help, choices and required-ness in its metadata
    (training/cli.py builds the parser from these; train_command inverts it)."""
    meta = {"help": help, "choices": choices, "required": required, "aliases": aliases}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def internal(default: Any) -> Any:
    """A RunConfig field that is not an option (filled in by the code)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"cli": False})
    return field(default=default, metadata={"cli": False})


@dataclass
class RunConfig:
    """The one description of a run; every field but the internal ones is a `train` option of the same name."""
    model: str = option("lvae", "vae: bottom-up inference; lvae: the Ladder VAE", choices=MODELS, required=True)
    layers: int = option(5, "stochastic layers (1..5 with the default sizes)", required=True)
    dataset: str = option("digits", "digits is built in; the others read their files from --data-dir",
                          choices=DATASETS, required=True)
    hidden_sizes: list[int] = option([], "deterministic units per layer, e.g. 512,256,128 (default: the paper's "
                                         "for MNIST-size data, smaller for digits)")
    latent_sizes: list[int] = option([], "stochastic units per layer, e.g. 64,32,16")
    batch_norm: bool = option(True, "batch normalization (--no-bn: none)", aliases=("--bn",))
    warmup_epochs: int = option(200, "epochs for beta to rise from 0 to 1 (paper: 200); 0: beta = 1 throughout")
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
    skip_limit: int = option(10, "stop after this many consecutive non-finite (skipped) steps")
    # The authors' Glorot-normal init (gain sqrt 2 in the MLPs); "torch" is PyTorch's default. Measured on
    # the digits demo pair (seed 1): it moves IW-1000 by 0.03-0.07 nats and the active units per layer
    # (VAE 16/4/0/0/0 -> 16/8/1/0/0, LVAE 16/4/1/1/0 -> 16/3/3/3/0), so the grid follows the authors.
    init: str = option("glorot", "weight initialisation (glorot: the authors')", choices=INITS)
    # Variants of the authors' released code; the defaults follow the paper's text (Sec. 2).
    bn_heads: bool = option(False, "BN on every latent mean and variance head, in q and p (authors' code)")
    up_from_mean: bool = option(False, "LVAE: each upward block reads the bottom-up mean of the layer below, not "
                                       "d_{n-1} (authors' only_mu_up)")
    separate_top_down: bool = option(False, "LVAE: q merges with a top-down network of its own, not with p "
                                            "(authors' ladder_share_params False)")
    mirror_generative_widths: bool = option(False, "p(z_i|z_i+1) as wide as layer i+1's MLP, mirroring the "
                                                   "encoder (authors' VAE)")
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
        if not self.hidden_sizes or not self.latent_sizes:
            hidden, latent = default_sizes(self.dataset, min(max(self.layers, 1), MAX_LAYERS))
            self.hidden_sizes = self.hidden_sizes or hidden
            self.latent_sizes = self.latent_sizes or latent
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise UserError(msg)
        need(self.model in family_names(), f"model must be one of {', '.join(family_names())}, not {self.model!r}")
        need(self.dataset in DATASETS, f"dataset must be one of {', '.join(DATASETS)}, not {self.dataset!r}")
        need(self.likelihood in LIKELIHOODS, f"likelihood must be one of {', '.join(LIKELIHOODS)}")
        need(self.step_mode in STEP_MODES, f"step mode must be one of {', '.join(STEP_MODES)}")
        need(self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        need(isinstance(self.layers, int) and 1 <= self.layers, "layers must be a whole number of at least 1")
        need(len(self.hidden_sizes) == self.layers and len(self.latent_sizes) == self.layers,
             f"need {self.layers} hidden and latent sizes (one per layer); the defaults cover up to {MAX_LAYERS} layers")
        need(all(isinstance(n, int) and n > 0 for n in self.hidden_sizes + self.latent_sizes),
             "layer sizes must be positive whole numbers")
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
        need(self.pixel_scale in PIXEL_SCALES, f"pixel scale must be 255 or 256, not {self.pixel_scale!r}")
        need(self.init in INITS, f"init must be one of {', '.join(INITS)}, not {self.init!r}")
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
        parts = [self.model.upper()] + (["BN"] if self.batch_norm else []) + (["WU"] if self.warmup_epochs else [])
        return "+".join(parts)

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of a field (the `train` option's), for every form that offers it."""
        return next(f.metadata["help"] for f in dataclasses.fields(cls) if f.name == name)

    @classmethod
    def options(cls) -> list[dataclasses.Field]:
        """The fields that are `train` options (all but the internal ones), in declaration order."""
        return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> RunConfig:
        if not isinstance(data, dict):
            raise UserError("config.json must hold a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"config.json has unknown keys: {', '.join(unknown)}")
        for key in ("model", "layers", "dataset", "hidden_sizes", "latent_sizes", "input_dim"):
            if key not in data:
                raise UserError(f"config.json is missing the key {key!r}")
        # Runs saved before a field existed were trained the way the code then worked.
        data = {**{k: v for k, v in LEGACY_VALUES.items() if k not in data}, **data}
        if data.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
            raise UserError(f"config.json has format_version {data['format_version']}, this version reads {FORMAT_VERSION}")
        try:
            return cls(**data)
        except TypeError as e:  # wrong value types, e.g. a string where a list belongs
            raise UserError(f"config.json has a bad value: {e}") from None
