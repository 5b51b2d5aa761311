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
from training.paper import PAPER_MNIST as _PAPER_BY_KEY
from training.paper import PAPER_PIXEL_SCALE, paper_iw_ll
from training.reproduce import load_results, summarize

PAPER = "Sønderby et al. 2016, Ladder Variational Autoencoders"

# Permutation-invariant MNIST, test log-likelihood estimated with 5000 importance samples (nats),
# as display names; the numbers live once, in training.reproduce (which tabulates against them).
_STAGE_TEXT = {"base": "", "finetune": ", + fine-tuning", "finetune+iw": ", + fine-tuning + IW training"}
PAPER_MNIST: dict[str, float] = {
    f"{model.upper()}, {layers} layers{_STAGE_TEXT[stage]}": value
    for (model, layers, stage), value in _PAPER_BY_KEY.items()
}


def paper_reference(cfg: RunConfig) -> float | None:
    """The paper's MNIST test log p(x) for a run set up as the paper's LVAE+BN+WU base stage, else None.

    Only the 5-layer LVAE+BN+WU with the paper's layer sizes, Bernoulli likelihood and one training
    sample matches a reported number; a run folder does not say which fine-tuning stage it is (the
    reproduce table does), so the two fine-tuned numbers are never returned here.
    """
    if cfg.dataset != "mnist" or cfg.label != "LVAE+BN+WU" or cfg.likelihood != "bernoulli" or cfg.init_from \
            or list(cfg.arch.hidden_sizes) != list(PAPER_HIDDEN) or list(cfg.arch.latent_sizes) != list(PAPER_LATENT):
        return None
    return paper_iw_ll(cfg.dataset, "lvae+bn+wu", cfg.layers, "base", cfg.mc_samples, cfg.iw_samples)


def scale_note(cfg: RunConfig) -> str:
    """How the run's pixels compare with the paper's (bytes/256), for every place that sets our number beside it."""
    if cfg.dataset not in ("mnist", "fashion-mnist"):
        return ""
    if cfg.pixel_scale == PAPER_PIXEL_SCALE:
        return f"pixels at bytes/{cfg.pixel_scale}, as the authors' data"
    return (f"pixels at bytes/{cfg.pixel_scale}, not the authors' /{PAPER_PIXEL_SCALE}: binarizing adds 1.3 nats less "
            "noise per image, so this number is about 1.3 nats too flattering beside the paper's")


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
