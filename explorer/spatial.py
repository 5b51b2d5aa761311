"""Views of a hierarchy with spatial latents (NVAE, VDVAE, any family whose layers are (C, H, W) maps), for one
image: where each layer spends its nats, and what each layer controls.

- `kl_maps`: the KL of every layer at each position, summed over channels (nats), on the posterior's mean path
  (each layer's q and p given the means of the layers above): which part of the image a layer pays to encode.
- `control_maps`: keep the layers above one layer at the image's posterior, draw that layer N times from its
  prior, the layers below at their prior mean, and take the per-pixel standard deviation of the N images: what
  that layer decides, as a map (the idea of the jlatko/vdvae fork's visualize_sampling.py).
Layers are 0-based (z1 nearest the image), as everywhere in the explorer.
"""
from __future__ import annotations

import numpy as np
import torch

from training.evaluate import eval_mode
from training.models import LatentHierarchy

from .encode import as_tensor


def spatial_layers(model: LatentHierarchy) -> list[int]:
    """The layers whose codes are (C, H, W) maps."""
    return [i for i, spec in enumerate(model.layer_specs()) if len(spec.shape) == 3]


def pooling_note(model: LatentHierarchy) -> str:
    """What the projections of a spatial hierarchy plot, where it is not the code itself: "z1, z2: 4x14x14 =
    784 variates each, shown as the 196 means of their 2x2 cells" (the summary codes; active counts there are
    of those means, the eval's A_u of the variates). "" when every layer is shown whole."""
    by_form: dict[tuple, list[str]] = {}
    for spec in model.layer_specs():
        if spec.pool > 1:
            by_form.setdefault((spec.shape, spec.pool, spec.summary_units), []).append(spec.name)
    note = "; ".join(f"{', '.join(names)}: {'x'.join(map(str, shape))} = {np.prod(shape):,} variates"
                     f"{' each' if len(names) > 1 else ''}, shown as the {units:,} means of their {p}x{p} cells "
                     "(active counts here are of those means)"
                     for (shape, p, units), names in by_form.items())
    if model.has_codebooks:  # the codes themselves are on their own page
        note += ("; " if note else "") + ("a layer of codes is plotted as its code vectors (averaged as said); each "
                                          "image's code map, its codebook and code swaps are on the Codes page")
    return note


def kl_maps(model: LatentHierarchy, image: np.ndarray) -> dict[int, np.ndarray]:
    """{layer: (H_i, W_i) KL per position, nats, summed over channels} of one image, for every spatial layer."""
    layers = spatial_layers(model)
    with eval_mode(model):
        posterior = model.posterior(as_tensor(np.reshape(image, (1, -1)), model), mean_path=True)
        # each layer's rate per unit (training.models.layers: the analytic KL of a Gaussian layer given the
        # layers above, -log p of a code spread over its numbers for a categorical one)
        return {i: posterior[i].kl()[0].sum(0).cpu().numpy().astype(np.float64) for i in layers}


def control_maps(model: LatentHierarchy, image: np.ndarray, n: int = 16, seed: int = 0) -> dict[int, np.ndarray]:
    """{layer: (H, W) per-pixel standard deviation of n images} for every layer: the layers above it at the
    image's posterior (mean path), it drawn n times from its prior, those below at their prior mean."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    with eval_mode(model):
        codes = [q.z for q in model.posterior(as_tensor(np.reshape(image, (1, -1)), model), mean_path=True)]
        for layer in range(model.n_layers):
            fixed = {i: codes[i] for i in range(layer + 1, model.n_layers)}
            temps = [0.0] * layer + [1.0] + [1.0] * (model.n_layers - layer - 1)  # below: their mean
            images = model.generate(n, fixed, temperature=temps, generator=g).images  # (n, C, H, W)
            out[layer] = images.std(0).mean(0).cpu().numpy().astype(np.float64)  # over the draws, then channels
    return out
