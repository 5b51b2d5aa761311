"""explorer.neighbours, explorer.align and explorer.information against brute force and known answers."""
from __future__ import annotations

import numpy as np
import pytest

from explorer.align import procrustes_align
from explorer.neighbours import LayerIndex, class_balanced_indices, label_agreement, neighbourhood_overlap


def test_neighbours_match_brute_force():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 5)).astype(np.float32)
    got = LayerIndex(z).all_neighbours(7)
    d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    want = np.argsort(d, axis=1)[:, :7]
    assert (got == want).mean() > 0.999  # float32 ties aside, the same neighbours in the same order
    assert not (got == np.arange(300)[:, None]).any()  # never the point itself


def test_a_collapsed_layer_groups_nothing_and_a_clustered_one_groups_by_class():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 50)
    clustered = rng.normal(size=(200, 3)) * 0.1 + labels[:, None] * 5.0
    collapsed = rng.normal(size=(200, 3)) * 1e-4
    assert label_agreement(LayerIndex(clustered).all_neighbours(5), labels) == pytest.approx(1.0)
    assert label_agreement(LayerIndex(collapsed).all_neighbours(5), labels) < 0.45  # chance is 0.25


def test_neighbourhood_overlap():
    a = np.array([[1, 2, 3], [0, 2, 3]])
    b = np.array([[3, 2, 1], [4, 5, 6]])
    np.testing.assert_allclose(neighbourhood_overlap(a, b), [1.0, 0.0])
    with pytest.raises(ValueError):
        neighbourhood_overlap(a, b[:, :2])


def test_class_balanced_indices_are_balanced_not_the_first_n():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    idx = class_balanced_indices(labels, 60, seed=0)
    counts = np.bincount(labels[idx], minlength=3)
    assert counts.tolist() == [25, 25, 10]  # every small class whole, the rest shared evenly
    assert len(set(idx.tolist())) == 60 and not np.array_equal(idx, np.arange(60))
    assert np.array_equal(idx, class_balanced_indices(labels, 60, seed=0))
    assert len(class_balanced_indices(labels, 5000)) == 1000


def test_procrustes_recovers_a_known_rotation():
    rng = np.random.default_rng(2)
    target = rng.normal(size=(100, 2))
    angle = 1.1
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    flipped = (target @ rot) * np.array([1.0, -1.0]) + np.array([3.0, -2.0])  # rotated, reflected, moved
    np.testing.assert_allclose(procrustes_align(flipped, target), target, atol=1e-10)


def test_mutual_information_of_a_gaussian_channel_has_the_known_answer():
    """x ~ N(0, 1), q(z|x) = N(a x, s^2) per unit: I(x; z) = d/2 log((a^2 + s^2) / s^2)."""
    from explorer.information import mutual_information
    rng = np.random.default_rng(3)
    a, s, d = 2.0, 0.5, 2
    x = rng.standard_normal((10_000, d))
    est, se = mutual_information(a * x, np.full_like(x, s ** 2), batch=1000)
    exact = d / 2 * np.log((a ** 2 + s ** 2) / s ** 2)  # 2.83 nats, well under the log B = 6.9 cap
    assert est == pytest.approx(exact, abs=0.1) and 0 < se < 0.05
    # a collapsed layer (q(z|x) = the prior for every x) carries nothing
    est0, _ = mutual_information(np.zeros_like(x), np.ones_like(x), batch=1000)
    assert abs(est0) < 0.02


def test_codes_export_records_run_selection_means_and_variances():
    import io
    import json

    from explorer.codes import codes_frame, codes_npz
    from explorer.encode import Encoding
    rng = np.random.default_rng(4)
    means = [rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 2)).astype(np.float32)]
    variances = [np.full((5, 3), 0.5, np.float32), np.full((5, 2), 0.25, np.float32)]
    enc = Encoding(means, means, variances)
    labels = np.array([0, 1, 2, 1, 0])
    z = np.load(io.BytesIO(codes_npz(enc, labels, "run-a", "the 5 points shown", index=[10, 11, 12, 13, 14])))
    np.testing.assert_array_equal(z["means_z2"], means[1])
    np.testing.assert_array_equal(z["variances_z1"], variances[0])
    assert z["index"].tolist() == [10, 11, 12, 13, 14] and z["labels"].tolist() == labels.tolist()
    about = json.loads(str(z["about"]))
    assert about["run"] == "run-a" and about["selection"] == "the 5 points shown" and about["layers"] == 2
    frame = codes_frame(enc, labels, "run-a", "sel")
    assert len(frame) == 5 * 3 + 5 * 2
    row = frame[(frame["layer"] == "z2") & (frame["point"] == 3) & (frame["unit"] == 1)].iloc[0]
    assert row["mean"] == pytest.approx(means[1][3, 1]) and row["variance"] == pytest.approx(0.25)
    assert row["class"] == 1 and row["run"] == "run-a"
