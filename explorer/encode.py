"""Test points, their per-layer latent codes, and a PCA of each latent layer.

The Layers page plots every latent layer z_1..z_L of the same test images in
its first principal components: in an LVAE (Sønderby et al. 2016, Sec. 3.2)
the higher layers should still separate the classes, where a plain VAE's
higher layers often collapse to the prior.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from training import checkpoint as ckpt
from training.config import RunConfig
from training.data import load_dataset
from training.errors import CheckpointError, DataError, UserError
from training.evaluate import eval_mode, test_tensors
from training.models import LatentHierarchy
from training.objectives import activity_of_means, count_active_units

from .neighbours import class_balanced_indices

BATCH = 1000


def batch_rows(model: LatentHierarchy) -> int:
    """Images per forward pass: BATCH, or fewer for a family whose passes slow down in big batches on a CPU
    (its cpu_rows_per_pass: a convolutional model ran 2x faster per image at 128 than at 1,000, measured)."""
    return max(1, min(BATCH, model.cpu_rows_per_pass))
# The explorer's forward passes are many small kernels: a second thread gains
# little on an idle machine, and on a busy one (a training job on the Train
# page, two cores) OpenMP threads spinning for each other made encoding 10-20x
# slower in our measurements. So inference runs on at most this many threads.
# LVAE_EXPLORER_THREADS overrides it (e.g. on a big idle server).
THREADS_ENV = "LVAE_EXPLORER_THREADS"


def _threads_setting() -> int:
    try:
        return max(1, int(os.environ.get(THREADS_ENV, "1")))
    except ValueError:  # a typo in the variable must not stop the app
        return 1


THREADS = _threads_setting()


# ---- torch plumbing shared with traverse.py -----------------------------------
# Inference runs in training.evaluate.eval_mode, which touches no process-wide state (torch's global RNG,
# its thread count): the app serves many sessions from threads of one process, so per-request changes
# would leak between them. The server sets the thread count once (limit_threads) and seeds draws with
# generators of their own.

def limit_threads() -> None:
    """Torch's intra-op threads and the BLAS/OpenMP pools numpy and scikit-learn use, for the whole app process,
    set once at start ($LVAE_EXPLORER_THREADS, default 1): a PCA of 1,000 points ran 3x faster on one thread."""
    from threadpoolctl import threadpool_limits
    if torch.get_num_threads() > THREADS:
        torch.set_num_threads(THREADS)
    threadpool_limits(THREADS)  # not as a context: the limit stays for the process


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator of its own for one request's seeded draws (never torch's global one)."""
    return torch.Generator(device=device).manual_seed(seed)


def as_tensor(x: np.ndarray, model: torch.nn.Module) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device_of(model))


# ---- test points -------------------------------------------------------------------

@dataclass
class TestPoints:
    __test__ = False  # not a pytest test class, despite the name

    images: np.ndarray            # (N, D) float32 in [0, 1]: what the model sees (binarized for Bernoulli runs)
    labels: np.ndarray            # (N,) int64
    image_shape: tuple[int, ...]  # (h, w) grey, (c, h, w) colour: what explorer.images draws with
    source: str                   # where they came from, for the page's caption
    index: np.ndarray             # (N,) int64: each point's position in the test set (what exports record)


def image_shape(cfg: RunConfig) -> tuple[int, ...]:
    """The shape the pages draw the run's images with (explorer.images): (height, width) for grey images,
    (channels, height, width) for colour ones (RunConfig.image_dims)."""
    c, h, w = cfg.image_dims
    return (h, w) if c == 1 else (c, h, w)


def test_points(cfg: RunConfig, run_dir: Path, n: int = 5000, data_dir: str | None = None) -> TestPoints:
    """A class-balanced sample of n images of the run's test set (explorer.neighbours.class_balanced_indices,
    seeded: the same points for every run on the same data, never just the first n, whose class mix is
    the file's order), binarized exactly as training evaluated them.

    When the dataset files are not there (a run copied from another machine),
    the run's own snapshots/points.safetensors (up to 1,000 test images saved
    at training time) stand in. Raises UserError if neither is available.
    """
    try:
        x, y = _test_set(cfg.dataset, str(data_dir or cfg.data_dir), cfg.likelihood, cfg.pixel_scale)
    except DataError as e:
        return _snapshot_points(cfg, Path(run_dir), n, str(e))
    if x.shape[1] != cfg.input_dim:
        raise UserError(f"{cfg.dataset} images have {x.shape[1]} pixels, the run was trained on {cfg.input_dim}")
    idx = class_balanced_indices(y, n)
    return TestPoints(x[idx], y[idx], image_shape(cfg), f"{cfg.dataset} test set, {len(idx)} of {len(x)} images, "
                      "class-balanced", idx)


@functools.lru_cache(maxsize=2)
def _test_set(dataset: str, data_dir: str, likelihood: str,
              pixel_scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole binarized test set, read once: MNIST's files take a second or more to decompress,
    and pages ask for different numbers of points and for two runs on the same data."""
    data = load_dataset(dataset, data_dir, pixel_scale)
    x, y = test_tensors(data, RunConfig.make(dataset=dataset, likelihood=likelihood, layers=1), torch.device("cpu"))
    x, y = x.numpy(), y.numpy().astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


test_points.__test__ = False  # type: ignore[attr-defined]  # a pytest importing it must not collect it


def _snapshot_points(cfg: RunConfig, run_dir: Path, n: int, why: str) -> TestPoints:
    try:
        points = ckpt.load_snapshot_points(run_dir)
    except CheckpointError as e:
        raise UserError(f"no test images: {why}; and the run has no snapshot points ({e})") from None
    images = points["image"].float().numpy() / 255.0
    if images.ndim != 2 or images.shape[1] != cfg.input_dim:
        raise UserError(f"{run_dir}: snapshot points do not match the run's {cfg.input_dim} pixels")
    labels = points["label"].numpy().astype(np.int64)
    total = images.shape[0]
    pick = class_balanced_indices(labels, n) if n < total else np.arange(total)
    index = points["index"].numpy().astype(np.int64) if "index" in points else np.arange(total)
    # Said as what they are, not as an error: the shipped runs carry their test images on purpose.
    what = "the" if n >= total else f"{len(pick):,} (class-balanced) of the"
    return TestPoints(images[pick].astype(np.float32), labels[pick], image_shape(cfg),
                      f"{what} run's {total:,} stored {cfg.dataset} test images", index[pick])


# ---- encoding ----------------------------------------------------------------------

@dataclass
class Encoding:
    """Per layer (N, d) summary codes (LatentHierarchy.summary_codes: the code itself for a vector layer)."""
    means: list[np.ndarray]      # posterior means along the mean path (nothing sampled)
    samples: list[np.ndarray] | None  # one posterior sample z ~ q(z|x); None where not asked for (encode)
    variances: list[np.ndarray]  # q's variance along the mean path
    prior_variances: list[np.ndarray]  # p(z_i | layers above)'s variance there (1 at the top)


def encode(model: LatentHierarchy, images: np.ndarray, seed: int = 0, samples: bool = True) -> Encoding:
    """Every layer's posterior mean and variance (mean path) and, with `samples`, one (seeded) posterior sample
    of each image: a second pass through the model, which the pages make only when samples are shown
    (posterior_samples) since it doubles a convolutional hierarchy's encoding time."""
    sizes = [spec.summary_units for spec in model.layer_specs()]
    means: list[list[np.ndarray]] = [[] for _ in sizes]
    variances: list[list[np.ndarray]] = [[] for _ in sizes]
    prior_variances: list[list[np.ndarray]] = [[] for _ in sizes]
    with eval_mode(model):
        for start in range(0, len(images), rows := batch_rows(model)):
            x = as_tensor(images[start:start + rows], model)
            for i, layer in enumerate(model.posterior(x, mean_path=True)):
                means[i].append(model.summary_codes(i, layer.z).cpu().numpy())
                variances[i].append(model.summary_variances(i, layer.var).cpu().numpy())
                prior_variances[i].append(model.summary_variances(i, layer.prior_var.expand_as(layer.z)).cpu().numpy())
    return Encoding(_stack(means, sizes), posterior_samples(model, images, seed) if samples else None,
                    _stack(variances, sizes), _stack(prior_variances, sizes))


def posterior_samples(model: LatentHierarchy, images: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """Per layer (N, d) summary codes of one posterior sample z ~ q(z|x) of each image, drawn with `seed`."""
    sizes = [spec.summary_units for spec in model.layer_specs()]
    samples: list[list[np.ndarray]] = [[] for _ in sizes]
    g = generator(seed, device_of(model))
    with eval_mode(model):
        for start in range(0, len(images), rows := batch_rows(model)):
            x = as_tensor(images[start:start + rows], model)
            for i, layer in enumerate(model.posterior(x, generator=g)):
                samples[i].append(model.summary_codes(i, layer.z).cpu().numpy())
    return _stack(samples, sizes)


def _stack(parts: list[list[np.ndarray]], sizes: list[int]) -> list[np.ndarray]:
    return [np.concatenate(p) if p else np.zeros((0, u), np.float32) for p, u in zip(parts, sizes)]


# A page's first view encodes its default number of points within this: the Layers page's 1.5 s target less
# the 0.3 s its PCA and figures took for 1,000 points of a 4-layer NVAE (measured).
ENCODE_BUDGET_S = 1.2
POINT_SIZES = (500, 1000, 2000)  # the numbers of test points a page offers below all that a run has


def points_within_budget(seconds_per_image: float, sizes: Sequence[int]) -> int:
    """The largest of `sizes` that encodes within ENCODE_BUDGET_S at this cost (the smallest if none does)."""
    fitting = [n for n in sizes if n * seconds_per_image <= ENCODE_BUDGET_S]
    return max(fitting) if fitting else min(sizes)


def encode_seconds_per_image(model: LatentHierarchy, images: np.ndarray, probe: int = 256, repeats: int = 2) -> float:
    """What `encode` costs per image on this machine: the fastest of `repeats` timings on `probe` images, after
    a warm-up (a busy machine only ever adds time): how many points a page can encode within its time (a
    convolutional family costs 15-30x an MLP's per image)."""
    import time
    encode(model, images[:4], samples=False)
    sample = images[:probe]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        encode(model, sample, samples=False)  # what a page encodes first: the means (samples when asked)
        times.append(time.perf_counter() - started)
    return min(times) / max(1, len(sample))


def active_counts(means: list[np.ndarray]) -> list[int]:
    """Active units per layer (training.objectives: A_u > 0.01) from the plotted posterior means of the points,
    the mean path standing for E_q[u|x]: 0 marks a layer collapsed onto its prior."""
    return count_active_units([activity_of_means(torch.as_tensor(np.asarray(z, dtype=np.float64))) for z in means])


def prior_sd_along(components: np.ndarray, prior_variances: np.ndarray) -> np.ndarray:
    """(k,): the prior's standard deviation along each unit-length direction (rows of components), as the
    root mean over the points of w' diag(var_p) w: the yardstick a PCA axis's spread is read against."""
    w2 = np.asarray(components, dtype=np.float64) ** 2
    return np.sqrt(np.asarray(prior_variances, dtype=np.float64).mean(axis=0) @ w2.T)


# ---- PCA of one layer --------------------------------------------------------------

@dataclass
class LayerPCA:
    coords: np.ndarray       # (N, k) the points in the first k principal directions
    explained: np.ndarray    # (k,) fraction of the layer's variance along each
    components: np.ndarray   # (k, units) unit-length directions in z space
    mean: np.ndarray         # (units,)
    sd: np.ndarray           # (k,) standard deviation of each coordinate: the traversal step unit


def layer_pca(z: np.ndarray, k: int = 3) -> LayerPCA:
    """scikit-learn PCA with k = min(k, units, N) components.

    A 1-unit layer gets a zero second column (explained 0, zero direction) so
    2-D plots still work; a layer without variance (collapsed onto its prior
    mean) gets zero ratios instead of 0/0.
    """
    z = np.asarray(z, dtype=np.float32)
    n, units = z.shape
    k_fit = max(0, min(k, units, n))
    width = max(k_fit, min(k, 2))
    coords = np.zeros((n, width), np.float32)
    explained = np.zeros(width, np.float64)
    components = np.zeros((width, units), np.float32)
    mean = z.mean(axis=0) if n else np.zeros(units, np.float32)
    if k_fit and n >= 2:
        # covariance_eigh: the units' covariance, for many more points than units: 3.5x faster than "auto" on
        # 1,000 points of 196 units (measured), the same components
        pca = PCA(n_components=k_fit, svd_solver="covariance_eigh" if units <= n else "auto")
        with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 ratios of a collapsed layer, zeroed below
            coords[:, :k_fit] = pca.fit_transform(z)
        explained[:k_fit] = np.nan_to_num(pca.explained_variance_ratio_, nan=0.0, posinf=0.0, neginf=0.0)
        components[:k_fit] = pca.components_
        mean = pca.mean_
    sd = coords.std(axis=0) if n else np.zeros(width, np.float32)
    return LayerPCA(coords, explained, components, np.asarray(mean, np.float32), sd.astype(np.float32))
