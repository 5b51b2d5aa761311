"""The discrete layers of a model with codebooks (VQ-VAE): an image's codes as a grid per layer, what the prior
makes of each cell, one code swapped and the image decoded again (the discrete Traverse), and the codebook's use
over test images. Layers are 0-based (z1 nearest the image), as everywhere in the explorer; through the model
interface only (LatentHierarchy.codebook, code_log_probs, posterior, decode).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from training.evaluate import eval_mode
from training.models import LatentHierarchy
from training.models.interface import CATEGORICAL

from .encode import as_tensor, batch_rows


def categorical_layers(model: LatentHierarchy) -> list[int]:
    """The layers whose codes come from a codebook."""
    return [i for i, spec in enumerate(model.layer_specs()) if spec.kind == CATEGORICAL]


@dataclass
class CodeMap:
    """One image's codes: per layer its (h, w) code numbers and the prior's (K, h, w) log p of every code at every
    cell given the codes before it and the layers above (None for a Gaussian layer)."""
    index: list[np.ndarray | None]
    log_probs: list[np.ndarray | None]

    def surprise(self, layer: int) -> np.ndarray:
        """(h, w) -log p of the image's own code at every cell: the nats the prior pays there."""
        idx, lp = self.index[layer], self.log_probs[layer]
        assert idx is not None and lp is not None
        return -np.take_along_axis(lp, idx[None], 0)[0]

    def top_choices(self, layer: int, cell: tuple[int, int], k: int = 5) -> list[tuple[int, float]]:
        """The prior's k most likely codes at a cell, given what comes before it: [(code, probability)]."""
        lp = self.log_probs[layer]
        assert lp is not None
        column = lp[:, cell[0], cell[1]]
        order = np.argsort(-column)[:k]
        return [(int(c), float(np.exp(column[c]))) for c in order]


def _indices(index: Sequence[np.ndarray | None], device) -> list[torch.Tensor]:
    return [torch.as_tensor(np.zeros((1, 1, 1), np.int64) if i is None else np.asarray(i)[None], device=device)
            for i in index]


def code_map(model: LatentHierarchy, image: np.ndarray) -> CodeMap:
    """The codes of one image (its posterior, which is deterministic for a codebook) and the prior at every cell."""
    cats = categorical_layers(model)
    with eval_mode(model):
        layers = model.posterior(as_tensor(np.reshape(image, (1, -1)), model), mean_path=True)
        index = [layers[i].index[0].cpu().numpy() if i in cats else None for i in range(model.n_layers)]
        device = layers[0].z.device
        log_probs = [model.code_log_probs(i, _indices(index, device))[0].cpu().numpy() if i in cats else None
                     for i in range(model.n_layers)]
    return CodeMap(index, log_probs)


def with_code(cm: CodeMap, layer: int, cell: tuple[int, int], code: int) -> list[np.ndarray | None]:
    """The image's codes with one cell of one layer changed."""
    index = [None if i is None else i.copy() for i in cm.index]
    target = index[layer]
    assert target is not None
    target[cell] = code
    return index


def decode_codes(model: LatentHierarchy, index: Sequence[np.ndarray | None]) -> np.ndarray:
    """(C*H*W,) the image decoded from every categorical layer's codes (the others at the prior's most likely)."""
    with eval_mode(model):
        fixed = {}
        for i, idx in enumerate(index):
            if idx is not None:
                book = model.codebook(i)
                fixed[i] = book[torch.as_tensor(np.asarray(idx), device=book.device)].permute(2, 0, 1)[None]
        return model.decode(fixed, 1)[0].reshape(-1).cpu().numpy()


@dataclass
class CodebookUse:
    """One categorical layer's codebook over test images: its vectors projected to two axes, how often each code was
    chosen, and the class it most often appears in (-1: never chosen)."""
    xy: np.ndarray        # (K, 2)
    axes: list[str]       # the two axes' titles ("PC1", "UMAP 1", ...)
    counts: np.ndarray    # (K,)
    top_class: np.ndarray  # (K,)
    share: np.ndarray     # (K,) the fraction of the code's uses that fall in images of its top class


def codebook_use(model: LatentHierarchy, layer: int, images: np.ndarray, labels: np.ndarray,
                 method: str = "PCA") -> CodebookUse:
    """How the test images use one layer's codebook, and where its codes lie (the code vectors projected by
    `method`, one of explorer.projections.METHODS)."""
    from .projections import project
    k = model.layer_specs()[layer].codebook
    classes = int(labels.max()) + 1 if len(labels) else 1
    per_class = np.zeros((k, classes), np.int64)
    with eval_mode(model):
        for start in range(0, len(images), rows := batch_rows(model)):
            q = model.posterior(as_tensor(images[start:start + rows], model), mean_path=True)[layer]
            idx = q.index.reshape(q.index.shape[0], -1).cpu().numpy()
            for c in range(classes):
                per_class[:, c] += np.bincount(idx[labels[start:start + rows] == c].ravel(), minlength=k)
        vectors = model.codebook(layer).cpu().numpy().astype(np.float64)
    counts = per_class.sum(1)
    top = np.where(counts > 0, per_class.argmax(1), -1)
    share = np.where(counts > 0, per_class.max(1) / np.maximum(counts, 1), 0.0)
    projection = project(vectors, method, k=2)
    return CodebookUse(projection.coords, projection.axes, counts, top, share)
