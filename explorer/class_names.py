"""The classes' names where a dataset has them (Fashion-MNIST's ten), for legends and captions.

MNIST and digits are named by their digits, Omniglot's labels are alphabet numbers: both stay numbers.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    # Xiao et al. 2017, the labels of the IDX files in this order
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
}


def class_name(dataset: str | None, label: int) -> str:
    """"3" for MNIST's 3, "Dress" for Fashion-MNIST's 3."""
    names = CLASS_NAMES.get(dataset or "")
    return names[int(label)] if names and 0 <= int(label) < len(names) else str(int(label))


def named_labels(dataset: str | None, labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """The labels as a figure's legend should show them: names where the dataset has them, else the labels."""
    names = CLASS_NAMES.get(dataset or "")
    labels = np.asarray(labels)
    return np.asarray(names, dtype=object)[labels] if names else labels
