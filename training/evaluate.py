"""`python -m training eval`: a trained run's ELBO, IW log-likelihood, active units and KL per layer."""
from __future__ import annotations

from pathlib import Path

import torch

from . import checkpoint as ckpt
from .data import load_dataset
from .objectives import count_active_units, evaluate_elbo, iw_log_likelihood, unit_activity
from .train import eval_mode, resolve_device, test_tensors


def evaluate_run(run_dir: Path, iw_samples: int = 5000, data_dir: str | None = None,
                 device: str = "auto", max_rows: int = 100_000) -> dict:
    """The paper's test-set measures for a run folder (BN in eval mode, beta = 1)."""
    dev = resolve_device(device)
    model, cfg, epoch = ckpt.load_model(run_dir, dev)
    data = load_dataset(cfg.dataset, data_dir or cfg.data_dir)
    x_test, _ = test_tensors(data, cfg, dev)
    torch.manual_seed(0)
    n = x_test.shape[0]
    with eval_mode(model):
        stats = evaluate_elbo(model, x_test)
        iw = iw_log_likelihood(model, x_test, iw_samples, max_rows=max_rows)
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
    }


def format_report(r: dict) -> str:
    return "\n".join([
        f"{r['run']}: {r['label']}, {r['layers']} layers, {r['dataset']}, {r['epochs']} epochs",
        f"  ELBO                {r['elbo']:.2f} nats",
        f"  log p(x), IW-{r['iw_samples']:<6} {r['iw_ll']:.2f} nats",
        f"  active units        {' '.join(str(a) for a in r['active_units'])}  (layer 1 .. {r['layers']})",
        f"  KL per layer        {' '.join(f'{k:.2f}' for k in r['kl_per_layer'])}",
    ])
