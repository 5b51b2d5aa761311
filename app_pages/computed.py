"""What the pages compute once per server and share with every session (st.cache_resource), by page.

Here, not in the page scripts: a page script runs again on every rerun, and a cache decorator in it reads
its function's source again each time (inspect.getsource: a stat of the file and a parse), ~1 ms per
function per rerun, more on a busy server. An imported module is run once.
"""
from __future__ import annotations

import functools
import hashlib

import numpy as np
import pyarrow as pa
import streamlit as st

from app_pages import common
from explorer.figures import (explained_variance, export_config, layer_scatter_grid, mutual_information_bars,
                              projection_grid, rate_distortion_bars, unit_activity_vs_kl)
from explorer.figures.frozen import freeze
from explorer.class_names import named_labels
from explorer.hover import first_points, hover_html
from explorer.images import PAD_GREY, image_data_uris
from explorer.information import NIL_KL, active_only_through_above
from explorer.traverse import (along_directions, decode_layer, hierarchy_decomposition, interpolation_strips,
                               prior_samples, reconstruct, traversal_grid)
from training import checkpoint as ckpt

HOVER_HEIGHT = 480  # px (Layers' hover mode): the grid figure's own height, so the frame shows it without scrolling
NEIGHBOURS = 8      # nearest neighbours shown and compared (Layers, Compare)
N_RECON = 16        # reconstructions in one row (Samples)
STEPS = np.linspace(-3, 3, 7)  # traversal grid, in standard deviations (Traverse)


# ---- Layers --------------------------------------------------------------------------------------

@st.cache_resource(max_entries=256, show_spinner=False)
def point_png(path: str, stamp: float, n: int, idx: int) -> bytes:
    """A test image beside its reconstruction (posterior mean path), as one PNG, once for every session."""
    points = common.points_of(path, stamp, n)
    image = points.images[idx]
    recon = reconstruct(common.model_of(path, stamp), image[None])[0]
    return common.grid_png(np.stack([image, recon]), points.image_shape, ncols=2, target=96)


@st.cache_resource(max_entries=4, show_spinner="Drawing the hover images…")
def hover_page_of(path: str, stamp: float, n: int, use_means: bool, m: int, highlight: int, name: str) -> str:
    """The hover-mode HTML of the first m points; cached as a resource (a multi-MB string, never copied)."""
    points = common.points_of(path, stamp, n)
    pcas = common.pcas_of(path, stamp, n, use_means)
    fig = layer_scatter_grid(first_points(pcas, m), points.labels[:m], highlight=highlight, ids=points.index[:m])
    # scale=1: the smallest PNGs; the page scales them up with crisp pixels. Keyed by the points' customdata.
    uris = dict(zip(points.index[:m].tolist(), image_data_uris(points.images[:m], points.image_shape, scale=1)))
    return hover_html(fig, uris, HOVER_HEIGHT, config=export_config(f"{name}-layers-pca"))


@st.cache_resource(max_entries=256, show_spinner=False)
def neighbour_rows_png(path: str, stamp: float, n: int, idx: int) -> list[bytes]:
    """Per layer one PNG row: the point, then its nearest neighbours (from the precomputed tables)."""
    points = common.points_of(path, stamp, n)
    _, _, tables = common.neighbour_indexes_of(path, stamp, n, NEIGHBOURS)
    # The point, a gap (a tile of the grid's own grey), then its neighbours: the point does not read as one of them.
    gap = np.full((1, points.images.shape[1]), PAD_GREY / 255, np.float32)
    return [common.grid_png(np.concatenate([points.images[[idx]], gap, points.images[t[idx]]]), points.image_shape,
                            ncols=NEIGHBOURS + 2, target=56) for t in tables]


@st.cache_resource(max_entries=16, show_spinner=False)
def explained_variance_of(path: str, stamp: float, n: int, use_means: bool):
    return freeze(explained_variance(common.pcas_of(path, stamp, n, use_means)))  # charted on every rerun


@st.cache_resource(max_entries=16, show_spinner=False)
def base_grid_of(path: str, stamp: float, n: int, use_means: bool, method: str, title: str | None,
                 _projections: list | None = None, shown: tuple[int, ...] | None = None):
    """The grid figure of every layer (or the `shown` ones), nothing selected or marked, once per (run, points,
    projection) for every session: a box or lasso and the followed point only go onto a copy
    (explorer.figures.with_selection). _projections: the run's UMAP/t-SNE (common.projections, computed with
    its progress bar); PCA: None."""
    active, prior_sd = common.layer_stats_of(path, stamp, n, use_means)
    points = common.points_of(path, stamp, n)
    labels = named_labels(common.model_of(path, stamp).cfg.dataset, points.labels)  # Fashion-MNIST by name
    codes = "Posterior means" if use_means else "One posterior sample per point"
    title = title or f"{codes} of every latent layer ({'PCA, PC1 vs PC2' if method == 'PCA' else method})"
    if method == "PCA":
        fig = layer_scatter_grid(common.pcas_of(path, stamp, n, use_means), labels, active=active, prior_sd=prior_sd,
                                 title=title, ids=points.index, layers=shown)
    else:
        fig = projection_grid(_projections, labels, active=active, title=title, ids=points.index, layers=shown)
    return fig.update_layout(dragmode="select")  # a drag selects (a box; the lasso is in the modebar), not zooms


# ---- Samples -------------------------------------------------------------------------------------

@st.cache_resource(max_entries=256, show_spinner=False)
def samples_png(path: str, stamp: float, n: int, temps: float | tuple[float, ...], seed: int,
                shape: tuple[int, int]) -> bytes:
    model = common.model_of(path, stamp)
    return common.grid_png(prior_samples(model, n, list(temps) if isinstance(temps, tuple) else temps, seed), shape,
                           target=56)


@st.cache_resource(max_entries=128, show_spinner=False)
def reconstructions_png(path: str, stamp: float, start: int) -> bytes:
    points = common.points_of(path, stamp, common.TEST_POINTS)
    x = points.images[start:start + N_RECON]
    pairs = np.stack([x, reconstruct(common.model_of(path, stamp), x)], axis=0)  # row 1 inputs, row 2 reconstructions
    return common.grid_png(pairs, points.image_shape, target=56)


@st.cache_resource(max_entries=64, show_spinner=False)
def layer_maps_of(path: str, stamp: float, idx: int, what: str):
    """One test image's per-layer maps as a figure, once for every session: what = "kl" (where each layer
    spends its nats, spatial layers only) or "control" (per-pixel sd when one layer is redrawn 16 times)."""
    from explorer.figures import layer_maps
    from explorer.spatial import control_maps, kl_maps
    points = common.points_of(path, stamp, common.TEST_POINTS)
    model, image = common.model_of(path, stamp), points.images[idx]
    if what == "kl":
        return freeze(layer_maps(kl_maps(model, image), "Where each layer spends its nats: KL per position, summed "
                                 "over channels", "nats", "Viridis"))
    return freeze(layer_maps(control_maps(model, image), "What each layer controls: per-pixel sd of 16 images that "
                             "redraw only that layer (above: the image's; below: their mean)", "sd", "Magma"))


@st.cache_resource(max_entries=256, show_spinner=False)
def decomposition_png(path: str, stamp: float, idx: int, keep: int | None, temperature: float = 1.0) -> bytes:
    """The image and 8 images sharing its top `keep` layers, the rest drawn at `temperature`; keep=None: one
    such row for every k."""
    points = common.points_of(path, stamp, common.TEST_POINTS)
    model, image = common.model_of(path, stamp), points.images[idx]
    if keep is None:
        rows = np.stack([hierarchy_decomposition(model, image, k, n=8, seed=0, temperature=temperature)
                         for k in range(model.n_layers, -1, -1)])
        return common.grid_png(rows, points.image_shape, target=48)
    out = hierarchy_decomposition(model, image, keep, n=8, seed=0, temperature=temperature)
    return common.grid_png(np.concatenate([image[None], out]), points.image_shape, ncols=9, target=56)


# ---- Traverse ------------------------------------------------------------------------------------

@st.cache_resource(max_entries=512, show_spinner=False)
def decoded_png(path: str, stamp: float, layer: int, start_digest: str, offsets: tuple[float, ...], _pca, _base,
                shape: tuple[int, int], _whole=None) -> tuple[bytes, str]:
    """The image decoded `offsets` sd along the layer's principal directions from one start (named by its codes'
    digest), as a PNG, and the image's digest; once for every session: a class starts from the same prior sample
    and moves the same sliders by the same steps, so most moves ask for an image someone already has. _whole: the
    start's whole codes of the layer and those above (the digest covers them; explorer.traverse.decode_layer)."""
    z = along_directions(_pca, _base, list(offsets))
    image = decode_layer(common.model_of(path, stamp), layer, z[None], whole=_whole)
    return common.grid_png(image, shape, target=224), hashlib.sha1(image.tobytes()).hexdigest()


@st.cache_resource(max_entries=128, show_spinner=False)
def traversal_png(path: str, stamp: float, layer: int, n_dirs: int, start_digest: str, _pca, _base,
                  shape: tuple[int, int], _whole=None) -> bytes:
    """The -3..+3 sd grid of one start (named by its codes' digest), once for every session."""
    grid = traversal_grid(common.model_of(path, stamp), layer, _pca, _base, STEPS, whole=_whole)[:n_dirs]
    return common.grid_png(grid, shape, target=64)


@st.cache_resource(max_entries=32, show_spinner=False)
def traversal_gif(path: str, stamp: float, layer: int, start_digest: str, _pca, _base, shape: tuple[int, int],
                  _whole=None) -> bytes:
    """A GIF walking PC1 of the layer from -3 to +3 sd and back, from one start (made on a download's click)."""
    from explorer.images import gif_bytes
    frames = traversal_grid(common.model_of(path, stamp), layer, _pca, _base, np.linspace(-3, 3, 25), whole=_whole)[0]
    return gif_bytes(frames, shape, scale=max(1, 112 // shape[0]), frame_ms=80)


# ---- Compare -------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)  # not st.cache_resource: its hashing of the rows costs more than a tuple's
def settings_frame(rows: tuple[tuple[str, str], ...]) -> pa.Table:
    """A run's settings (setting, value) as the Arrow table st.dataframe sends, built once: from a pandas frame
    Streamlit converts to Arrow on every rerun, 7 of the landing page's 50 ms."""
    return pa.table({"setting": [k for k, _ in rows], "value": [v for _, v in rows]})


@st.cache_resource(max_entries=16, show_spinner=False)
def overlaps_of(path_a: str, stamp_a: float, path_b: str, stamp_b: float, linked: bool) -> dict:
    """explorer.neighbours.overlap_summary of two runs' neighbour tables, once per pair for every session."""
    from explorer.neighbours import overlap_summary
    tables = [common.neighbour_indexes_of(p, s, common.TEST_POINTS, NEIGHBOURS)[2]
              for p, s in ((path_a, stamp_a), (path_b, stamp_b))]
    return overlap_summary(tables[0], tables[1] if linked else None)


@st.cache_resource(max_entries=16, show_spinner=False)
def information_figures(runs: tuple[tuple[str, float, str], ...], threshold: float) -> tuple:
    """The information figures of two runs ((path, stamp, name) each) and, per run, its units active only
    through the layer above; built once per pair and threshold for every session (figures are only read)."""
    info = {name: common.information_of(path, stamp, common.TEST_POINTS) for path, stamp, name in runs}
    through = {name: sum(int(m.sum()) for m in active_only_through_above(i.activity, i.kl_per_unit, threshold, NIL_KL))
               for name, i in info.items()}
    return (freeze(rate_distortion_bars(info)), freeze(mutual_information_bars(info)),
            freeze(unit_activity_vs_kl(info, threshold, NIL_KL)),
            through, next(iter(info.values())).points)


# ---- Train --------------------------------------------------------------------------------------

@st.cache_data(ttl=5, show_spinner=False)  # a look at the disk every few seconds is enough for every session
def datasets_at_hand(folder: str) -> dict[str, tuple[bool, str]]:
    """Per dataset: whether its files are on this server, and where they are or must be put."""
    from training.config import DATASETS
    from training.data import files_at_hand
    return {d: files_at_hand(d, folder) for d in DATASETS}


# ---- Curves --------------------------------------------------------------------------------------

@st.cache_resource(max_entries=8, show_spinner="Loading training snapshots…")
def snapshots_of(path: str, stamp: float, epochs: tuple[int, ...]) -> tuple[dict[int, list[np.ndarray]], np.ndarray]:
    """Every snapshot epoch's per-layer posterior means of the fixed test points, and their labels."""
    points = ckpt.load_snapshot_points(path)
    snaps = {e: [z.numpy() for z in ckpt.load_snapshot(path, e)] for e in epochs}
    return snaps, points["label"].numpy()


# ---- Paths ---------------------------------------------------------------------------------------

@st.cache_resource(max_entries=32, show_spinner="Decoding the paths…")
def strips_of(path: str, stamp: float, a: int, b: int, steps: int) -> dict[str, np.ndarray]:
    points = common.points_of(path, stamp, common.TEST_POINTS)
    return interpolation_strips(common.model_of(path, stamp), points.images[a], points.images[b], steps)


# ---- Depth ---------------------------------------------------------------------------------------

DIV_STATS_POINTS = 1000  # test images each variate's KL is averaged over (a shipped run carries exactly these)


@st.cache_resource(max_entries=16, show_spinner="Measuring every variate's KL over the test points…")
def variate_kl_of(path: str, stamp: float) -> list[np.ndarray]:
    """Every variate's mean KL over the run's first DIV_STATS_POINTS test points (its div_stats), once for
    every session."""
    from explorer.depth import variate_kl
    points = common.points_of(path, stamp, common.TEST_POINTS)
    return variate_kl(common.model_of(path, stamp), points.images[:DIV_STATS_POINTS])


@st.cache_resource(max_entries=8, show_spinner=False)
def ranking_of(path: str, stamp: float) -> tuple:
    """The variate ranking without its kept line (its dict and its numbers) and the KL share by depth (frozen),
    built once per run: a slider move only draws the line (explorer.figures.depth.with_kept_line)."""
    from explorer.depth import kl_share
    from explorer.figures.depth import kl_share_figure, variate_ranking
    from explorer.figures.table import figure_frame
    kl = variate_kl_of(path, stamp)
    ranking = variate_ranking(kl)
    share = kl_share(common.model_of(path, stamp), [float(k.sum()) for k in kl])
    return ranking.to_dict(), figure_frame(ranking), freeze(kl_share_figure(share))


@st.cache_resource(max_entries=64, show_spinner=False)
def depth_figures_of(path: str, stamp: float, q: float) -> tuple:
    """(the ranking with the top q kept, the KL share by depth), frozen."""
    from explorer.depth import top_variates
    from explorer.figures.depth import with_kept_line
    from explorer.figures.frozen import from_spec
    from explorer.figures.table import with_numbers
    spec, numbers, share = ranking_of(path, stamp)
    ranking = with_numbers(from_spec(with_kept_line(spec, top_variates(variate_kl_of(path, stamp), q).count)), numbers)
    return ranking, share


def layers_in_use_of(path: str, stamp: float) -> int:
    from explorer.depth import layers_in_use
    return layers_in_use(variate_kl_of(path, stamp))


@st.cache_resource(max_entries=256, show_spinner=False)
def masked_png(path: str, stamp: float, idx: int, q: float, prior_mean: bool) -> tuple[bytes, int, int, float]:
    """The test image, then its masked reconstructions (8 prior draws, or 1 with the prior's mean) keeping the
    top q of the variates: (PNG, variates kept, variates in all, their share of the KL)."""
    from explorer.depth import masked_decode, top_variates
    points = common.points_of(path, stamp, common.TEST_POINTS)
    kept = top_variates(variate_kl_of(path, stamp), q)
    image = points.images[idx]
    decoded = masked_decode(common.model_of(path, stamp), image, kept.masks, n=1 if prior_mean else 8,
                            prior_mean=prior_mean, seed=0)
    png = common.grid_png(np.concatenate([image[None], decoded]), points.image_shape, ncols=1 + len(decoded), target=72)
    return png, kept.count, kept.total, kept.kl_share


# ---- Codes ---------------------------------------------------------------------------------------

@st.cache_resource(max_entries=64, show_spinner=False)
def code_map_of(path: str, stamp: float, idx: int):
    """One test image's codes and the prior at every cell (explorer.codemap.code_map), once for every session."""
    from explorer.codemap import code_map
    return code_map(common.model_of(path, stamp), common.points_of(path, stamp, common.TEST_POINTS).images[idx])


@st.cache_resource(max_entries=256, show_spinner=False)
def swapped_png(path: str, stamp: float, idx: int, layer: int, cell: tuple[int, int], code: int | None) -> bytes:
    """The image decoded from its codes (code None) or with one cell's code swapped: one PNG, shared."""
    from explorer.codemap import decode_codes, with_code
    points = common.points_of(path, stamp, common.TEST_POINTS)
    cm = code_map_of(path, stamp, idx)
    index = cm.index if code is None else with_code(cm, layer, cell, code)
    return common.grid_png(decode_codes(common.model_of(path, stamp), index)[None], points.image_shape, target=168)


@st.cache_resource(max_entries=16, show_spinner="Counting every code's use over the test images…")
def codebook_figure_of(path: str, stamp: float, n: int, layer: int, method: str = "PCA"):
    """A layer's codebook projected by `method`, sized by use over n test points, coloured by class."""
    from explorer.class_names import CLASS_NAMES
    from explorer.codemap import codebook_use
    from explorer.figures import codebook_scatter
    points, model = common.points_of(path, stamp, n), common.model_of(path, stamp)
    use = codebook_use(model, layer, points.images, points.labels, method)
    names = dict(enumerate(CLASS_NAMES.get(model.cfg.dataset) or []))
    return freeze(codebook_scatter(use.xy, use.counts, use.top_class, use.share, layer, names, tuple(use.axes)))
