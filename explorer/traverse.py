"""What each latent layer encodes: decode from any layer, walk along its principal directions, sample.

All decoding goes through the model interface's top-down pass (LatentHierarchy.generate): the fixed
layers keep their codes, the free ones below take p's mean given what lies above. Layers are 0-based
here (z_1 is layer 0). Codes are summary codes (LatentHierarchy.summary_codes: for a vector layer the
code itself). Images are the decoder's mean (pixel probabilities), never sampled pixels, so a traversal
shows the change of the code and not Bernoulli noise; they come back flat, (n, C*H*W).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from training.evaluate import eval_mode
from training.models import LatentHierarchy

from .encode import LayerPCA, as_tensor, batch_rows, device_of


def _flat(images: torch.Tensor) -> np.ndarray:
    return images.flatten(1).cpu().numpy()


def _n_pixels(model: LatentHierarchy) -> int:
    c, h, w = model.image_shape
    return c * h * w


def decode_layer(model: LatentHierarchy, layer: int, z: np.ndarray,
                 whole: Sequence[torch.Tensor] | None = None) -> np.ndarray:
    """Images (n, D) in [0, 1] from summary codes z (n, d) at `layer`, the layers below at p's mean.

    whole: the start's whole codes of this layer and those above ((1, *shape) each, encode_full or prior_whole).
    A step then moves the start's code by the change of its summary, so a pooled layer keeps the start's detail
    within each cell (offset 0 decodes the start itself), and the layers above keep the start's codes (in NVAE and
    VDVAE the image depends on them beyond z). Without it, z is spread over its cells and the layers above take
    p's mean. Deterministic.
    """
    z = np.atleast_2d(np.asarray(z, dtype=np.float32))
    _check_layer(model, layer)
    units = model.layer_specs()[layer].summary_units
    if z.shape[1] != units:
        raise ValueError(f"layer {layer + 1} has {units} units, got codes of {z.shape[1]}")
    if not len(z):
        return np.zeros((0, _n_pixels(model)), np.float32)
    parts = []
    with eval_mode(model):
        own = whole[0].to(device_of(model)) if whole is not None else None
        fixed_above = {layer + 1 + j: w.to(device_of(model)) for j, w in enumerate(whole[1:] if whole is not None else [])}
        for s in range(0, len(z), rows := batch_rows(model)):
            step = as_tensor(z[s:s + rows], model)
            codes = model.from_summary(layer, step) if own is None else \
                own + model.from_summary(layer, step - model.summary_codes(layer, own))
            parts.append(_flat(model.decode({**fixed_above, layer: codes}, codes.shape[0], below="mean")))
    return np.concatenate(parts)


def along_directions(pca: LayerPCA, base: np.ndarray, offsets: Sequence[float] | np.ndarray) -> np.ndarray:
    """base + sum_j offsets[j] * sd[j] * components[j], offsets in standard deviations of the data.

    offsets may be shorter than the number of directions (the rest are 0), or
    2-D (m, j) for m points at once, which gives (m, units). Steps are in units
    of the test codes' spread, so a layer the data does not use (collapsed onto
    its prior) barely moves: that is what the traversal should show.
    """
    offsets = np.asarray(offsets, dtype=np.float32)
    j = offsets.shape[-1]
    if j > len(pca.sd):
        raise ValueError(f"{j} offsets for {len(pca.sd)} principal directions")
    steps = pca.sd[:j, None] * pca.components[:j]          # (j, units): one sd along each direction
    return np.asarray(base, dtype=np.float32) + offsets @ steps


def traversal_grid(model: LatentHierarchy, layer: int, pca: LayerPCA, base: np.ndarray,
                   steps: Sequence[float] | np.ndarray = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0),
                   whole: Sequence[torch.Tensor] | None = None) -> np.ndarray:
    """(k, len(steps), D): row j walks from base along principal direction j, one decode for all (from the start's
    whole codes: decode_layer)."""
    steps = np.asarray(steps, dtype=np.float32)
    k = pca.components.shape[0]
    offsets = np.zeros((k, len(steps), k), np.float32)
    for j in range(k):
        offsets[j, :, j] = steps
    codes = along_directions(pca, base, offsets.reshape(-1, k))
    return decode_layer(model, layer, codes, whole).reshape(k, len(steps), -1)


def summaries(model: LatentHierarchy, whole: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """Per-layer summary codes (d_i,) of one start's whole codes: what the pages plot and step along."""
    with torch.no_grad():
        return [model.summary_codes(i, z)[0].cpu().numpy() for i, z in enumerate(whole)]


def encode_full(model: LatentHierarchy, image: np.ndarray) -> list[torch.Tensor]:
    """Per-layer posterior means of one image along the mean path, each of its layer's whole shape (1, *shape):
    not the summary codes, whose pooled cells would decode as flat maps."""
    with eval_mode(model):
        return [q.z for q in model.posterior(as_tensor(np.reshape(image, (1, -1)), model), mean_path=True)]


def encode_one(model: LatentHierarchy, image: np.ndarray) -> list[np.ndarray]:
    """Per-layer posterior means (d_i,) of one image (mean path, summary codes): where a traversal starts."""
    return summaries(model, encode_full(model, image))


def prior_whole(model: LatentHierarchy, seed: int) -> list[torch.Tensor]:
    """Per-layer whole codes (1, *shape) of one prior sample: the top layer ~ N(0, I) (seeded), p's means below."""
    top_layer = model.n_layers - 1
    top = torch.randn(1, *model.layer_specs()[top_layer].shape, generator=torch.Generator().manual_seed(seed))
    with eval_mode(model):
        return list(model.generate(1, fixed={top_layer: top.to(device_of(model))}, use_mean=True).codes)


def prior_start(model: LatentHierarchy, seed: int) -> list[np.ndarray]:
    """Per-layer summary codes of one prior sample (prior_whole)."""
    return summaries(model, prior_whole(model, seed))


def interpolate(model: LatentHierarchy, image_a: np.ndarray, image_b: np.ndarray, layer: int | None = None,
                steps: int = 9) -> np.ndarray:
    """(steps, D): images along the straight path between two images' posterior means.

    layer None: every layer's code moves at once, and the ends are the two reconstructions. layer i: only
    z_i moves, the layers above stay at image a's codes and those below take p's mean, as a traversal. The path
    runs between the whole codes, so a pooled layer keeps each image's detail within its cells (the summary codes
    the pages plot move along the same straight line: pooling is linear).
    """
    if steps < 2:
        raise ValueError("an interpolation needs at least 2 steps")
    if layer is not None:
        _check_layer(model, layer)
    a, b = encode_full(model, image_a), encode_full(model, image_b)
    moving = range(len(a)) if layer is None else [layer]
    with eval_mode(model):
        t = torch.linspace(0.0, 1.0, steps, device=a[0].device)
        fixed = {i: (1 - t.view(-1, *[1] * (a[i].dim() - 1))) * a[i] + t.view(-1, *[1] * (a[i].dim() - 1)) * b[i]
                 for i in moving}
        if layer is not None:
            fixed.update({i: a[i] for i in range(layer + 1, len(a))})
        return _flat(model.decode(fixed, steps, below="mean"))


def interpolation_strips(model: LatentHierarchy, image_a: np.ndarray, image_b: np.ndarray,
                         steps: int = 9) -> dict[str, np.ndarray]:
    """{"all layers": (steps, D), "z1": ..., "zL": ...}: the path between two images in all layers at once,
    then in one layer at a time (explorer.traverse.interpolate)."""
    strips = {"all layers": interpolate(model, image_a, image_b, None, steps)}
    for layer, spec in enumerate(model.layer_specs()):
        strips[spec.name] = interpolate(model, image_a, image_b, layer, steps)
    return strips


def along_mean_difference(start: np.ndarray, mean_a: np.ndarray, mean_b: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """start + t (mean_b - mean_a): (units,) for a scalar t, (len(t), units) for several. With start = mean_a,
    t = 0 is set A's mean code and t = 1 set B's (class means, or two selections' means)."""
    d = np.asarray(mean_b, dtype=np.float32) - np.asarray(mean_a, dtype=np.float32)
    t = np.asarray(t, dtype=np.float32)
    return np.asarray(start, dtype=np.float32) + (t[..., None] * d if t.ndim else t * d)


def reconstruct(model: LatentHierarchy, images: np.ndarray) -> np.ndarray:
    """The decoder's mean at each image's posterior-mean path (every layer fixed there): (n, D) in [0, 1]."""
    images = np.atleast_2d(np.asarray(images, dtype=np.float32))
    out = []
    with eval_mode(model):
        for s in range(0, len(images), rows := batch_rows(model)):
            layers = model.posterior(as_tensor(images[s:s + rows], model), mean_path=True)
            out.append(_flat(model.decode({i: q.z for i, q in enumerate(layers)}, layers[0].z.shape[0])))
    return np.concatenate(out) if out else np.zeros((0, _n_pixels(model)), np.float32)


def prior_samples(model: LatentHierarchy, n: int, temperature: float | Sequence[float] = 1.0,
                  seed: int = 0) -> np.ndarray:
    """n images from p: the top layer ~ N(0, T_L^2 I), then each below ~ N(mu_p, T_i^2 var_p); T = 0 gives
    the mean path. temperature: one T for every layer, or one per layer (z_1 first)."""
    # Noise from a CPU generator: the same seed gives the same images on any device.
    g = torch.Generator().manual_seed(seed)
    temps = float(temperature) if isinstance(temperature, (int, float)) else [float(t) for t in temperature]
    with eval_mode(model):
        return _flat(model.generate(n, temperature=temps, generator=g).images)


def temperature_ramp(top: float, bottom: float, n_layers: int) -> list[float]:
    """One temperature per layer (z_1 first), linear from `bottom` at z_1 to `top` at z_L: a deep model's
    samples tempered in its upper layers and free in its lower ones, or the other way round."""
    if n_layers == 1:
        return [float(top)]
    return [float(bottom + (top - bottom) * i / (n_layers - 1)) for i in range(n_layers)]


def temperatures_by_resolution(resolutions: Sequence[int | None], by_resolution: dict) -> list[float]:
    """One temperature per layer (z_1 first) from one per spatial resolution (layers without one: key None)."""
    return [float(by_resolution[r]) for r in resolutions]


def hierarchy_decomposition(model: LatentHierarchy, image: np.ndarray, keep_top: int, n: int = 8,
                            seed: int = 0, temperature: float = 1.0) -> np.ndarray:
    """(n, D): the image's posterior sample kept in the top `keep_top` layers, the layers below resampled from p
    at `temperature` (how much each depth decides: openai/vdvae's write_images).

    keep_top = L reproduces one reconstruction n times; keep_top = 0 gives plain
    prior samples. In between, what stays the same across the n images is what
    the kept layers decide (cf. Sønderby et al. 2016, Sec. 3.2: which layers carry
    information).
    """
    n_layers = model.n_layers
    if not 0 <= keep_top <= n_layers:
        raise ValueError(f"keep_top must be between 0 and {n_layers}, got {keep_top}")
    g = torch.Generator().manual_seed(seed)
    with eval_mode(model):
        layers = model.posterior(as_tensor(np.reshape(image, (1, -1)), model), generator=g)
        fixed = {i: layers[i].z for i in range(n_layers - keep_top, n_layers)}
        return _flat(model.generate(n, fixed, temperature=float(temperature), generator=g).images)


def _check_layer(model: LatentHierarchy, layer: int) -> None:
    if not 0 <= layer < model.n_layers:
        raise ValueError(f"layer must be between 0 and {model.n_layers - 1} (z_1..z_{model.n_layers}), got {layer}")
