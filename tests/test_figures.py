"""explorer.figures: fast checks on synthetic arrays and history-shaped DataFrames (no training)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from explorer import figures as F
from explorer.figures import latent

try:  # the real one when explorer/encode.py is there; the builders only duck-type on these fields
    from explorer.encode import LayerPCA
except ImportError:  # pragma: no cover
    @dataclass
    class LayerPCA:  # type: ignore[no-redef]
        coords: np.ndarray
        explained: np.ndarray
        components: np.ndarray
        mean: np.ndarray
        sd: np.ndarray

RNG = np.random.default_rng(0)
N = 300
CLASSES = 4
UNITS = [16, 8, 2]


def fake_pca(n: int = N, units: int = 16, k: int = 3, seed: int = 0) -> LayerPCA:
    rng = np.random.default_rng(seed)
    coords = rng.normal(size=(n, k)).astype(np.float32)
    explained = np.array([0.5, 0.2, 0.1][:k])
    return LayerPCA(coords, explained, np.eye(k, units, dtype=np.float32), np.zeros(units, np.float32),
                    coords.std(axis=0))


@pytest.fixture
def labels() -> np.ndarray:
    return np.arange(N) % CLASSES


@pytest.fixture
def pcas() -> list[LayerPCA]:
    return [fake_pca(units=u, seed=i) for i, u in enumerate(UNITS)]


def history(epochs: int = 6, eval_every: int = 2, sizes=(4, 3, 2), offset: float = 0.0) -> pd.DataFrame:
    """Rows shaped like history.jsonl: test metrics only every eval_every epochs."""
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "beta": min(1.0, e / 3), "train_elbo": -100 + e + offset, "recon": -90 + e,
               "kl_per_layer": [float(i + 1 + e) for i in range(len(sizes))], "seconds": 0.1}
        if e % eval_every == 0:
            row.update(test_elbo=-101 + e + offset, test_recon=-91 + e,
                       test_kl_per_layer=[float(i + e) for i in range(len(sizes))],
                       active_units=[max(0, n - i) for i, n in enumerate(sizes)],
                       kl_per_unit=[[10.0 ** (-(u + 1)) * e for u in range(n)] for n in sizes])
        rows.append(row)
    return pd.DataFrame(rows)


def assert_styled(fig: go.Figure) -> None:
    assert fig.layout.template == pio.templates["plotly_white"]
    assert fig.layout.height and fig.layout.height >= 300
    assert fig.layout.title.text
    fig.to_json()  # serialisable, i.e. valid for the browser and for PNG/SVG export


def class_traces(fig: go.Figure) -> list:
    return [t for t in fig.data if t.legendgroup and t.legendgroup.startswith("class ")]


# ---- scatter plots ---------------------------------------------------------------------------

def test_grid_is_one_webgl_figure_with_one_column_per_layer(pcas, labels):
    fig = F.layer_scatter_grid(pcas, labels)
    assert all(isinstance(t, go.Scattergl) for t in fig.data)
    assert len(fig.data) == len(UNITS) * CLASSES
    assert {t.xaxis for t in fig.data} == {"x", "x2", "x3"}
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("z1 (16 units)") and "70%" in titles[0]  # 0.5 + 0.2 explained
    assert titles[2].startswith("z3 (2 units)")
    assert_styled(fig)


def test_grid_colours_legend_and_customdata_are_consistent(pcas, labels):
    fig = F.layer_scatter_grid(pcas, labels)
    by_class: dict[str, set] = {}
    for t in class_traces(fig):
        by_class.setdefault(t.name, set()).add(t.marker.color)
        layer = int(t.meta[1:]) - 1
        idx = np.asarray(t.customdata)
        assert (labels[idx] == int(t.name)).all()
        np.testing.assert_allclose(t.x, pcas[layer].coords[idx, 0], rtol=1e-6)
        np.testing.assert_allclose(t.y, pcas[layer].coords[idx, 1], rtol=1e-6)
    assert len(by_class) == CLASSES and all(len(c) == 1 for c in by_class.values())
    assert len({next(iter(c)) for c in by_class.values()}) == CLASSES  # distinct colours
    shown = [t for t in fig.data if t.showlegend is not False]
    assert sorted(t.name for t in shown) == [str(c) for c in range(CLASSES)]
    # the same class keeps its colour in another figure, even when other classes are missing
    only_3 = F.layer_scatter(fake_pca(n=5), np.full(5, 3), layer=0)
    assert only_3.data[0].marker.color == next(iter(by_class["3"]))


def test_highlight_marker_in_every_subplot(pcas, labels):
    fig = F.layer_scatter_grid(pcas, labels, highlight=7)
    marks = [t for t in fig.data if t.legendgroup == "selected"]
    assert len(marks) == len(UNITS)
    assert {t.xaxis for t in marks} == {"x", "x2", "x3"}
    for t in marks:
        assert list(t.customdata) == [7]
        assert t.marker.size >= 12 and t.marker.line.color == "#000000"
    assert sum(t.showlegend is not False for t in marks) == 1
    assert fig.data[-1].legendgroup == "selected"  # drawn on top
    stale = F.layer_scatter_grid(pcas, labels, highlight=N + 5)  # out of range: ignored, no error
    assert not [t for t in stale.data if t.legendgroup == "selected"]


def test_layer_scatter_2d_and_3d(labels):
    pca = fake_pca(units=16, k=3)
    flat = F.layer_scatter(pca, labels, layer=1, highlight=3, hover_images=["data:,"] * N)
    assert all(isinstance(t, go.Scattergl) for t in flat.data)
    assert "z2 (16 units)" in flat.layout.annotations[0].text
    assert_styled(flat)
    cube = F.layer_scatter(pca, labels, layer=1, highlight=3, three_d=True)
    assert all(isinstance(t, go.Scatter3d) for t in cube.data)
    assert len(cube.data) == CLASSES + 1
    t = class_traces(cube)[0]
    np.testing.assert_allclose(t.z, pca.coords[np.asarray(t.customdata), 2], rtol=1e-6)
    assert cube.layout.scene.zaxis.title.text.startswith("PC3")
    assert_styled(cube)
    two = F.layer_scatter(fake_pca(units=2, k=2), labels, layer=0, three_d=True)  # padded PC3 = 0
    assert all(np.all(np.asarray(t.z) == 0) for t in two.data)


def test_many_classes_use_one_trace_per_layer():
    n = 200
    lab = np.arange(n) % (F.MAX_CLASS_TRACES + 10)
    fig = F.layer_scatter_grid([fake_pca(n=n), fake_pca(n=n, seed=1)], lab)
    assert len(fig.data) == 2 and all(isinstance(t, go.Scattergl) for t in fig.data)
    assert list(fig.data[0].customdata) == list(range(n))


def test_label_count_mismatch_is_a_clear_error(pcas):
    with pytest.raises(ValueError, match="labels"):
        F.layer_scatter_grid(pcas, np.zeros(N - 1, int))


def test_explained_variance_and_per_layer_bars(pcas):
    fig = F.explained_variance(pcas)
    assert [t.name for t in fig.data] == ["PC1", "PC2", "PC3"]
    assert list(fig.data[0].x) == ["z1", "z2", "z3"]
    np.testing.assert_allclose(fig.data[1].y, [20, 20, 20])
    assert_styled(fig)
    bars = F.per_layer_bars({"VAE": [3, 0, 0], "LVAE": [5, 4, 2, 1]}, "Active units", "active units")
    assert [t.name for t in bars.data] == ["VAE", "LVAE"]
    assert all(isinstance(t, go.Bar) for t in bars.data) and bars.layout.barmode == "group"
    assert list(bars.data[1].x) == ["z1", "z2", "z3", "z4"]
    assert bars.data[0].marker.color != bars.data[1].marker.color
    assert bars.layout.yaxis.title.text == "active units"
    assert_styled(bars)


# ---- training history ------------------------------------------------------------------------

def test_training_curves_drop_nan_rows_for_test_metrics():
    hists = {"VAE": history(offset=0), "LVAE": history(offset=5)}
    test = F.training_curves(hists, "test_elbo")
    assert [t.name for t in test.data] == ["VAE", "LVAE"]
    assert list(test.data[0].x) == [2, 4, 6] and not np.isnan(np.asarray(test.data[0].y, float)).any()
    assert test.data[0].mode == "lines+markers"
    train = F.training_curves(hists, "train_elbo")
    assert list(train.data[1].x) == [1, 2, 3, 4, 5, 6] and train.data[1].mode == "lines"
    assert "nats" in train.layout.yaxis.title.text and train.layout.xaxis.title.text == "epoch"
    # colour per run is the same in every chart
    assert [t.line.color for t in test.data] == [t.line.color for t in train.data]
    assert test.data[0].line.color != test.data[1].line.color
    assert_styled(test)


def test_training_curves_empty_history_says_so():
    fig = F.training_curves({"new": pd.DataFrame()}, "test_elbo")
    assert not fig.data and "no test_elbo" in fig.layout.annotations[0].text
    assert_styled(fig)


def test_kl_per_layer_and_active_units_curves():
    hists = {"VAE": history(), "LVAE": history()}
    fig = F.kl_per_layer_curves(hists)
    assert len(fig.data) == 2 * 3
    assert {t.line.dash for t in fig.data if t.legendgroup == "VAE"} == {"solid"}
    assert {t.line.dash for t in fig.data if t.legendgroup == "LVAE"} == {"dash"}
    vae_colours = [t.line.color for t in fig.data if t.legendgroup == "VAE"]
    assert vae_colours == [t.line.color for t in fig.data if t.legendgroup == "LVAE"]  # colour = layer
    assert len(set(vae_colours)) == 3
    assert list(fig.data[0].y) == [2, 3, 4, 5, 6, 7]  # z1's KL at epochs 1..6
    assert "nats" in fig.layout.yaxis.title.text
    test = F.kl_per_layer_curves(hists, test=True, log_y=True)
    assert list(test.data[0].x) == [2, 4, 6] and test.layout.yaxis.type == "log"
    au = F.active_units_curves(hists)
    assert len(au.data) == 6 and list(au.data[0].x) == [2, 4, 6] and list(au.data[2].y) == [0, 0, 0]
    assert au.data[0].mode == "lines+markers"
    for f in (fig, test, au):
        assert_styled(f)


def test_kl_heatmap_shape_values_and_hover():
    h = history(sizes=(4, 3, 2))
    fig = F.kl_heatmap(h)
    (hm,) = fig.data
    z = np.asarray(hm.z, float)
    assert z.shape == (4 + 3 + 2, 3)
    assert list(hm.x) == [2, 4, 6]
    assert list(hm.y)[:5] == ["z1 u0", "z1 u1", "z1 u2", "z1 u3", "z2 u0"]
    raw = np.asarray(hm.customdata, float)
    assert raw[0, 0] == pytest.approx(0.1 * 2)  # z1 u0 at epoch 2
    np.testing.assert_allclose(z, np.log10(np.maximum(raw, 1e-4)))
    assert z[3, 0] == pytest.approx(math.log10(2e-4))  # z1 u3 at epoch 2: 1e-4 * 2
    assert hm.colorbar.title.text == "log10 KL (nats)"
    assert hm.zmin == -4 and hm.zmax >= z.max()  # the floor is the bottom of the colour scale
    assert F.kl_heatmap(h, zmax=2.0).data[0].zmax == 2.0  # a shared scale for side-by-side runs
    assert "%{text}" in hm.hovertemplate and hm.text[0][0] == "0.2"
    assert fig.layout.yaxis.autorange == "reversed"
    assert_styled(fig)


def test_kl_heatmap_floor():
    h = pd.DataFrame([{"epoch": 3, "kl_per_unit": [[0.0, 1e-6, 1.0]]}])
    z = np.asarray(F.kl_heatmap(h).data[0].z, float)
    np.testing.assert_allclose(z[:, 0], [-4, -4, 0])


@pytest.mark.parametrize("h", [pd.DataFrame(), history().drop(columns=["kl_per_unit"]),
                               history().assign(kl_per_unit=float("nan"))])
def test_kl_heatmap_without_evaluations(h):
    fig = F.kl_heatmap(h)
    assert not fig.data
    assert fig.layout.annotations[0].text == "no evaluation epochs yet"
    assert_styled(fig)


# ---- snapshots ---------------------------------------------------------------------------------

def snapshots(epochs=(0, 5, 10), n=120, units=(6, 4, 1)) -> dict[int, list[np.ndarray]]:
    rng = np.random.default_rng(1)
    return {e: [rng.normal(size=(n, u)).astype(np.float32) * (1 + e) for u in units] for e in epochs}


def test_snapshot_scatter_one_subplot_per_layer():
    snaps = snapshots()
    lab = np.arange(120) % 3
    fig = F.snapshot_scatter(snaps[10], lab, epoch=10)
    assert all(isinstance(t, go.Scattergl) for t in fig.data)
    assert {t.xaxis for t in fig.data} == {"x", "x2", "x3"}
    assert "epoch 10" in fig.layout.title.text and "z3 (1 units)" in fig.layout.annotations[2].text
    assert_styled(fig)


def test_snapshot_animation_frames_use_the_last_epochs_basis():
    from explorer.encode import layer_pca
    snaps = snapshots()
    lab = np.arange(120) % 3
    fig = F.snapshot_animation(snaps, lab)
    assert [f.name for f in fig.frames] == ["0", "5", "10"]
    assert [s.label for s in fig.layout.sliders[0].steps] == ["0", "5", "10"]
    assert fig.layout.updatemenus[0].buttons[0].args[0] is None  # play
    last = fig.frames[-1]
    assert list(last.traces) == list(range(len(fig.data)))
    for j, t in zip(last.traces, last.data):
        base = fig.data[j]
        layer, idx = int(base.meta[1:]) - 1, np.asarray(base.customdata)
        coords = layer_pca(snaps[10][layer], k=2).coords
        np.testing.assert_allclose(t.x, coords[idx, 0], atol=1e-4)
        np.testing.assert_allclose(t.y, coords[idx, 1], atol=1e-4)
    # earlier epochs are projected, not refitted: epoch 0 is epoch 10's data / 11 in that basis
    first = fig.frames[0]
    for j, t in zip(first.traces, first.data):
        layer, idx = int(fig.data[j].meta[1:]) - 1, np.asarray(fig.data[j].customdata)
        coords = layer_pca(snaps[10][layer], k=2).coords
        expected = latent._project(snaps[0][layer], layer_pca(snaps[10][layer], k=2))
        np.testing.assert_allclose(t.x, expected[idx, 0], atol=1e-4)
        assert np.abs(np.asarray(t.x)).max() < np.abs(coords[:, 0]).max()
    # fixed axes cover every epoch
    lo, hi = fig.layout.xaxis.range
    assert lo <= min(min(f.data[0].x) for f in fig.frames) and hi >= max(max(f.data[0].x) for f in fig.frames)
    assert_styled(fig)


def test_snapshot_animation_without_snapshots():
    fig = F.snapshot_animation({}, np.zeros(0))
    assert not fig.frames and fig.layout.annotations[0].text == "no snapshots yet"


# ---- CSV -------------------------------------------------------------------------------------

def test_each_figure_carries_the_table_it_was_drawn_from(pcas, labels):
    """The CSV numbers: the builder's own tidy table, columns named for what they hold."""
    grid = F.figure_frame(F.layer_scatter_grid(pcas, labels, highlight=2))
    assert list(grid.columns) == ["layer", "point", "class", "pc1", "pc2"]
    assert len(grid) == N * len(UNITS) and set(grid["layer"]) == {"z1", "z2", "z3"}
    z2 = grid[grid["layer"] == "z2"].sort_values("point")
    np.testing.assert_allclose(z2["pc1"], pcas[1].coords[:, 0], rtol=1e-6)
    assert (z2["class"].to_numpy() == np.asarray(labels)).all()
    # every plotted point is in the table: the traces of z2 hold exactly its pc1 values
    plotted = np.concatenate([np.asarray(t.x) for t in F.layer_scatter_grid(pcas, labels).data if t.meta == "z2"])
    np.testing.assert_allclose(np.sort(plotted), np.sort(z2["pc1"].to_numpy()), rtol=1e-6)

    three = F.figure_frame(F.layer_scatter(pcas[0], labels, 0, three_d=True))
    assert list(three.columns) == ["layer", "point", "class", "pc1", "pc2", "pc3"] and len(three) == N

    curves = F.figure_frame(F.training_curves({"a": history(), "b": history()}, "test_elbo"))
    assert list(curves.columns) == ["run", "epoch", "test_elbo"] and len(curves) == 6
    assert set(curves["run"]) == {"a", "b"} and curves["test_elbo"].notna().all()

    kl = F.figure_frame(F.kl_per_layer_curves({"a": history()}))
    assert list(kl.columns) == ["run", "epoch", "layer", "kl_per_layer"] and len(kl) == 6 * 3

    heat = F.figure_frame(F.kl_heatmap(history(sizes=(4, 3, 2))))
    assert list(heat.columns) == ["epoch", "layer", "unit", "kl_nats"] and len(heat) == 9 * 3
    row = heat[(heat["layer"] == "z1") & (heat["unit"] == 1) & (heat["epoch"] == 4)].iloc[0]
    assert row["kl_nats"] == pytest.approx(0.01 * 4)

    bars = F.figure_frame(F.per_layer_bars({"VAE": [1.0, 2.0]}, "t", "active units"))
    assert bars.values.tolist() == [["VAE", "z1", 1.0], ["VAE", "z2", 2.0]]

    explained = F.figure_frame(F.explained_variance(pcas))
    assert list(explained.columns) == ["layer", "component", "explained_percent"]

    anim = F.figure_frame(F.snapshot_animation(snapshots(), np.arange(120) % 3))
    assert len(anim) == 3 * 120 * 3 and set(anim["epoch"]) == {0, 5, 10}

    # a figure made elsewhere is flattened trace by trace
    other = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name="t"))
    assert list(F.figure_frame(other).columns) == F.FRAME_COLUMNS and len(F.figure_frame(other)) == 2
    assert list(F.figure_frame(go.Figure()).columns) == F.FRAME_COLUMNS


def test_export_config_for_png_and_svg():
    cfg = F.export_config("layers", "svg")
    assert cfg["toImageButtonOptions"] == {"format": "svg", "filename": "layers", "scale": 2}
    assert cfg["displaylogo"] is False


def test_snapshot_scatter_aligned_to_a_reference_keeps_its_axes():
    """An epoch whose PCA came out reflected is turned back onto the reference epoch's orientation."""
    rng = np.random.default_rng(5)
    z = rng.normal(size=(200, 4)) * np.array([3.0, 1.0, 0.3, 0.1])
    labels = np.arange(200) % 3
    plain = F.figure_frame(F.snapshot_scatter([z], labels, 1))
    aligned = F.figure_frame(F.snapshot_scatter([-z], labels, 1, reference=[z]))  # -z: PCA signs may flip
    np.testing.assert_allclose(aligned[["pc1", "pc2"]].to_numpy(), plain[["pc1", "pc2"]].to_numpy(), atol=1e-4)


def test_with_selection_greys_the_rest_in_a_copy():
    pcas = [fake_pca(seed=s) for s in range(3)]
    labels = np.arange(N) % 4
    base = F.layer_scatter_grid(pcas, labels, highlight=2)
    before = base.to_plotly_json()
    picked = [0, 5, 9]
    fig = F.with_selection(base, picked)
    assert base.to_plotly_json() == before  # the cached base is never changed
    for t in fig.data:
        if t.name == "selected point":
            assert t.selectedpoints is None
            continue
        data = np.asarray([t2 for t2 in base.data if t2.meta == t.meta and t2.name == t.name][0].customdata)
        assert sorted(data[list(t.selectedpoints)].tolist()) == sorted(p for p in picked if p in data.tolist())
        assert t.unselected.marker.color == latent.UNSELECTED
    assert F.figure_frame(fig).equals(F.figure_frame(base))
    go.Figure(fig.to_dict())  # still a valid figure (the copy skipped validation)
    assert F.with_selection(base, []) is base and F.with_selection(base, None) is base
    # the base grid greys unselected points itself, for plotly.js's own and the browser linker's selections
    assert all(t.unselected.marker.color == latent.UNSELECTED for t in base.data if t.name != "selected point")
    redrawn = F.with_selection(base, None, revision=3)  # no selection, but a new figure for the frontend
    assert redrawn is not base and redrawn.layout.datarevision == 3 and base.layout.datarevision is None
    assert all(t.selectedpoints is None for t in redrawn.data)
    three = F.layer_scatter(fake_pca(), labels, 0, three_d=True, selected=picked)
    colours = [c for t in three.data if t.name != "selected point" for c in t.marker.color]
    assert colours.count(latent.UNSELECTED) == N - len(picked)


def test_a_frozen_figure_sends_the_same_json_and_refuses_changes():
    base = F.layer_scatter_grid([fake_pca(seed=s) for s in range(2)], np.arange(N) % 4)
    sent = pio.to_json(base, validate=False)
    frozen = F.freeze(base)
    assert frozen is base and pio.to_json(frozen, validate=False) == sent  # what st.plotly_chart sends
    assert frozen.to_dict() is frozen.to_dict()  # no deep copy per chart
    with pytest.raises(TypeError, match="frozen"):
        frozen.update_layout(height=10)
    copy = go.Figure(frozen)  # a change goes onto a copy
    copy.update_layout(height=10)
    assert copy.layout.height == 10 and pio.to_json(frozen, validate=False) == sent


def test_a_figure_from_a_spec_builds_its_traces_only_when_read():
    spec = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name="a")).to_dict()
    fig = F.from_spec(spec)
    assert fig.to_dict() is spec and "_built_figure" not in fig.__dict__
    assert [t.name for t in fig.data] == ["a"] and list(fig.data[0].y) == [3, 4]
    assert "_built_figure" in fig.__dict__


def test_points_are_named_by_their_test_set_position_in_hovers_and_the_csv():
    """Issue 27, item 6: one numbering. Given the points' test-set positions, a grid names every point by it:
    customdata (what selections and clicks report), hovers, the followed point's marker and the CSV."""
    pcas = [fake_pca(seed=s) for s in range(2)]
    labels = np.arange(N) % 4
    ids = np.arange(N) * 7 + 1000
    fig = F.layer_scatter_grid(pcas, labels, highlight=3, ids=ids)
    table = F.figure_frame(fig)
    assert sorted(table["point"].unique().tolist()) == sorted(ids.tolist())
    points = [t for t in fig.data if t.name != "selected point"]
    assert sorted(int(c) for t in points if t.xaxis == "x" for c in t.customdata) == sorted(ids.tolist())
    assert all("test image %{customdata}" in t.hovertemplate for t in points)
    marks = [t for t in fig.data if t.name == "selected point"]
    assert marks and all(list(t.customdata) == [ids[3]] for t in marks)
    # a cached grid, then a selection and a followed point by the same numbers
    base = F.layer_scatter_grid(pcas, labels, ids=ids)
    import base64

    def cells(v):  # plotly's JSON keeps numpy arrays as {"dtype", "bdata"}
        return np.frombuffer(base64.b64decode(v["bdata"]), v["dtype"]) if isinstance(v, dict) else np.asarray(v)
    marked = F.with_selection(base, ids[[0, 1]], highlight=int(ids[5])).to_dict()["data"]
    assert [cells(t["customdata"]).tolist() for t in marked if t["name"] == "selected point"] == [[int(ids[5])]] * 2
    chosen = {int(c) for t in marked if t["name"] != "selected point" and t["xaxis"] == "x"
              for j, c in enumerate(cells(t["customdata"])) if j in t["selectedpoints"]}
    assert chosen == {int(ids[0]), int(ids[1])}


def test_pca_axes_are_in_prior_sd_only_where_the_prior_sd_is_known():
    """Issue 27, item 11: an axis titled "prior sd" is drawn in prior sd (its ticks are multiples of the
    prior's sd along the component); one whose prior sd is unknown stays in the codes' units and says so."""
    pcas = [fake_pca(seed=0), fake_pca(seed=1)]
    labels = np.arange(N) % 4
    fig = F.layer_scatter_grid(pcas, labels, prior_sd=[[2.0, 4.0], [0.0, 0.5]])
    x1 = np.concatenate([t.x for t in fig.data if t.xaxis == "x" and t.name != "selected point"])
    y1 = np.concatenate([t.y for t in fig.data if t.yaxis == "y" and t.name != "selected point"])
    raw = np.concatenate([pcas[0].coords[labels == c] for c in sorted(set(labels))])
    np.testing.assert_allclose(np.sort(x1), np.sort(raw[:, 0] / 2.0), rtol=1e-5)
    np.testing.assert_allclose(np.sort(y1), np.sort(raw[:, 1] / 4.0), rtol=1e-5)
    assert fig.layout.xaxis.title.text == "PC1 (prior sd)" and fig.layout.yaxis2.title.text == "PC2 (prior sd)"
    assert fig.layout.xaxis2.title.text == "PC1"  # a nil prior sd: not in prior sd, and not said to be


def test_pictures_are_grey_or_colour_from_the_image_shape():
    """Issue 28: images as images: (h, w) or (1, h, w) draws grey, (3, h, w) colour (pixels in C, H, W order)."""
    from explorer.images import gif_bytes, image_grid
    red = np.zeros((1, 3, 2, 2), np.float32)
    red[:, 0] = 1.0  # the red channel full, green and blue empty
    img = image_grid(red.reshape(1, -1), (3, 2, 2), scale=2, pad=0)
    assert img.mode == "RGB" and img.size == (4, 4) and img.getpixel((1, 1)) == (255, 0, 0)
    grey = image_grid(np.full((2, 4), 0.5, np.float32), (1, 2, 2), pad=0, scale=1)
    assert grey.mode == "L" and grey.getpixel((0, 0)) == 128
    assert image_grid(np.full((2, 4), 0.5, np.float32), (2, 2), pad=0, scale=1).tobytes() == grey.tobytes()
    assert gif_bytes(np.repeat(red.reshape(1, -1), 3, axis=0), (3, 2, 2))[:3] == b"GIF"
