"""Depth: which variates carry the image, and how much each depth decides (issue 30; any family).

- `variate_kl`: every variate's mean KL over test images (Efficient-VDVAE's div_stats): a layer's variates are
  its units (a vector layer) or its channels x positions (a spatial one).
- `top_variates`: the variates that hold the largest KL, the top q of them over all layers, and the share of
  the total KL they hold.
- `masked_decode`: an image decoded with only those variates kept from its posterior, the rest drawn from the
  prior in the same top-down pass (or set to the prior's mean): Efficient-VDVAE's masked reconstruction.
  Kept variates keep the values the image's own posterior gave them.
- `layers_in_use`: the layers with a mean KL of at least 1e-4 nats (Efficient-VDVAE's "active groups").
- `kl_share`: the cumulative share of the KL from the top layer down, per layer and per resolution
  (VDVAE's Fig. 4: how much of the code each depth carries).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.evaluate import eval_mode
from training.models import LatentHierarchy
from training.objectives import count_layers_in_use, evaluate_elbo

from .encode import as_tensor


def variate_kl(model: LatentHierarchy, images: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """Per layer (z1 first), every variate's KL in nats, averaged over the images (one posterior sample each,
    seeded; a layer whose KL has no closed form scores log q - log p at the sample, as the ELBO does)."""
    x = as_tensor(images, model)
    with eval_mode(model):
        stats = evaluate_elbo(model, x, generator=torch.Generator().manual_seed(seed))
    return [k.double().cpu().numpy() / len(images) for k in stats.kl_per_unit]


@dataclass(frozen=True)
class Kept:
    masks: list[np.ndarray]  # per layer (z1 first), True where a variate is kept
    count: int               # variates kept, of
    total: int               # all variates
    kl_share: float          # the share of the total KL the kept variates hold


def top_variates(kl: list[np.ndarray], q: float) -> Kept:
    """The top fraction q (0..1) of all variates by mean KL; ties broken by position, at least none."""
    flat = np.concatenate([k.ravel() for k in kl])
    count = int(round(float(np.clip(q, 0.0, 1.0)) * flat.size))
    order = np.argsort(-flat, kind="stable")
    keep = np.zeros(flat.size, dtype=bool)
    keep[order[:count]] = True
    total_kl = float(np.clip(flat, 0, None).sum())
    share = float(np.clip(flat[keep], 0, None).sum()) / total_kl if total_kl > 0 else 0.0
    masks, start = [], 0
    for k in kl:
        masks.append(keep[start:start + k.size].reshape(k.shape))
        start += k.size
    return Kept(masks, count, flat.size, share)


def masked_decode(model: LatentHierarchy, image: np.ndarray, masks: list[np.ndarray], n: int = 1,
                  prior_mean: bool = False, seed: int = 0) -> np.ndarray:
    """(n, D) images: the image's posterior sample kept where `masks` says, every other variate drawn from the
    prior in one top-down pass (n draws, seeded), or the prior's mean with prior_mean (then n = 1 suffices)."""
    g = torch.Generator().manual_seed(seed)
    with eval_mode(model):
        layers = model.posterior(as_tensor(np.reshape(image, (1, -1)), model), generator=g)
        fixed = {}
        for i, (q, mask) in enumerate(zip(layers, masks)):
            keep = torch.as_tensor(mask.reshape(q.z.shape[1:]), device=q.z.device)
            fixed[i] = torch.where(keep, q.z, torch.full_like(q.z, float("nan")))
        images = model.generate(n, fixed, use_mean=prior_mean, generator=g).images
    return images.reshape(n, -1).cpu().numpy()


@dataclass(frozen=True)
class Share:
    layers: list[str]            # top first
    by_layer: np.ndarray         # cumulative share of the total KL, top layer first
    resolutions: list[str]       # from the coarsest; "vector" for layers without one
    by_resolution: np.ndarray    # each resolution's share of the total KL (not cumulative)


def kl_share(model: LatentHierarchy, kl_per_layer: list[float]) -> Share:
    """How much of the KL each depth holds: cumulative from the top layer down, and per resolution."""
    specs = model.layer_specs()
    kl = np.clip(np.asarray(kl_per_layer, dtype=float), 0, None)
    total = kl.sum() or 1.0
    top_first = kl[::-1]
    res_names = ["vector" if s.resolution is None else f"{s.resolution}x{s.resolution}" for s in specs]
    order = sorted(set(res_names), key=lambda r: (r != "vector", int(r.split("x")[0]) if r != "vector" else 0))
    per_res = np.array([sum(k for k, r in zip(kl, res_names) if r == name) for name in order]) / total
    return Share([s.name for s in specs][::-1], np.cumsum(top_first) / total, order, per_res)


def layers_in_use(kl: list[np.ndarray]) -> int:
    """Efficient-VDVAE's "active groups" (training.objectives.count_layers_in_use) from variate_kl's per-layer
    arrays: a layer's KL is its variates' summed."""
    return count_layers_in_use([float(np.sum(k)) for k in kl])


def layer_groups(resolutions: list[int | None], per_view: int) -> list[tuple[int, int, str]]:
    """How a deep model's layers (z1 first, with their spatial resolution or None) are shown a group at a time:
    runs of layers at one resolution, cut into pieces of at most per_view; each (first, last + 1, its name)."""
    groups: list[tuple[int, int, str]] = []
    start = 0
    for i in range(1, len(resolutions) + 1):
        if i == len(resolutions) or resolutions[i] != resolutions[start]:
            res = resolutions[start]
            for s in range(start, i, per_view):
                e = min(i, s + per_view)
                name = f"z{s + 1}" if e == s + 1 else f"z{s + 1}–z{e}"
                groups.append((s, e, name if res is None else f"{name} · {res}x{res}"))
            start = i
    return groups
