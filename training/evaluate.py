"""`python -m training eval`: a trained run's ELBO, IW log-likelihood, active units and KL per layer."""
from __future__ import annotations

import copy
import time
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .data import load_dataset
from .model import HierarchicalVAE
from .objectives import count_active_units, evaluate_elbo, iw_log_likelihood, unit_activity
from .train import eval_mode, resolve_device, test_tensors

BN_STATS_SEED = 0


@torch.no_grad()
def recompute_bn_statistics(model: HierarchicalVAE, x_train: torch.Tensor) -> HierarchicalVAE:
    """A copy of the model whose BN layers hold the exact mean and (biased) variance of their inputs
    over x_train, as the authors set them before every test evaluation (run_models.py l.779-786: one
    forward pass of all training images in a single batch). The model itself is not changed.

    One batch is that definition: each BN layer's inputs depend on the layers below normalising with
    the statistics of the same whole set.
    """
    twin = copy.deepcopy(model).train()
    bns = [m for m in twin.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average: after one batch, exactly that batch's statistics
    if bns:
        twin(x_train)
    n = x_train.shape[0]
    for bn, momentum in zip(bns, momenta):
        bn.running_var.mul_((n - 1) / n)  # torch stores the unbiased variance; BN normalised with the biased one
        bn.momentum = momentum
    return twin.eval()


def evaluate_run(run_dir: Path, iw_samples: int = 5000, data_dir: str | None = None,
                 device: str = "auto", max_rows: int | None = None, bn_stats: str = "recomputed") -> dict:
    """The paper's test-set measures for a run folder (BN in eval mode, beta = 1).

    bn_stats "recomputed": BN statistics from one pass over freshly binarized training data (the
    authors' way, on a copy; the saved checkpoint is untouched); "running": training's running averages.
    """
    started = time.perf_counter()
    dev = resolve_device(device)
    model, cfg, epoch = ckpt.load_model(run_dir, dev)
    data = load_dataset(cfg.dataset, data_dir or cfg.data_dir, cfg.pixel_scale)
    x_test, _ = test_tensors(data, cfg, dev)
    torch.manual_seed(0)
    if bn_stats == "recomputed":
        x_train = torch.as_tensor(data.train_x, device=dev)
        if cfg.likelihood == "bernoulli":
            x_train = torch.bernoulli(x_train, generator=torch.Generator(dev).manual_seed(BN_STATS_SEED))
        model = recompute_bn_statistics(model, x_train)
    n = x_test.shape[0]
    with eval_mode(model):
        stats = evaluate_elbo(model, x_test)
        # Rows per pass: 8192 keeps a CPU's caches warm (2.7x faster than 100k, measured); a GPU wants many.
        iw = iw_log_likelihood(model, x_test, iw_samples, max_rows=max_rows or (100_000 if dev.type == "cuda" else 8192))
        activity = unit_activity(model, x_test)
    return {
        "run": str(run_dir), "model": cfg.model, "layers": cfg.layers, "label": cfg.label,
        "dataset": cfg.dataset, "epochs": epoch,
        "elbo": float(stats.elbo) / n,
        "iw_ll": float(iw.mean()),
        "iw_samples": iw_samples,
        "active_units": count_active_units(activity),
        "kl_per_layer": [float(k) / n for k in stats.kl_per_layer()],
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "bn_stats": bn_stats,
        "pixel_scale": cfg.pixel_scale if cfg.dataset in ("mnist", "fashion-mnist") else None,
        "test_images": n,
        "seconds": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads(),
    }


def format_report(r: dict) -> str:
    return "\n".join([
        f"{r['run']}: {r['label']}, {r['layers']} layers, {r['dataset']}, {r['epochs']} epochs, BN statistics "
        f"{r['bn_stats']}" + (f", pixels bytes/{r['pixel_scale']}" if r.get("pixel_scale") else ""),
        f"  ELBO                {r['elbo']:.2f} nats",
        f"  log p(x), IW-{r['iw_samples']:<6} {r['iw_ll']:.2f} nats",
        f"  active units        {' '.join(str(a) for a in r['active_units'])}  (layer 1 .. {r['layers']})",
        f"  KL per layer        {' '.join(f'{k:.2f}' for k in r['kl_per_layer'])}",
    ])
