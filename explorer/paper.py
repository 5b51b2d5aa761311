"""What Sønderby et al. 2016 ("Ladder Variational Autoencoders") report, for side-by-side display.

Only numbers the paper's text and tables give are here. Its comparison of
VAE / VAE+BN / VAE+BN+WU / LVAE+BN+WU at 1-5 layers is a plot (Fig. 3) with no
printed values, so none are invented for it.
"""
from __future__ import annotations

import os
from pathlib import Path

from training.config import PAPER_HIDDEN, PAPER_LATENT, RunConfig
from training.errors import UserError
from training.reproduce import PAPER_MNIST as _PAPER_BY_KEY
from training.reproduce import load_results, summarize

PAPER = "Sønderby et al. 2016, Ladder Variational Autoencoders"

# Permutation-invariant MNIST, test log-likelihood estimated with 5000 importance samples (nats),
# as display names; the numbers live once, in training.reproduce (which tabulates against them).
_VARIANT_TEXT = {"plain": "", "finetuned": ", + fine-tuning", "finetuned+iw": ", + fine-tuning + IW training"}
PAPER_MNIST: dict[str, float] = {
    f"{model.upper()}, {layers} layers{_VARIANT_TEXT[variant]}": value
    for (model, layers, variant), value in _PAPER_BY_KEY.items()
}


def paper_reference(cfg: RunConfig) -> float | None:
    """The paper's MNIST test log p(x) for a run set up as the paper's LVAE+BN+WU, else None.

    Only the plain 5-layer LVAE+BN+WU with the paper's layer sizes and Bernoulli
    likelihood matches a reported number; fine-tuning is not something a
    RunConfig describes, so the two fine-tuned results are never returned.
    """
    matches = (cfg.dataset == "mnist" and cfg.label == "LVAE+BN+WU" and cfg.layers == 5
               and cfg.likelihood == "bernoulli" and cfg.iw_samples == 1
               and list(cfg.hidden_sizes) == list(PAPER_HIDDEN) and list(cfg.latent_sizes) == list(PAPER_LATENT))
    return PAPER_MNIST["LVAE+BN+WU, 5 layers"] if matches else None


RESULTS_ENV = "LVAE_RESULTS_DIR"


def reproductions(results_dir: Path | None = None) -> dict[str, list[dict]]:
    """Summaries of `python -m training reproduce` results (results/paper-<dataset>.json), by dataset.

    Unreadable files are skipped: the Compare page shows what it can.
    """
    folder = Path(results_dir or os.environ.get(RESULTS_ENV) or "results")
    out = {}
    for path in sorted(folder.glob("paper-*.json")) if folder.is_dir() else []:
        dataset = path.stem[len("paper-"):]
        try:
            results = load_results(path)
            out[dataset] = summarize(results, dataset) if results else []
        except (UserError, KeyError, TypeError, ValueError):
            continue
    return {d: rows for d, rows in out.items() if rows}
