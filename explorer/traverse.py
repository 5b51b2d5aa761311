"""What each latent layer encodes: decode from any layer, walk along its principal directions, sample.

All decoding goes through the generative model p of Sønderby et al. 2016:
z_L -> z_{L-1} -> ... -> z_1 -> x. Layers are 0-based here (z_1 is layer 0).
Images are the decoder's mean E[x|z_1] (pixel probabilities), never sampled
pixels, so a traversal shows the change of the code and not Bernoulli noise.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from training.model import HierarchicalVAE

from .encode import BATCH, LayerPCA, as_tensor, device_of, evaluating


def _mean_path_down(model: HierarchicalVAE, layer: int, z: torch.Tensor) -> torch.Tensor:
    """z_1 reached from z at `layer` by taking the mean of p(z_i|z_{i+1}) at every layer below."""
    return model.generative.top_down(z.shape[0], fixed={layer: z}, use_mean=True, like=z)[0]


def _images(model: HierarchicalVAE, z1: torch.Tensor) -> np.ndarray:
    return model.generative.decode(z1).clamp(0.0, 1.0).cpu().numpy()


def decode_layer(model: HierarchicalVAE, layer: int, z: np.ndarray) -> np.ndarray:
    """Images (n, D) in [0, 1] from codes z (n, units) at `layer`, the layers below at p's mean.

    Deterministic, and it only runs the part of the network below `layer`: one
    traversal slider move costs a few small matrix products.
    """
    z = np.atleast_2d(np.asarray(z, dtype=np.float32))
    _check_layer(model, layer)
    if z.shape[1] != model.cfg.latent_sizes[layer]:
        raise ValueError(f"layer {layer + 1} has {model.cfg.latent_sizes[layer]} units, got codes of {z.shape[1]}")
    if not len(z):
        return np.zeros((0, model.cfg.input_dim), np.float32)
    with evaluating(model):
        parts = [_images(model, _mean_path_down(model, layer, as_tensor(z[s:s + BATCH], model)))
                 for s in range(0, len(z), BATCH)]
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


def traversal_grid(model: HierarchicalVAE, layer: int, pca: LayerPCA, base: np.ndarray,
                   steps: Sequence[float] | np.ndarray = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)) -> np.ndarray:
    """(k, len(steps), D): row j walks from base along principal direction j, one decode for all."""
    steps = np.asarray(steps, dtype=np.float32)
    k = pca.components.shape[0]
    offsets = np.zeros((k, len(steps), k), np.float32)
    for j in range(k):
        offsets[j, :, j] = steps
    codes = along_directions(pca, base, offsets.reshape(-1, k))
    return decode_layer(model, layer, codes).reshape(k, len(steps), -1)


def encode_one(model: HierarchicalVAE, image: np.ndarray) -> list[np.ndarray]:
    """Per-layer posterior means (units_i,) of one image: where a traversal of that image starts."""
    with evaluating(model):
        zs = model.encode(as_tensor(np.reshape(image, (1, -1)), model), sample=False)
    return [z[0].cpu().numpy() for z in zs]


def prior_start(model: HierarchicalVAE, seed: int) -> list[np.ndarray]:
    """Per-layer z of one prior sample: z_L ~ N(0, I) (seeded), p's means below it."""
    top = torch.randn(1, model.cfg.latent_sizes[-1], generator=torch.Generator().manual_seed(seed))
    with evaluating(model):
        zs = model.generative.top_down(1, fixed={model.cfg.layers - 1: top.to(device_of(model))}, use_mean=True)
    return [z[0].cpu().numpy() for z in zs]


def interpolate(model: HierarchicalVAE, image_a: np.ndarray, image_b: np.ndarray, layer: int | None = None,
                steps: int = 9) -> np.ndarray:
    """(steps, D): images along the straight path between two images' posterior means.

    layer None: every layer's code moves at once; the image depends on z_1 alone, so this is the path
    in z_1, and its ends are the two reconstructions. layer i: only z_i moves (the layers above stay at
    image a's codes, which then change nothing below), the layers below at p's mean, as a traversal.
    """
    if steps < 2:
        raise ValueError("an interpolation needs at least 2 steps")
    at = 0 if layer is None else layer
    _check_layer(model, at)
    a, b = encode_one(model, image_a)[at], encode_one(model, image_b)[at]
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return decode_layer(model, at, (1 - t) * a + t * b)


def interpolation_strips(model: HierarchicalVAE, image_a: np.ndarray, image_b: np.ndarray,
                         steps: int = 9) -> dict[str, np.ndarray]:
    """{"all layers": (steps, D), "z1": ..., "zL": ...}: the path between two images in all layers at once,
    then in one layer at a time (explorer.traverse.interpolate)."""
    strips = {"all layers": interpolate(model, image_a, image_b, None, steps)}
    for layer in range(model.cfg.layers):
        strips[f"z{layer + 1}"] = interpolate(model, image_a, image_b, layer, steps)
    return strips


def along_mean_difference(start: np.ndarray, mean_a: np.ndarray, mean_b: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """start + t (mean_b - mean_a): (units,) for a scalar t, (len(t), units) for several. With start = mean_a,
    t = 0 is set A's mean code and t = 1 set B's (class means, or two selections' means)."""
    d = np.asarray(mean_b, dtype=np.float32) - np.asarray(mean_a, dtype=np.float32)
    t = np.asarray(t, dtype=np.float32)
    return np.asarray(start, dtype=np.float32) + (t[..., None] * d if t.ndim else t * d)


def reconstruct(model: HierarchicalVAE, images: np.ndarray) -> np.ndarray:
    """E[x|z_1] at the posterior-mean path of each image: (n, D) in [0, 1]."""
    images = np.atleast_2d(np.asarray(images, dtype=np.float32))
    out = []
    with evaluating(model):
        for s in range(0, len(images), BATCH):
            out.append(_images(model, model.encode(as_tensor(images[s:s + BATCH], model), sample=False)[0]))
    return np.concatenate(out) if out else np.zeros((0, model.cfg.input_dim), np.float32)


def prior_samples(model: HierarchicalVAE, n: int, temperature: float | Sequence[float] = 1.0,
                  seed: int = 0) -> np.ndarray:
    """n images from p: z_L ~ N(0, T_L^2 I), then z_i ~ N(mu_p, T_i^2 var_p); T = 0 gives the mean path.
    temperature: one T for every layer, or one per layer (z_1 first)."""
    # Noise from a CPU generator: the same seed gives the same images on any device.
    g = torch.Generator().manual_seed(seed)
    temps = float(temperature) if isinstance(temperature, (int, float)) else [float(t) for t in temperature]
    with evaluating(model):
        return _images(model, model.generative.top_down(n, temperature=temps, generator=g)[0])


def hierarchy_decomposition(model: HierarchicalVAE, image: np.ndarray, keep_top: int, n: int = 8,
                            seed: int = 0) -> np.ndarray:
    """(n, D): the image's posterior sample kept in the top `keep_top` layers, the layers below resampled from p.

    keep_top = L reproduces one reconstruction n times; keep_top = 0 gives plain
    prior samples. In between, what stays the same across the n images is what
    the kept layers decide (cf. Sønderby et al. 2016, Sec. 3.2: which layers carry
    information).
    """
    n_layers = model.cfg.layers
    if not 0 <= keep_top <= n_layers:
        raise ValueError(f"keep_top must be between 0 and {n_layers}, got {keep_top}")
    g = torch.Generator().manual_seed(seed)
    with evaluating(model):
        zs = model.encode(as_tensor(np.reshape(image, (1, -1)), model), sample=True, generator=g)
        fixed = {i: zs[i] for i in range(n_layers - keep_top, n_layers)}
        return _images(model, model.generative.top_down(n, fixed, generator=g)[0])


def _check_layer(model: HierarchicalVAE, layer: int) -> None:
    if not 0 <= layer < model.cfg.layers:
        raise ValueError(f"layer must be between 0 and {model.cfg.layers - 1} (z_1..z_{model.cfg.layers}), got {layer}")
