"""Information figures: rate (KL per layer) beside distortion, I(x; z_i) per layer, each unit's activity
against its own KL, the IW-K bounds for growing K, rate-distortion over training, the collapse timeline."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .curves import _list_rows, _metric_rows
from .style import KL_FLOOR, RUN_DASHES, _note, _style, layer_colours, layer_name, run_colours
from .table import with_numbers


def rate_distortion_bars(info: Mapping[str, Any]) -> go.Figure:
    """Per run one bar of the rate, stacked by layer (KL of z1..zL), beside one bar of the distortion
    -E log p(x|z1): their sum is -ELBO (nats per image). info: {run: explorer.information.LayerInformation}."""
    fig = go.Figure()
    names = list(info)
    n_layers = max((len(i.kl_per_unit) for i in info.values()), default=0)
    colours = layer_colours(n_layers)
    rows = []
    for layer in range(n_layers):
        y = [float(info[n].rate[layer]) if layer < len(info[n].rate) else 0.0 for n in names]
        fig.add_trace(go.Bar(x=[[n for n in names], ["rate"] * len(names)], y=y, name=f"KL {layer_name(layer)}",
                             marker_color=colours[layer], legendgroup="rate",
                             hovertemplate=f"%{{x}}<br>KL {layer_name(layer)}: %{{y:.3g}} nats<extra></extra>"))
        rows += [{"run": n, "part": f"KL {layer_name(layer)}", "nats": v} for n, v in zip(names, y)]
    d = [float(info[n].distortion) for n in names]
    fig.add_trace(go.Bar(x=[names, ["distortion"] * len(names)], y=d, name="distortion −E log p(x|z1)",
                         marker_color="#7f7f7f", hovertemplate="%{x}<br>distortion: %{y:.4g} nats<extra></extra>"))
    rows += [{"run": n, "part": "distortion", "nats": v} for n, v in zip(names, d)]
    if not names:
        _note(fig, "no runs")
    with_numbers(fig, pd.DataFrame(rows, columns=["run", "part", "nats"]))
    # Two short title lines and the legend under the bars: at 1280 px two charts share a row (issue 27).
    fig = _style(fig, "Rate beside distortion<br><sup>KL of every layer, stacked; their sum is −ELBO</sup>",
                 height=440, yaxis="nats per image", barmode="stack", margin=dict(l=60, r=20, t=70, b=40),
                 legend=dict(title=dict(text=""), orientation="h", x=0, xanchor="left", y=-0.28, yanchor="top"))
    return fig.update_xaxes(tickangle=0)


SATURATED_WITHIN = 0.1  # nats under log N at which an MI bar counts as saturated


def mutual_information_bars(info: Mapping[str, Any]) -> go.Figure:
    """I(x; z_i) per layer for each run with ±1 standard error, and the estimator's log N cap."""
    fig = go.Figure()
    colours = run_colours(list(info))
    rows = []
    cap = None
    for name, inf in info.items():
        est = [m for m, _ in inf.mi]
        se = [0.0 if math.isnan(s) else s for _, s in inf.mi]
        x = [layer_name(i) for i in range(len(est))]
        cap = math.log(inf.points)
        # At the cap the estimator cannot tell how much more the layer carries: such bars are hatched.
        saturated = [m >= cap - SATURATED_WITHIN for m in est]
        fig.add_trace(go.Bar(x=x, y=est, name=name, marker_color=colours[name],
                             marker_pattern_shape=["/" if s else "" for s in saturated],
                             customdata=["saturated: at the estimator's log N cap, the layer may carry more" if s
                                         else "" for s in saturated],
                             error_y=dict(type="data", array=se, visible=True),
                             hovertemplate=f"{name}<br>%{{x}}: %{{y:.3f}} nats<br>%{{customdata}}<extra></extra>"))
        rows += [{"run": name, "layer": xi, "mi_nats": m, "standard_error": s, "saturated": sat}
                 for xi, m, s, sat in zip(x, est, se, saturated)]
    if cap is not None:
        fig.add_hline(y=cap, line_dash="dot", line_color="#888888",
                      annotation_text=f"log N = {cap:.2f}, the estimator's cap", annotation_position="top left")
    else:
        _note(fig, "no runs")
    with_numbers(fig, pd.DataFrame(rows, columns=["run", "layer", "mi_nats", "standard_error", "saturated"]))
    return _style(fig, "Mutual information I(x; z_i) per layer<br><sup>He et al. 2019's estimator, ±1 SE; hatched: "
                       "at the log N cap (saturated)</sup>",
                  height=440, xaxis="latent layer", yaxis="I(x; z_i) (nats)", barmode="group",
                  margin=dict(l=60, r=20, t=70, b=40),
                  legend=dict(title=dict(text=""), orientation="h", x=0, xanchor="left", y=-0.22, yanchor="top"))


def unit_activity_vs_kl(info: Mapping[str, Any], threshold: float = 0.01, nil_kl: float = 0.01) -> go.Figure:
    """Every unit of every layer: its activity A_u (x, log) against its own KL (y, log), one colour per layer,
    one symbol per run. Crosses: units that count as active (A_u > threshold) with a nil KL of their own
    (< nil_kl): their mean moves only with the layer above."""
    from ..information import active_only_through_above
    fig = go.Figure()
    n_layers = max((len(i.activity) for i in info.values()), default=0)
    colours = layer_colours(n_layers)
    symbols = ["circle", "diamond", "square", "triangle-up"]
    rows = []
    for r, (name, inf) in enumerate(info.items()):
        through = active_only_through_above(inf.activity, inf.kl_per_unit, threshold, nil_kl)
        for layer, (a, k, m) in enumerate(zip(inf.activity, inf.kl_per_unit, through)):
            units = np.arange(len(a))
            sym = np.where(m, "x", symbols[r % len(symbols)])
            fig.add_trace(go.Scatter(
                x=np.maximum(a, KL_FLOOR), y=np.maximum(k, KL_FLOOR), mode="markers", customdata=units,
                name=f"{name} · {layer_name(layer)}", legendgroup=name,
                marker=dict(color=colours[layer], size=9, symbol=list(sym), line=dict(width=1, color="#333333")),
                hovertemplate=f"{name} · {layer_name(layer)} unit %{{customdata}}<br>A_u %{{x:.3g}} · KL %{{y:.3g}} "
                              "nats<extra></extra>"))
            rows += [{"run": name, "layer": layer_name(layer), "unit": int(u), "activity": float(av), "kl_nats": float(kv),
                      "active_only_through_above": bool(mv)} for u, av, kv, mv in zip(units, a, k, m)]
    if rows:
        fig.add_vline(x=threshold, line_dash="dot", line_color="#888888", annotation_text=f"A_u = {threshold:g}")
        fig.add_hline(y=nil_kl, line_dash="dot", line_color="#888888", annotation_text=f"KL = {nil_kl:g} nats",
                      annotation_position="bottom right")
    else:
        _note(fig, "no runs")
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    with_numbers(fig, pd.DataFrame(rows, columns=["run", "layer", "unit", "activity", "kl_nats",
                                                  "active_only_through_above"]))
    return _style(fig, "Each unit's activity A_u against its own KL (×: active only through the layer above)",
                  height=460, xaxis="activity A_u = Var_x E_q[u|x] (log)", yaxis="KL(q‖p) of the unit, nats (log)",
                  legend=dict(title=dict(text="run · layer")))


def iw_bound_curve(bounds: Mapping[str, Mapping[int, tuple[float, ...]]]) -> go.Figure:
    """L_K against K (log axis) per run (explorer.information.iw_bounds): K = 1 is the ELBO; the rise is the
    ELBO-IW gap. Error bars: ±1 SE of each step's gain over the K before (paired: the same draws), which is
    what tells whether the curve still rises; the bounds' own SE over the images is on hover."""
    fig = go.Figure()
    colours = run_colours(list(bounds))
    rows = []
    for name, b in bounds.items():
        ks = sorted(b)
        y = [b[k][0] for k in ks]
        se = [b[k][1] for k in ks]
        gain_se = [b[k][2] if len(b[k]) > 2 and not math.isnan(b[k][2]) else 0.0 for k in ks]
        gain = [0.0] + [y[i] - y[i - 1] for i in range(1, len(y))]
        fig.add_trace(go.Scatter(x=ks, y=y, mode="lines+markers", name=name, line=dict(color=colours[name]),
                                 error_y=dict(type="data", array=gain_se, visible=True),
                                 customdata=list(zip(gain, gain_se, se)),
                                 hovertemplate=f"{name}<br>K = %{{x}}: %{{y:.2f}} nats<br>gain over the K before: "
                                               "%{customdata[0]:.3f} ± %{customdata[1]:.3f}<br>SE of the bound over "
                                               "the images: %{customdata[2]:.2f}<extra></extra>"))
        rows += [{"run": name, "K": k, "bound_nats": v, "standard_error": s, "gain_over_previous_K": d,
                  "gain_standard_error": ds} for k, v, s, d, ds in zip(ks, y, se, gain, gain_se)]
    if not rows:
        _note(fig, "not computed yet")
    fig.update_xaxes(type="log")
    with_numbers(fig, pd.DataFrame(rows, columns=["run", "K", "bound_nats", "standard_error", "gain_over_previous_K",
                                                  "gain_standard_error"]))
    return _style(fig, "Importance-weighted bound L_K for growing K (K = 1: the ELBO)", height=400,
                  xaxis="importance samples K (log)", yaxis="L_K (nats per image)", legend=dict(title=dict(text="run")))


def rate_distortion_curves(histories: Mapping[str, pd.DataFrame]) -> go.Figure:
    """Training's path in the rate-distortion plane: x = rate (the epoch's KL summed over layers),
    y = distortion (-log p(x|z1)), one line per run, epochs on hover (Alemi et al. 2018's plane)."""
    fig = go.Figure()
    colours = run_colours(list(histories))
    rows = []
    for r, (name, h) in enumerate(histories.items()):
        epochs, kl = _list_rows(h, "kl_per_layer")
        recon = _metric_rows(h, "recon").set_index("epoch")["recon"] if not h.empty else pd.Series(dtype=float)
        keep = [i for i, e in enumerate(epochs) if e in recon.index]
        if not keep:
            continue
        rate = np.nansum(kl[keep], axis=1)
        dist = -recon.loc[epochs[keep]].to_numpy(dtype=float)
        fig.add_trace(go.Scatter(x=rate, y=dist, mode="lines+markers", name=name, customdata=epochs[keep],
                                 line=dict(color=colours[name], dash=RUN_DASHES[r % len(RUN_DASHES)]),
                                 marker=dict(size=4),
                                 hovertemplate=f"{name}<br>epoch %{{customdata}}: rate %{{x:.2f}}, distortion "
                                               "%{y:.2f} nats<extra></extra>"))
        rows += [{"run": name, "epoch": int(e), "rate_nats": float(a), "distortion_nats": float(d)}
                 for e, a, d in zip(epochs[keep], rate, dist)]
    if not rows:
        _note(fig, "no epochs yet")
    with_numbers(fig, pd.DataFrame(rows, columns=["run", "epoch", "rate_nats", "distortion_nats"]))
    return _style(fig, "Rate against distortion over training (training set, per epoch)", height=420,
                  xaxis="rate: KL summed over layers (nats per image)", yaxis="distortion −log p(x|z1) (nats)",
                  legend=dict(title=dict(text="run")))


MIN_BAND_UNITS, MAX_BAND_UNITS = 8, 24  # a layer's band in the collapse timeline: as tall as this many units


def collapse_timeline(epochs: Sequence[int], values: Sequence[np.ndarray], threshold: float, measure: str) -> go.Figure:
    """Unit over epochs, one band per layer with the top layer at the top, where collapse happens: each cell
    blue when the unit's value is over the threshold, so a unit switching on or off reads as a change along
    its row. A band is as tall as its units, within a floor and a ceiling, so that a 4-unit top layer stays
    readable beside a 64-unit z1 (issue 27: on a projector the upper layers were 6 px rows)."""
    rows = []
    layers = [np.asarray(v, dtype=float) for v in values]
    for layer, v in enumerate(layers):
        for unit in range(v.shape[1]):
            rows += [{"layer": layer_name(layer), "unit": unit, "epoch": int(e), "value": float(x),
                      "active": bool(x > threshold)} for e, x in zip(epochs, v[:, unit])]
    order = [i for i in reversed(range(len(layers))) if layers[i].ndim == 2 and layers[i].shape[1] > 0]
    weights = [min(max(layers[i].shape[1], MIN_BAND_UNITS), MAX_BAND_UNITS) for i in order]
    if not order:
        fig = _note(go.Figure(), "no epochs with per-unit values yet")
    else:
        fig = make_subplots(rows=len(order), cols=1, shared_xaxes=True, vertical_spacing=0.012,
                            row_heights=weights)
        for r, i in enumerate(order, start=1):
            v = layers[i]
            units = [f"u{u}" for u in range(v.shape[1])]
            fig.add_trace(go.Heatmap(x=[str(e) for e in epochs], y=units, z=(v.T > threshold).astype(float),
                                     text=np.vectorize(lambda x: f"{x:.3g}")(v.T), zmin=0, zmax=1,
                                     colorscale=[[0, "#f0f0f0"], [0.5, "#f0f0f0"], [0.5, "#2c7fb8"], [1, "#2c7fb8"]],
                                     showscale=False, xgap=1, ygap=0, name=layer_name(i),
                                     hovertemplate=f"{layer_name(i)} %{{y}} · epoch %{{x}}: {measure} %{{text}}"
                                                   "<extra></extra>"), row=r, col=1)
            fig.update_yaxes(title_text=layer_name(i), autorange="reversed", row=r, col=1,
                             showticklabels=v.shape[1] <= 16, title_standoff=4)
        fig.update_xaxes(title_text="epoch", row=len(order), col=1)
    units = sum(v.shape[1] for v in layers if v.ndim == 2)
    active_end = sum(int((v[-1] > threshold).sum()) for v in layers if v.ndim == 2 and len(v)) if order else 0
    with_numbers(fig, pd.DataFrame(rows, columns=["layer", "unit", "epoch", "value", "active"]))
    return _style(fig, f"Collapse timeline: units with {measure} > {threshold:g} (blue) per epoch<br><sup>"
                       f"{active_end} of {units} active at the end; the top layer first</sup>",
                  height=max(360, 9 * sum(weights) + 160) if order else 360)
