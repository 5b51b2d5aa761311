"""Evaluation, the one public place for it: eval mode, the test set as models see it, the test-set
measures during training, the IW estimate, and `python -m training eval` (ELBO, IW log-likelihood,
active units and KL per layer of a run folder)."""
from __future__ import annotations

import contextlib
import copy
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .config import RunConfig
from .data import Dataset, binarize, load_dataset
from .errors import UserError
from .models import LatentHierarchy
from .models.interface import CATEGORICAL
from .objectives import ACTIVE_LAYER_KL, code_counts, code_use_record, count_active_channels, count_layers_in_use, count_active_units, evaluate_elbo, iw_log_likelihood, unit_activity

BN_STATS_SEED = 0

# All runs evaluate on the same binarized test set, whatever their training seed.
TEST_BINARIZATION_SEED = 123


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but this machine has no CUDA GPU that torch can use")
    return torch.device(name)


@contextmanager
def eval_mode(model: torch.nn.Module, fork_rng: bool = False):
    """The one way to evaluate a model: BN on its running statistics, no autograd, and afterwards the
    mode it was in.

    fork_rng: draws from torch's global generator inside do not advance it (training's evaluations,
    so a run's weights do not depend on how often it is evaluated or snapshotted). Off by default: a
    server's threads must not touch process-wide state, so code that serves pages draws from
    generators of its own.
    """
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        with contextlib.ExitStack() as stack:
            if fork_rng:
                stack.enter_context(torch.random.fork_rng(devices=[device] if device.type == "cuda" else [],
                                                          device_type=device.type))
            stack.enter_context(torch.inference_mode())
            yield model
    finally:
        model.train(was_training)


def test_tensors(data: Dataset, cfg: RunConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The test set as the model sees it: binarized once with a fixed seed for Bernoulli data."""
    x = binarize(data.test_x, TEST_BINARIZATION_SEED) if cfg.likelihood == "bernoulli" else data.test_x
    return torch.as_tensor(x, device=device), torch.as_tensor(data.test_y, device=device)


# The test measures, under the same keys in the training history and in eval.json (TEST_MEASURES).
TEST_MEASURES = ("test_elbo", "test_recon", "test_kl_per_layer", "active_units", "active_channels", "active_layers",
                 "kl_per_unit")
# ... and, for a family with codebooks (categorical layers), per such layer:
CODE_MEASURES = ("test_codes_used", "test_perplexity")
# eval.json files written before the keys were one set.
LEGACY_EVAL_KEYS = {"elbo": "test_elbo", "kl_per_layer": "test_kl_per_layer"}


def measures_of(evaluation: dict) -> dict:
    """An eval.json's contents under today's keys, whenever it was written."""
    return {LEGACY_EVAL_KEYS.get(k, k): v for k, v in evaluation.items()}


def evaluate_test(model: LatentHierarchy, x_test: torch.Tensor) -> dict:
    """The TEST_MEASURES on the test set, BN in eval mode: the ELBO and its reconstruction term, KL per layer
    and unit, the active units (A_u > 0.01) per layer and NVAE's active channels (KL > 0.1 nats) per layer; with
    codebooks, the CODE_MEASURES too."""
    with eval_mode(model, fork_rng=True):
        stats = evaluate_elbo(model, x_test)
        activity = unit_activity(model, x_test)
    n = x_test.shape[0]
    return {
        "test_elbo": float(stats.elbo) / n,
        "test_recon": float(stats.recon) / n,
        "test_kl_per_layer": [float(k) / n for k in stats.kl_per_layer()],
        # Efficient-VDVAE's count of layers in use: mean KL per image at least ACTIVE_LAYER_KL nats
        "active_layers": count_layers_in_use([float(k) / n for k in stats.kl_per_layer()]),
        "active_units": count_active_units(activity),
        "active_channels": count_active_channels([k / n for k in stats.kl_per_unit],
                                                 [spec.shape for spec in model.layer_specs()]),
        "kl_per_unit": [[float(v) / n for v in k] for k in stats.kl_per_unit],
        # a family with codebooks: codes used and their perplexity per categorical layer, over the whole test set
        **(code_use_record(counts, "test_") if (counts := test_code_counts(model, x_test)) else {}),
    }


def test_code_counts(model: LatentHierarchy, x_test: torch.Tensor) -> list[torch.Tensor]:
    """code_counts over the test set, eval mode; [] for a family without categorical layers."""
    if not any(spec.kind == CATEGORICAL for spec in model.layer_specs()):
        return []
    with eval_mode(model, fork_rng=True):
        return code_counts(model, x_test)


def rows_per_pass(model: LatentHierarchy, device: torch.device) -> int:
    """(sample, image) rows in one IW forward pass: the family's CPU size, or many on a GPU."""
    return 100_000 if device.type == "cuda" else model.cpu_rows_per_pass


def iw_estimate(model: LatentHierarchy, x: torch.Tensor, k: int, seed: int = 0, max_rows: int | None = None) -> torch.Tensor:
    """log p(x) per row by the IW-k bound (Burda et al. 2016, eq. 8) with the model in eval mode, drawn from
    a generator of its own: no process-wide state is touched (an app serves many sessions from one process),
    and the model is left in the mode it was in."""
    with eval_mode(model):
        return iw_log_likelihood(model, x, k, max_rows=max_rows or rows_per_pass(model, x.device), generator=torch.Generator(x.device).manual_seed(seed))


def bn_statistics_images(data: Dataset, cfg: RunConfig, device: torch.device) -> torch.Tensor:
    """The training set as BN's statistics are recomputed over it: binarized once (seed BN_STATS_SEED)
    for Bernoulli data, as training saw it."""
    x = torch.as_tensor(data.train_x, device=device)
    if cfg.likelihood == "bernoulli":
        x = torch.bernoulli(x, generator=torch.Generator(device).manual_seed(BN_STATS_SEED))
    return x


@torch.no_grad()
def recompute_bn_statistics(model: LatentHierarchy, x_train: torch.Tensor,
                            generator: torch.Generator | None = None) -> LatentHierarchy:
    """A copy of the model whose BN layers hold the exact mean and (biased) variance of their inputs
    over x_train, as the authors set them before every test evaluation (run_models.py l.779-786: one
    forward pass of all training images in a single batch). The model itself is not changed.

    One batch is that definition: each BN layer's inputs depend on the layers below normalising with
    the statistics of the same whole set. The pass samples every z (the upper layers' BN inputs depend
    on those draws): from `generator`, or torch's global one (evaluate_run seeds it) if None.
    """
    twin = copy.deepcopy(model).train()
    # Every kind (BatchNorm1d, 2d, 3d, SyncBatchNorm): a model evaluated with stale statistics fails silently.
    bns = [m for m in twin.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    values_per_channel: dict[torch.nn.Module, int] = {}

    def count(bn: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        values_per_channel[bn] = inputs[0].numel() // inputs[0].shape[1]  # rows, times pixels for a map

    hooks = [bn.register_forward_pre_hook(count) for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average: after one batch, exactly that batch's statistics
    if bns:
        twin(x_train, generator=generator)
    for hook in hooks:
        hook.remove()
    for bn, momentum in zip(bns, momenta):
        n = values_per_channel.get(bn, 0)
        if n > 1:  # torch stores the unbiased variance; BN normalised with the biased one
            bn.running_var.mul_((n - 1) / n)
        bn.momentum = momentum
    return twin.eval()


def evaluate_run(run_dir: Path, iw_samples: int = 5000, data_dir: str | None = None,
                 device: str = "auto", max_rows: int | None = None, bn_stats: str | None = None,
                 test_images: int | None = None) -> dict:
    """The paper's test-set measures for a run folder (BN in eval mode, beta = 1).

    bn_stats "recomputed": BN statistics from one pass over freshly binarized training data (the
    authors' way, on a copy; the saved checkpoint is untouched); "running": training's running averages;
    None: the family's own way (`eval_bn_stats`). test_images: the first N of the (binarized) test set,
    the same images and draws for every run; None: all of them.
    """
    started = time.perf_counter()
    dev = resolve_device(device)
    model, cfg, epoch = ckpt.load_model(run_dir, dev)
    bn_stats = bn_stats or model.eval_bn_stats
    data = load_dataset(cfg.dataset, data_dir or cfg.data_dir, cfg.pixel_scale)
    x_test, _ = test_tensors(data, cfg, dev)
    if test_images is not None:
        if not 1 <= test_images <= x_test.shape[0]:
            raise UserError(f"--test-images must be between 1 and {x_test.shape[0]} (the test set's size)")
        x_test = x_test[:test_images]
    torch.manual_seed(0)
    if bn_stats == "recomputed":
        model = recompute_bn_statistics(model, bn_statistics_images(data, cfg, dev))
    n = x_test.shape[0]
    measures = evaluate_test(model, x_test)  # the history's measures, here with BN recomputed
    with eval_mode(model, fork_rng=True):
        iw = iw_log_likelihood(model, x_test, iw_samples, max_rows=max_rows or rows_per_pass(model, dev))
    return {
        "run": str(run_dir), "model": cfg.model, "layers": cfg.layers, "label": cfg.label,
        "dataset": cfg.dataset, "epochs": epoch,
        **measures,
        **({"codebook": [spec.codebook for spec in model.layer_specs() if spec.kind == CATEGORICAL]}
           if "test_codes_used" in measures else {}),
        "iw_ll": float(iw.mean()),
        # the standard error of that mean over the images scored (the spread of log p(x) between images)
        "iw_ll_se": float(iw.std() / n ** 0.5) if n > 1 else None,
        "iw_samples": iw_samples,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "bn_stats": bn_stats,
        "pixel_scale": cfg.pixel_scale if cfg.dataset in ("mnist", "fashion-mnist") else None,
        "test_images": n,
        "seconds": round(time.perf_counter() - started, 3),
        "threads": torch.get_num_threads(),
    }


def format_report(r: dict) -> str:
    codes = "test_codes_used" in r  # a family with codebooks: its rate is -log p of the codes, its use the codes used
    return "\n".join([
        f"{r['run']}: {r['label']}, {r['layers']} layers, {r['dataset']}, {r['epochs']} epochs, BN statistics "
        f"{r['bn_stats']}" + (f", pixels bytes/{r['pixel_scale']}" if r.get("pixel_scale") else ""),
        f"  ELBO                {r['test_elbo']:.2f} nats" + ("  (log p(x|z) + log p(z): q is a point mass)" if codes else ""),
        f"  log p(x), IW-{r['iw_samples']:<6} {r['iw_ll']:.2f} nats"
        + (f" (+/- {r['iw_ll_se']:.2f} s.e. over {r['test_images']} test images)" if r.get("iw_ll_se") else ""),
        *([f"  codes used          {' '.join(f'{u}/{k}' for u, k in zip(r['test_codes_used'], r['codebook']))}"
           f"  (layer 1 .. {r['layers']}; perplexity {' '.join(f'{p:.1f}' for p in r['test_perplexity'])})"]
          if codes else [f"  active units        {' '.join(str(a) for a in r['active_units'])}  (layer 1 .. {r['layers']})"]),
        f"  {'-log p(codes)' if codes else 'KL'} per layer{'' if codes else '       '} "
        f"{' '.join(f'{k:.2f}' for k in r['test_kl_per_layer'])}",
        *([f"  layers in use       {r['active_layers']} of {r['layers']} (mean KL >= {ACTIVE_LAYER_KL:g} nats)"]
          if "active_layers" in r and not codes else []),
    ])
