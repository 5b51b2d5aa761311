"""What Sønderby et al. 2016 report for MNIST, and which of our results each number may stand beside.

Table 1 (permutation-invariant MNIST, 5 layers, test log-likelihood by 5000 importance samples):
LVAE+BN+WU -82.12; + fine-tuning -81.84; + fine-tuning + IW training -81.74. The VAE/LVAE grid at
1..5 layers is only plotted (Fig. 3), so it is not quoted. The stages are our reading of the text
(the released code has no fine-tuning; ../shared/reference/lvae-authors.md): fine-tuning continues
the trained model with beta 1, lr x0.75 every 200 epochs and 10 Monte-Carlo samples; "+ IW" the
same with 10 importance samples.
"""
from __future__ import annotations

STAGES = ("base", "finetune", "finetune+iw")
PAPER_MNIST = {
    ("lvae+bn+wu", 5, "base"): -82.12,
    ("lvae+bn+wu", 5, "finetune"): -81.84,
    ("lvae+bn+wu", 5, "finetune+iw"): -81.74,
}
# The training samples (Monte-Carlo M, importance K) each stage of the paper used, as we read it.
PAPER_STAGE_SAMPLES = {"base": (1, 1), "finetune": (10, 1), "finetune+iw": (1, 10)}
# The authors' pixel scale (bytes/256); numbers at bytes/255 are about 1.3 nats too flattering beside theirs.
PAPER_PIXEL_SCALE = 256
LEGACY_STAGES = {"plain": "base", "finetuned": "finetune", "finetuned+iw": "finetune+iw"}


def paper_iw_ll(dataset: str, model: str, layers: int, stage: str, train_mc_samples: int,
                train_iw_samples: int, base_iw_samples: int = 1) -> float | None:
    """The paper's number for exactly this (model, layers, stage, training samples) on MNIST, else None.

    A base trained with K > 1, a fine-tune with other sample counts, or one that started from an
    IW-trained base is a different procedure from the paper's row, so it gets no number.
    """
    if dataset != "mnist" or PAPER_STAGE_SAMPLES.get(stage) != (train_mc_samples, train_iw_samples):
        return None
    if stage != "base" and base_iw_samples != 1:
        return None
    return PAPER_MNIST.get((model, layers, stage))
