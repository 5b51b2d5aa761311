"""Training-history figures: metric curves over epochs for several runs, KL and active units per layer,
and the layer x unit KL heatmap."""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .table import with_numbers
from .style import KL_FLOOR, METRICS, RUN_DASHES, _note, _style, layer_colours, layer_name, run_colours


# ---- training history --------------------------------------------------------------------------

def _integer_epochs(fig: go.Figure) -> go.Figure:
    """Epoch axes tick at whole epochs: plotly would label a 6-epoch run 2, 2.5, 3, ..."""
    xs = [float(v) for t in fig.data if t.x is not None for v in np.asarray(t.x, dtype=float).ravel()]
    if xs and max(xs) - min(xs) <= 12:
        fig.update_xaxes(tick0=0, dtick=1)
    return fig


def _metric_rows(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """(epoch, metric) rows where the metric was recorded: test metrics exist only every eval_every epochs."""
    if df is None or df.empty or metric not in df.columns or "epoch" not in df.columns:
        return pd.DataFrame({"epoch": [], metric: []})
    out = pd.DataFrame({"epoch": pd.to_numeric(df["epoch"], errors="coerce"),
                        metric: pd.to_numeric(df[metric], errors="coerce")})
    return out.dropna().sort_values("epoch")


def _list_rows(df: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Epochs and an (epochs, L) array from a per-layer list column; rows without a list are skipped,
    a ragged row is padded with NaN."""
    if df is None or df.empty or column not in df.columns or "epoch" not in df.columns:
        return np.zeros(0), np.zeros((0, 0))
    rows = [(e, list(v)) for e, v in zip(df["epoch"], df[column]) if isinstance(v, (list, tuple, np.ndarray))]
    rows.sort(key=lambda r: r[0])
    width = max((len(v) for _, v in rows), default=0)
    values = np.full((len(rows), width), np.nan)
    for i, (_, v) in enumerate(rows):
        values[i, :len(v)] = np.asarray(v, dtype=float)
    return np.asarray([e for e, _ in rows], dtype=float), values


def training_curves(histories: Mapping[str, pd.DataFrame], metric: str) -> go.Figure:
    """One metric against epoch, runs overlaid (one colour per run). Epochs without the metric are
    dropped; sparse (test) metrics are drawn as markers+lines so single evaluations stay visible."""
    title, ylabel = METRICS.get(metric, (metric, metric))
    colours = run_colours(list(histories))
    fig = go.Figure()
    tables = []
    for name, df in histories.items():
        rows = _metric_rows(df, metric)
        if rows.empty:
            continue
        tables.append(rows.assign(run=name)[["run", "epoch", metric]])
        sparse = metric.startswith("test_") or len(rows) < len(df)
        fig.add_trace(go.Scatter(x=rows["epoch"], y=rows[metric], name=name, mode="lines+markers" if sparse else "lines",
                                 line=dict(color=colours[name]), marker=dict(size=6),
                                 hovertemplate=f"{name}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>"))
    if not fig.data:
        _note(fig, f"no {metric} values yet")
    with_numbers(fig, pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["run", "epoch", metric]))
    return _style(_integer_epochs(fig), title, height=380, xaxis="epoch", yaxis=ylabel, hovermode="x unified",
                  legend=dict(title=dict(text="run")))


def _per_layer_lines(histories: Mapping[str, pd.DataFrame], column: str, title: str, ylabel: str,
                     log_y: bool = False) -> go.Figure:
    """One line per (run, layer): colour = layer (ordered Viridis), dash = run; legend grouped per run
    so one click hides a whole run."""
    series = {name: _list_rows(df, column) for name, df in histories.items()}
    n_layers = max((v.shape[1] for _, v in series.values()), default=0)
    colours = layer_colours(n_layers)
    fig = go.Figure()
    rows = []
    for r, (name, (epochs, values)) in enumerate(series.items()):
        sparse = len(epochs) < (0 if histories[name] is None else len(histories[name]))
        for i in range(values.shape[1]):
            ok = ~np.isnan(values[:, i])
            if not ok.any():
                continue
            rows += [{"run": name, "epoch": e, "layer": layer_name(i), column: v}
                     for e, v in zip(epochs[ok], values[ok, i])]
            fig.add_trace(go.Scatter(
                x=epochs[ok], y=values[ok, i], name=layer_name(i), legendgroup=name,
                legendgrouptitle=dict(text=name), mode="lines+markers" if sparse else "lines",
                line=dict(color=colours[i], dash=RUN_DASHES[r % len(RUN_DASHES)], width=2), marker=dict(size=5),
                hovertemplate=f"{name} · {layer_name(i)}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>"))
    if not fig.data:
        _note(fig, f"no {column} values yet")
    with_numbers(fig, pd.DataFrame(rows, columns=["run", "epoch", "layer", column]))
    fig = _style(_integer_epochs(fig), title, height=420, xaxis="epoch", yaxis=ylabel,
                 legend=dict(groupclick="togglegroup"))
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def kl_per_layer_curves(histories: Mapping[str, pd.DataFrame], test: bool = False, log_y: bool = False) -> go.Figure:
    """KL(q(z_i|·) || p(z_i|z_{i+1})) per layer against epoch (training average, or test set if `test`)."""
    column = "test_kl_per_layer" if test else "kl_per_layer"
    which = "test set" if test else "training"
    return _per_layer_lines(histories, column, f"KL divergence per latent layer ({which})",
                            "KL (nats per image)", log_y)


def kl_balance_curves(histories: Mapping[str, pd.DataFrame]) -> go.Figure:
    """NVAE's KL-balancing weight of every layer (the epoch's mean over its steps): above 1 a layer's KL counts
    more in the loss (it had little and is pushed to use more), 1 for all once the warm-up weight reaches 1."""
    return _per_layer_lines(histories, "kl_balance", "KL-balancing weight per latent layer (training)",
                            "weight of the layer's KL in the loss")


def active_units_curves(histories: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Active units per layer (Burda et al.: Cov_x(E_q[z_u]) > 0.01) at the evaluation epochs."""
    return _per_layer_lines(histories, "active_units", "Active units per latent layer",
                            "active units (A_u > 0.01)")


CODE_USE = {"codes_used": ("Codes used in each epoch", "codes chosen at least once"),
            "perplexity": ("Perplexity of the code use", "exp(entropy of each epoch's code use)"),
            "codes_revived": ("Dead codes revived", "codes moved onto encoder outputs")}


def code_use_curves(histories: Mapping[str, pd.DataFrame], column: str) -> go.Figure:
    """A codebook family's use of its codes per layer against epoch (training/train.py counts them over each
    epoch's steps, not one batch): codes_used, perplexity or codes_revived."""
    title, ylabel = CODE_USE[column]
    return _per_layer_lines(histories, column, title, ylabel)


def kl_heatmap(history: pd.DataFrame, zmax: float | None = None) -> go.Figure:
    """KL per unit (test set) over the evaluation epochs: rows "z{i} u{u}" layer-major (z1 on top),
    columns = epochs with kl_per_unit, colour = log10(max(KL, 1e-4)). Collapsed units stay dark
    rows, which is how the paper's "inactive units" look over training. Pass the same `zmax` to
    two runs' heatmaps to share one colour scale."""
    fig = go.Figure()
    rows = []
    if history is not None and not history.empty and {"epoch", "kl_per_unit"} <= set(history.columns):
        rows = sorted(((int(e), v) for e, v in zip(history["epoch"], history["kl_per_unit"])
                       if isinstance(v, (list, tuple, np.ndarray)) and len(v) > 0), key=lambda r: r[0])
    if not rows:
        return _style(_note(fig, "no evaluation epochs yet"), "KL per latent unit", height=320)
    sizes = [max(len(r[1][i]) if i < len(r[1]) else 0 for r in rows) for i in range(max(len(r[1]) for r in rows))]
    labels = [f"z{i + 1} u{u}" for i, n in enumerate(sizes) for u in range(n)]
    kl = np.full((len(labels), len(rows)), np.nan)
    for j, (_, per_layer) in enumerate(rows):
        start = 0
        for i, n in enumerate(sizes):
            vals = np.asarray(per_layer[i] if i < len(per_layer) else [], dtype=float)
            kl[start:start + len(vals), j] = vals
            start += n
    z = np.log10(np.maximum(kl, KL_FLOOR))  # NaN (missing) stays NaN
    zmin = math.log10(KL_FLOOR)
    if zmax is None:  # plotly ignores zmin unless zmax is set too: fix both so the floor is always the bottom
        zmax = max(float(np.nanmax(z)) if np.isfinite(z).any() else zmin, zmin + 1.0)
    text = [[("–" if np.isnan(v) else f"{v:.4g}") for v in row] for row in kl]
    epochs = [e for e, _ in rows]
    # Hover reads raw KL from `text`: heatmap customdata in hovertemplates broke across plotly 6.x
    # (plotly.js #7607); customdata still carries the raw values for figure_frame's CSV.
    fig.add_trace(go.Heatmap(z=z, x=epochs, y=labels, customdata=kl, text=text, colorscale="Viridis",
                             zmin=zmin, zmax=zmax, name="KL per unit",
                             colorbar=dict(title=dict(text="log10 KL (nats)")),
                             hovertemplate="epoch %{x} · %{y}<br>KL %{text} nats<extra></extra>"))
    starts = np.cumsum([0] + sizes[:-1])
    fig.update_yaxes(autorange="reversed", tickmode="array", tickvals=[labels[s] for s, n in zip(starts, sizes) if n],
                     ticktext=[layer_name(i) for i, n in enumerate(sizes) if n])
    for s in starts[1:]:  # white rules between layers
        fig.add_shape(type="line", xref="paper", x0=0, x1=1, y0=s - 0.5, y1=s - 0.5,
                      line=dict(color="#ffffff", width=2))
    with_numbers(fig, pd.DataFrame([{"epoch": e, "layer": lab.split()[0], "unit": int(lab.split()[1][1:]),
                                     "kl_nats": kl[r, c]} for c, e in enumerate(epochs) for r, lab in enumerate(labels)]))
    height = int(np.clip(110 + 4 * len(labels), 320, 1000))
    return _style(_integer_epochs(fig), "KL per latent unit (test set) over training", height=height,
                  xaxis="epoch", yaxis="latent unit (layer-major)")


