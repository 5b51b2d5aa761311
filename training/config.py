"""RunConfig: the one description of a run, saved as the run folder's config.json."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError

MODELS = ("vae", "lvae")
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


def default_sizes(dataset: str, layers: int) -> tuple[list[int], list[int]]:
    hidden, latent = (SMALL_HIDDEN, SMALL_LATENT) if dataset == "digits" else (PAPER_HIDDEN, PAPER_LATENT)
    return list(hidden[:layers]), list(latent[:layers])


@dataclass
class RunConfig:
    model: str = "lvae"
    layers: int = 5
    dataset: str = "digits"
    hidden_sizes: list[int] = field(default_factory=list)   # empty: default_sizes()
    latent_sizes: list[int] = field(default_factory=list)
    batch_norm: bool = True
    warmup_epochs: int = 200        # 0: no warm-up, beta = 1 throughout
    likelihood: str = "bernoulli"
    data_dir: str = "data"
    # IDX pixels (MNIST, Fashion-MNIST) are bytes / pixel_scale. 256 is the authors' data (the LISA
    # mnist.pkl.gz their loader reads holds bytes/256, so 255 becomes 255/256); 255 maps 255 to 1.0,
    # which makes binarized MNIST 1.3 nats per test image less noisy than theirs.
    pixel_scale: int = 256
    epochs: int = 2000
    batch_size: int = 256
    lr: float = 2e-3
    lr_decay: float = 1.0           # multiply lr by this every lr_decay_every epochs (paper's fine-tuning: 0.75 / 200)
    lr_decay_every: int = 0         # 0: constant lr
    init_from: str = ""             # start from this run folder's weights (fine-tuning); "" = random init
    iw_samples: int = 1             # K: importance samples inside the log of the training bound (authors' iw_samples)
    mc_samples: int = 1             # Monte-Carlo samples averaged outside the log (authors' eq_samples)
    # The optimizer and clipping of the authors' code (run_models.py l.731-737, Lasagne's adam):
    adam_eps: float = 1e-4          # Lasagne's Adam: added to sqrt(v) before bias correction (training/optim.py)
    grad_clip: float = 4.0          # scale the gradient's total norm down to at most this; 0 = off
    grad_clip_value: float = 0.9    # then clip every element to +-this; 0 = off
    skip_limit: int = 10            # stop a run after this many consecutive skipped (non-finite) steps
    # The authors' Glorot-normal init (gain sqrt 2 in the MLPs); "torch" is PyTorch's default. Measured on
    # the digits demo pair (seed 1): it moves IW-1000 by 0.03-0.07 nats and the active units per layer
    # (VAE 16/4/0/0/0 -> 16/8/1/0/0, LVAE 16/4/1/1/0 -> 16/3/3/3/0), so the grid follows the authors.
    init: str = "glorot"
    # Variants of the authors' released code; the defaults follow the paper's text (Sec. 2).
    bn_heads: bool = False          # BN on every latent mean and variance head, in q and p
    up_from_mean: bool = False      # LVAE: upward block n reads the bottom-up mean of layer n-1, not d_{n-1} (only_mu_up)
    separate_top_down: bool = False  # LVAE: q merges with a top-down network of its own, not with p (ladder_share_params False)
    mirror_generative_widths: bool = False  # p(z_i|z_{i+1}) as wide as layer i+1's MLP, mirroring the encoder
    eval_every: int = 10
    snapshot_every: int = 0         # 0: about ten snapshots a run
    checkpoint_every: int = 0       # 0: about fifty checkpoints a run (and always the last epoch)
    seed: int = 0
    device: str = "auto"
    step_mode: str = "auto"         # auto: one CUDA graph per step on a GPU, eager on a CPU; compile: torch.compile too
    input_dim: int = 0              # filled in from the dataset when training starts
    format_version: int = FORMAT_VERSION

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
        need(self.model in MODELS, f"model must be one of {', '.join(MODELS)}, not {self.model!r}")
        need(self.dataset in DATASETS, f"dataset must be one of {', '.join(DATASETS)}, not {self.dataset!r}")
        need(self.likelihood in LIKELIHOODS, f"likelihood must be one of {', '.join(LIKELIHOODS)}")
        need(self.step_mode in STEP_MODES, f"step mode must be one of {', '.join(STEP_MODES)}")
        need(self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        need(isinstance(self.layers, int) and 1 <= self.layers, "layers must be a whole number of at least 1")
        need(len(self.hidden_sizes) == self.layers and len(self.latent_sizes) == self.layers,
             f"need {self.layers} hidden and latent sizes (one per layer); the defaults cover up to {MAX_LAYERS} layers")
        need(all(isinstance(n, int) and n > 0 for n in self.hidden_sizes + self.latent_sizes),
             "layer sizes must be positive whole numbers")
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

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> "RunConfig":
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
