"""The model interface: what training, evaluation, the run folder and the explorer may ask of a family.

After openai/vdvae's forward_get_latents / forward_samples_set_latents / forward_uncond_samples. A family
is a `LatentHierarchy` subclass in one module of training/models/ (see the registry there); nothing
outside that module reads its submodules or parameters by name.

Layers are numbered 0..L-1 (z_1..z_L in the papers), 0 nearest the image. Codes are shaped
(N, *spec.shape): (N, units) for a vector layer, (N, C, H, W) for a spatial one. Images are (N, C, H, W)
in [0, 1]; a family also accepts flat rows (N, C*H*W) of the same pixels in C, H, W order.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .bounds import BatchStats, log_importance_weights, training_loss
from .layers import (CATEGORICAL, GAUSSIAN, SUMMARY_UNITS, CodePosterior, ForwardPass, Generated, LayerPosterior, LayerSpec,  # noqa: F401
                     RunSettings, per_row)


class LatentHierarchy(nn.Module):
    """The interface every family implements (the abstract methods) and what it gets for free."""

    family: str = ""  # the registry name, set by each family class
    # The family's architecture: a dataclass of `training.options.option` fields (its `train` options) with
    # `layers` (a field or property: the number of stochastic layers), completed(dataset) -> a validated copy
    # with the dataset's defaults filled in, tags() -> what a run's label names of it ("BN"), summary() -> a
    # short line for tables, LEGACY: the values meant by a config.json written before a field existed, and
    # optionally FORM: {field: label} of the options the Train form shows first.
    Arch: type = type(None)
    # BN statistics the test-set evaluation uses unless told otherwise: "recomputed" over the training set
    # (the LVAE authors' way) or "running" (training's averages, NVAE's evaluate.py).
    eval_bn_stats: str = "recomputed"
    # (sample, image) rows in one forward pass of an IW estimate on a CPU, where a pass's activations should
    # stay in cache: 8192 for the MLP pair (2.7x faster than 100k, measured); a conv family's rows are larger.
    cpu_rows_per_pass: int = 8192
    # True for a family whose layers are codes from codebooks (kind CATEGORICAL): the explorer's code map
    # (codebook, code_log_probs below) applies to it.
    has_codebooks: bool = False

    def __init__(self, cfg: RunSettings):
        super().__init__()
        self.cfg = cfg

    # ---- what a family must provide -------------------------------------------------------

    def layer_specs(self) -> list[LayerSpec]:
        raise NotImplementedError

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the model reads and writes."""
        return tuple(self.cfg.image_dims)  # type: ignore[return-value]

    def posterior(self, x: torch.Tensor, n_samples: int = 1, mean_path: bool = False,
                  eps: list[torch.Tensor] | None = None, generator: torch.Generator | None = None) -> list[LayerPosterior]:
        """q(z|x): per layer the sample and q's and p's parameters at it, n_samples * N rows (sample-major).

        mean_path: every layer at q's mean given the means of the layers it depends on (nothing sampled).
        eps: each layer's standard-normal noise (n_samples * N, *shape) to fix the draws; generator: draw
        from it instead of torch's global generator.
        """
        raise NotImplementedError

    def log_likelihood(self, x: torch.Tensor, layers: list[LayerPosterior]) -> torch.Tensor:
        """log p(x|z) per row for the codes in `layers` (x repeated to their row count)."""
        raise NotImplementedError

    def generate(self, n: int, fixed: dict[int, torch.Tensor] | None = None, temperature: float | Sequence[float] = 1.0,
                 use_mean: bool = False, generator: torch.Generator | None = None) -> Generated:
        """Top-down from p (the one sampler: prior samples, decoding, traversals, paths).

        Layers in `fixed` keep the given codes (n rows, or one broadcast; a NaN in a code marks a variate drawn
        all the same: `layers.fixed_or_drawn` does both); the others are drawn from p given
        what lies above, their standard deviation scaled by `temperature` (one value, or one per layer, z_1
        first; 0: p's mean), or at p's mean with use_mean. Noise comes from `generator` (the global one if
        None) on the generator's device, then moves to the model's: a seed gives the same draws anywhere.
        """
        raise NotImplementedError

    # ---- a family with codebooks (categorical layers, spec.kind == CATEGORICAL) also gives --------

    def codebook(self, layer: int) -> torch.Tensor:
        """(K, D) the code vectors of a categorical layer: code k of a position is codebook[k] in its D channels."""
        raise NotImplementedError(f"the {self.family} family's layer {layer + 1} has no codebook")

    def code_log_probs(self, layer: int, indices: Sequence[torch.Tensor]) -> torch.Tensor:
        """(N, K, h, w) the prior's log p of every code at every position of a categorical layer, given the codes
        before that position (the prior's order) and the layers above; indices: every layer's (N, h, w) codes,
        z1 first (entries of Gaussian layers are ignored)."""
        raise NotImplementedError(f"the {self.family} family's layer {layer + 1} has no prior over codes")

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        """Called by training before each epoch (0-based) of `epochs`, and on resume: a family whose objective
        changes over training (VQ-VAE's prior-only epochs) sets it here; nothing by default."""

    # ---- what follows from those ----------------------------------------------------------

    @property
    def n_layers(self) -> int:
        return len(self.layer_specs())

    def forward(self, x: torch.Tensor, n_samples: int = 1, eps: list[torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> ForwardPass:
        """Encode x with n_samples posterior samples each and score x under them."""
        layers = self.posterior(x, n_samples, eps=eps, generator=generator)
        return ForwardPass(layers, self.log_likelihood(x, layers))

    def log_weights(self, x: torch.Tensor, k: int, eps: list[torch.Tensor] | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor | None:
        """(k, N) log p(x, z_k) / q(z_k|x) for k posterior samples (None for a family without such a bound)."""
        return log_importance_weights(self(x, n_samples=k, eps=eps, generator=generator)).view(k, -1)

    def loss(self, x: torch.Tensor, beta: torch.Tensor | float, iw_samples: int = 1, mc_samples: int = 1,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, BatchStats]:
        """(loss to minimise, BatchStats): -ELBO with warm-up weight beta, or the IW bound -L_K."""
        return training_loss(self, x, beta, iw_samples, mc_samples, generator)

    def decode(self, fixed: dict[int, torch.Tensor], n: int | None = None, below: str = "mean",
               temperature: float | Sequence[float] = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images (n, C, H, W) from the fixed layers' codes; the free layers at p's mean (below="mean") or drawn."""
        n = n if n is not None else max(z.shape[0] for z in fixed.values())
        return self.generate(n, fixed, temperature, use_mean=(below == "mean"), generator=generator).images

    def images_in(self, x: torch.Tensor) -> torch.Tensor:
        """x as (N, C, H, W), from flat rows or images."""
        return x.reshape(x.shape[0], *self.image_shape)

    # ---- summary codes: what the explorer plots and snapshots store -------------------------

    def summary_codes(self, layer: int, z: torch.Tensor) -> torch.Tensor:
        """(N, d) flat codes of a layer for PCA, UMAP, neighbours and directions: the code itself for a
        vector layer or a small map, a spatial average (spec.pool) for a large one."""
        p = self.layer_specs()[layer].pool
        return (F.avg_pool2d(z, p) if p > 1 else z).flatten(1)

    def summary_variances(self, layer: int, var: torch.Tensor) -> torch.Tensor:
        """q's variance of each summary code: the mean of p*p independent Gaussians has variance sum/(p*p)^2."""
        p = self.layer_specs()[layer].pool
        return (F.avg_pool2d(var, p) / (p * p) if p > 1 else var).flatten(1)

    def from_summary(self, layer: int, codes: torch.Tensor) -> torch.Tensor:
        """Codes of the layer's full shape from summary codes (each pooled value spread over its cells)."""
        spec = self.layer_specs()[layer]
        if len(spec.shape) != 3:
            return codes.reshape(-1, *spec.shape)
        c, h, w = spec.shape
        p = spec.pool
        small = codes.reshape(-1, c, h // p, w // p)
        return F.interpolate(small, scale_factor=p, mode="nearest") if p > 1 else small
