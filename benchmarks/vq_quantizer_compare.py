"""Our quantiser (training/models/quantize.py) against vector-quantize-pytorch at the classic settings, in the same
VQ-VAE: codebook use and reconstruction after the same steps on the same batches.

    pip install vector-quantize-pytorch   # not a dependency of the project: this benchmark only
    python benchmarks/vq_quantizer_compare.py --data-dir ../shared/data/mnist [--epochs 2] [--threads 1]

Both train the two-level MNIST VQ-VAE's encoder, decoder and codebooks (not the priors: the quantiser does not touch
them) on -log p(x|z_q) + 0.25 ||z_e - sg[e]||^2 (our sum over elements, the same loss for both), with the EMA update
at decay 0.99, no rotation trick and dead codes revived under an EMA use of 1 (vector-quantize-pytorch:
VectorQuantize(decay=0.99, rotation_trick=False, threshold_ema_dead_code=1, commitment_weight=0), its own loss left
out so that the objective is ours in both). Reported on the binarized test set: reconstruction nats per image, codes
used per level, perplexity, and seconds per step.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from training.config import RunConfig  # noqa: E402
from training.data import load_dataset  # noqa: E402
from training.distributions import bernoulli_log_likelihood  # noqa: E402
from training.evaluate import test_tensors  # noqa: E402
from training.models import build_model  # noqa: E402
from training.models.quantize import commitment_loss, perplexity  # noqa: E402


class LibraryCodebook(nn.Module):
    """vector-quantize-pytorch's VectorQuantize behind our Codebook's call: z_e (N, D, H, W) -> (z_q, indices)."""

    def __init__(self, codes: int, dim: int):
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize
        self.vq = VectorQuantize(dim=dim, codebook_size=codes, decay=0.99, rotation_trick=False,
                                 threshold_ema_dead_code=1, commitment_weight=0.0, accept_image_fmap=True)
        self.codes = codes

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z_q, index, _ = self.vq(z_e)
        return z_q, index


def train_and_measure(quantiser: str, data, cfg: RunConfig, epochs: int, seed: int) -> dict:
    torch.manual_seed(seed)
    model = build_model(cfg)
    if quantiser == "library":
        model.books = nn.ModuleList(LibraryCodebook(k, cfg.arch.code_dim) for k in cfg.arch.codes)
    params = [p for name, p in model.named_parameters() if not name.startswith("priors.")]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    train_x = torch.as_tensor(data.train_x)
    gen = torch.Generator().manual_seed(seed)
    steps, t0 = 0, time.perf_counter()
    model.train()
    for _ in range(epochs):
        xs = torch.bernoulli(train_x, generator=gen)
        order = torch.randperm(xs.shape[0], generator=gen)
        for b in range(xs.shape[0] // cfg.batch_size):
            x = xs[order[b * cfg.batch_size:(b + 1) * cfg.batch_size]]
            z_e, z_q, _ = model._encode(x)
            log_px = bernoulli_log_likelihood(model.images_in(x), model._logits(z_q)).flatten(1).sum(1)
            loss = (-log_px + cfg.arch.commitment * sum(commitment_loss(e, q) for e, q in zip(z_e, z_q))).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
    seconds = (time.perf_counter() - t0) / steps
    x_test, _ = test_tensors(data, cfg, torch.device("cpu"))
    model.eval()
    recon, counts = 0.0, [torch.zeros(k) for k in cfg.arch.codes]
    with torch.no_grad():
        for s in range(0, x_test.shape[0], 1000):
            x = x_test[s:s + 1000]
            _, z_q, index = model._encode(x)
            recon += float(bernoulli_log_likelihood(model.images_in(x), model._logits(z_q)).sum())
            for c, i, k in zip(counts, index, cfg.arch.codes):
                c += torch.bincount(i.flatten(), minlength=k).float()
    return {"quantiser": quantiser, "steps": steps, "seconds_per_step": round(seconds, 4),
            "test_recon": round(recon / x_test.shape[0], 3), "codes_used": [int((c > 0).sum()) for c in counts],
            "codebook": list(cfg.arch.codes), "perplexity": [round(float(perplexity(c)), 1) for c in counts]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="../shared/data/mnist")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    try:
        import vector_quantize_pytorch  # noqa: F401
    except ImportError:
        sys.exit("error: this benchmark needs vector-quantize-pytorch (pip install vector-quantize-pytorch)")
    torch.set_num_threads(args.threads)
    cfg = RunConfig.make(model="vqvae", dataset="mnist", epochs=args.epochs, input_dim=784, image_shape=[1, 28, 28])
    data = load_dataset("mnist", args.data_dir, cfg.pixel_scale)
    for quantiser in ("ours", "library"):
        print(json.dumps(train_and_measure(quantiser, data, cfg, args.epochs, args.seed)), flush=True)


if __name__ == "__main__":
    main()
