"""Tests for training/data.py; every file is a tiny one made in tmp_path, no real dataset is read."""
from __future__ import annotations

import gzip
import io
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training import data as data_mod
from training.data import DATASETS, Dataset, binarize, load_dataset, read_idx
from training.errors import DataError, UserError

N_TRAIN, N_TEST = 20, 10


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    # No test may touch the network.
    monkeypatch.setenv("LVAE_OFFLINE", "1")


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file holding arr (uint8 unless code says otherwise)."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}.get(code, ">u1")
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=dtype).tobytes()


def write(path: Path, payload: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def make_images(n: int, seed: int, side: int = 28) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, side, side), dtype=np.uint8)


def make_labels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10, size=n, dtype=np.uint8)


def write_idx_set(folder: Path, gz: bool = False, **overrides: bytes) -> dict[str, np.ndarray]:
    """The four MNIST files in folder; overrides replace a file's bytes (key = file stem with _)."""
    arrays = {
        "train-images-idx3-ubyte": make_images(N_TRAIN, 1),
        "train-labels-idx1-ubyte": make_labels(N_TRAIN, 2),
        "t10k-images-idx3-ubyte": make_images(N_TEST, 3),
        "t10k-labels-idx1-ubyte": make_labels(N_TEST, 4),
    }
    for name, arr in arrays.items():
        payload = overrides.get(name.replace("-", "_"), idx_bytes(arr))
        write(folder / name, payload, gz=gz)
    return arrays


# --------------------------------------------------------------------- digits

def test_digits_shapes_range_labels():
    ds = load_dataset("digits")
    assert isinstance(ds, Dataset) and ds.name == "digits"
    assert ds.train_x.shape == (1437, 64) and ds.test_x.shape == (360, 64)
    assert ds.train_y.shape == (1437,) and ds.test_y.shape == (360,)
    assert ds.train_x.dtype == np.float32 and ds.train_y.dtype == np.int64
    assert ds.image_shape == (8, 8) and ds.input_dim == 64
    for x in (ds.train_x, ds.test_x):
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert ds.train_x.max() == 1.0
    assert set(np.unique(ds.train_y)) == set(range(10)) == set(np.unique(ds.test_y))


def test_digits_split_is_deterministic():
    a, b = load_dataset("digits"), load_dataset("digits")
    np.testing.assert_array_equal(a.train_x, b.train_x)
    np.testing.assert_array_equal(a.test_y, b.test_y)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    assert issubclass(DataError, UserError)
    assert DATASETS == ("digits", "mnist", "fashion-mnist", "omniglot")


# ------------------------------------------------------------------ IDX files

@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    arr = make_images(3, 0)
    p = write(tmp_path / "x-idx3-ubyte", idx_bytes(arr), gz=gz)
    out = read_idx(p)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("code, dtype", [(0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
                                         (0x0D, np.float32), (0x0E, np.float64)])
def test_read_idx_other_types(tmp_path, code, dtype):
    arr = np.arange(-3, 9).reshape(3, 4).astype(dtype)
    out = read_idx(write(tmp_path / "t.idx", idx_bytes(arr, code)))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_read_idx_gzip_by_content_without_gz_name(tmp_path):
    arr = make_labels(7, 0)
    p = tmp_path / "labels-idx1-ubyte"
    p.write_bytes(gzip.compress(idx_bytes(arr)))
    np.testing.assert_array_equal(read_idx(p), arr)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_dataset(tmp_path, name, gz):
    arrays = write_idx_set(tmp_path, gz=gz)
    ds = load_dataset(name, tmp_path)
    assert ds.name == name and ds.image_shape == (28, 28) and ds.input_dim == 784
    assert ds.train_x.shape == (N_TRAIN, 784) and ds.test_x.shape == (N_TEST, 784)
    assert ds.train_x.dtype == np.float32 and ds.train_y.dtype == np.int64
    # bytes/256 by default, as the authors' mnist.pkl.gz; bytes/255 on request
    np.testing.assert_allclose(ds.train_x, arrays["train-images-idx3-ubyte"].reshape(N_TRAIN, 784) / 256.0,
                               rtol=1e-6)
    np.testing.assert_allclose(ds.test_x[3], arrays["t10k-images-idx3-ubyte"][3].ravel() / 256.0, rtol=1e-6)
    np.testing.assert_allclose(load_dataset(name, tmp_path, pixel_scale=255).test_x[3],
                               arrays["t10k-images-idx3-ubyte"][3].ravel() / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.train_y, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.test_y, arrays["t10k-labels-idx1-ubyte"])
    assert 0.0 <= ds.train_x.min() and ds.train_x.max() <= 1.0


def test_load_mixed_plain_and_gz(tmp_path):
    write_idx_set(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    labels = np.full(N_TEST, 7, dtype=np.uint8)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(labels))
    assert (load_dataset("mnist", tmp_path).test_y == 7).all()


def test_plain_file_preferred_over_gz(tmp_path):
    write_idx_set(tmp_path, gz=True)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.full(N_TRAIN, 3, dtype=np.uint8)))
    assert (load_dataset("mnist", tmp_path).train_y == 3).all()


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_load_from_subfolder(tmp_path, name):
    write_idx_set(tmp_path / name, gz=True)
    ds = load_dataset(name, tmp_path)
    assert ds.train_x.shape == (N_TRAIN, 784)


def test_named_subfolder_wins_over_data_dir(tmp_path):
    # Same file names for both datasets: data/fashion-mnist/ must not lose to MNIST files in data/.
    write_idx_set(tmp_path)
    write_idx_set(tmp_path / "fashion-mnist",
                  train_labels_idx1_ubyte=idx_bytes(np.full(N_TRAIN, 9, dtype=np.uint8)))
    assert (load_dataset("fashion-mnist", tmp_path).train_y == 9).all()
    assert not (load_dataset("mnist", tmp_path).train_y == 9).all()


def header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def gz_truncated(payload: bytes) -> bytes:
    blob = gzip.compress(payload)
    return blob[: len(blob) // 2]


def gz_bad_crc(payload: bytes) -> bytes:
    blob = bytearray(gzip.compress(payload))
    blob[-8] ^= 0xFF   # first byte of the CRC32 trailer
    return bytes(blob)


IMG = make_images(N_TRAIN, 1)
BAD_FILES = {
    "wrong magic": (b"\x01\x02" + idx_bytes(IMG)[2:], "not an IDX file"),
    "wrong dtype code": (bytes([0, 0, 0x07, 3]) + idx_bytes(IMG)[4:], "unsupported IDX data type code 0x07"),
    "non-uint8 images": (idx_bytes(IMG.astype(np.int32), 0x0C), "expected unsigned bytes"),
    "truncated data": (idx_bytes(IMG)[:-100], f"truncated: expected {IMG.size} bytes of data, found {IMG.size - 100}"),
    "truncated header": (idx_bytes(IMG)[:9], "truncated IDX header"),
    "short header": (b"\x00\x00", "too short for an IDX header"),
    "extra bytes": (idx_bytes(IMG) + b"\x00" * 5, "5 extra bytes"),
    "huge dims": (header(0x08, (4_000_000_000, 28, 28)) + b"\x00" * 100, "truncated: expected 3136000000000 bytes"),
    "zero dims": (bytes([0, 0, 8, 0]), "0 dimensions"),
    "empty file": (b"", "empty file"),
    "wrong image size": (idx_bytes(make_images(N_TRAIN, 1, side=27)), "expected 28x28 images, found 27x27"),
    "labels as images": (idx_bytes(make_labels(N_TRAIN, 0)), "expected 3 dimensions"),
    "no images": (idx_bytes(np.zeros((0, 28, 28), np.uint8)), "holds no images"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_train_images_file(tmp_path, case):
    payload, message = BAD_FILES[case]
    write_idx_set(tmp_path, train_images_idx3_ubyte=payload)
    with pytest.raises(DataError, match="train-images-idx3-ubyte") as info:
        load_dataset("mnist", tmp_path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.__suppress_context__ or info.value.__context__ is None


@pytest.mark.parametrize("make", [gz_truncated, gz_bad_crc, lambda p: b"\x1f\x8bnot really gzip at all",
                                  lambda p: gzip.compress(p) + b"garbage after the member"])
def test_corrupt_gzip(tmp_path, make):
    p = tmp_path / "train-images-idx3-ubyte.gz"
    write_idx_set(tmp_path, gz=True)
    p.write_bytes(make(idx_bytes(IMG)))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: corrupt gzip file"):
        load_dataset("mnist", tmp_path)


def test_plain_idx_named_gz_is_corrupt_gzip(tmp_path):
    p = write(tmp_path / "x.gz", idx_bytes(IMG))
    with pytest.raises(DataError, match=r"x\.gz: corrupt gzip file"):
        read_idx(p)


def test_huge_dims_in_gzip_refused_without_allocating(tmp_path):
    p = write(tmp_path / "h", header(0x08, (4_000_000_000, 28, 28)) + b"\x00" * 100, gz=True)
    with pytest.raises(DataError, match="truncated: expected 3136000000000 bytes of data, found 100"):
        read_idx(p)
    p = write(tmp_path / "e", idx_bytes(IMG) + b"\x01" * 7, gz=True)
    with pytest.raises(DataError, match="7 extra bytes"):
        read_idx(p)


def test_label_count_mismatch(tmp_path):
    write_idx_set(tmp_path, train_labels_idx1_ubyte=idx_bytes(make_labels(N_TRAIN - 1, 0)))
    with pytest.raises(DataError, match=f"train-labels-idx1-ubyte: {N_TRAIN - 1} labels but "
                                        f"train-images-idx3-ubyte has {N_TRAIN} images"):
        load_dataset("mnist", tmp_path)


def test_label_out_of_range(tmp_path):
    labels = make_labels(N_TEST, 0)
    labels[4] = 10
    write_idx_set(tmp_path, t10k_labels_idx1_ubyte=idx_bytes(labels))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: label 10 outside 0..9"):
        load_dataset("fashion-mnist", tmp_path)


def test_labels_with_two_dims(tmp_path):
    write_idx_set(tmp_path, train_labels_idx1_ubyte=idx_bytes(make_labels(N_TRAIN, 0).reshape(N_TRAIN, 1)))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte: expected 1 dimension"):
        load_dataset("mnist", tmp_path)


def test_directory_in_place_of_file(tmp_path):
    write_idx_set(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    (tmp_path / "t10k-images-idx3-ubyte").mkdir()
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: not a regular file"):
        load_dataset("mnist", tmp_path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope: file not found"):
        read_idx(tmp_path / "nope")


NEEDED = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
          "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_missing_files_offline(tmp_path, monkeypatch, name):
    def no_network(*args, **kwargs):
        raise AssertionError("network touched with LVAE_OFFLINE=1")
    monkeypatch.setattr(data_mod.urllib.request, "urlopen", no_network)
    write_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()   # three of four is still missing
    with pytest.raises(DataError) as info:
        load_dataset(name, tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and name in msg and str(tmp_path) in msg
    for f in NEEDED:
        assert f in msg
    assert "LVAE_OFFLINE" in msg


def test_missing_files_failed_download_tries_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LVAE_OFFLINE", "0")
    calls = []

    def fail(url, timeout):
        calls.append((url, timeout))
        raise OSError("network unreachable")
    monkeypatch.setattr(data_mod.urllib.request, "urlopen", fail)
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match="no network to download them") as info:
        load_dataset("mnist", tmp_path / "data")
    assert calls == [("https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz", 5.0)]
    assert all(f in str(info.value) for f in NEEDED)
    assert list((tmp_path / "data").iterdir()) == []   # no partial file, not even a folder left behind


def test_a_mistyped_data_folder_is_never_downloaded_into(tmp_path, monkeypatch):
    """Issue 27, item 5: a --data-dir that does not exist is a typo until the user creates it."""
    monkeypatch.setenv("LVAE_OFFLINE", "0")

    def no_network(*args, **kwargs):
        raise AssertionError("downloaded into a folder nobody created")
    monkeypatch.setattr(data_mod.urllib.request, "urlopen", no_network)
    with pytest.raises(DataError, match="does not exist") as info:
        load_dataset("fashion-mnist", tmp_path / "dtaa")
    assert "\n" not in str(info.value) and "mistyped" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_files_at_hand_says_whether_a_dataset_can_train_and_where_its_files_go(tmp_path):
    from training.data import files_at_hand
    assert files_at_hand("digits", tmp_path / "nowhere")[0]
    ok, where = files_at_hand("mnist", tmp_path)
    assert not ok and str(tmp_path / "mnist") in where and all(f in where for f in NEEDED)
    write_idx_set(tmp_path / "mnist")
    assert files_at_hand("mnist", tmp_path) == (True, str(tmp_path / "mnist"))
    assert not files_at_hand("omniglot", tmp_path)[0] and "chardata.mat" in files_at_hand("omniglot", tmp_path)[1]


def test_download_fetches_all_four(tmp_path, monkeypatch):
    monkeypatch.delenv("LVAE_OFFLINE")
    served = {"train-images-idx3-ubyte": make_images(5, 0), "train-labels-idx1-ubyte": make_labels(5, 0),
              "t10k-images-idx3-ubyte": make_images(2, 1), "t10k-labels-idx1-ubyte": make_labels(2, 1)}
    urls = []

    def fake_urlopen(url, timeout):
        urls.append(url)
        base = url.rsplit("/", 1)[1].removesuffix(".gz")
        return io.BytesIO(gzip.compress(idx_bytes(served[base])))
    monkeypatch.setattr(data_mod.urllib.request, "urlopen", fake_urlopen)
    ds = load_dataset("fashion-mnist", tmp_path)
    assert ds.train_x.shape == (5, 784) and ds.test_x.shape == (2, 784)
    assert all(u.startswith("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/") for u in urls)
    assert sorted(p.name for p in (tmp_path / "fashion-mnist").iterdir()) == sorted(NEEDED)


# ------------------------------------------------------------------- Omniglot

def omniglot_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 28, 28)).astype(np.float32)


def to_chardata(images: np.ndarray) -> np.ndarray:
    """784 x N, each column one image in MATLAB (column-major) pixel order, as in chardata.mat."""
    return images.reshape(len(images), 784, order="F").T.astype(np.float64)


def one_hot(labels: np.ndarray, k: int = 50) -> np.ndarray:
    t = np.zeros((k, len(labels)))
    t[labels, np.arange(len(labels))] = 1
    return t


def write_chardata(path: Path, n_train: int = 30, n_test: int = 12, drop: tuple[str, ...] = (),
                   **override) -> dict:
    rng = np.random.default_rng(5)
    train, test = omniglot_images(n_train, 6), omniglot_images(n_test, 7)
    train_y, test_y = rng.integers(0, 50, n_train), rng.integers(0, 50, n_test)
    mat = {"data": to_chardata(train), "testdata": to_chardata(test),
           "target": one_hot(train_y), "testtarget": one_hot(test_y)}
    mat.update(override)
    for k in drop:
        del mat[k]
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, mat)
    return {"train": train, "test": test, "train_y": train_y, "test_y": test_y}


@pytest.mark.parametrize("sub", ["", "omniglot"])
def test_omniglot(tmp_path, sub):
    truth = write_chardata(tmp_path / sub / "chardata.mat")
    ds = load_dataset("omniglot", tmp_path)
    assert ds.train_x.shape == (30, 784) and ds.test_x.shape == (12, 784)
    assert ds.train_x.dtype == np.float32 and ds.train_y.dtype == np.int64
    assert ds.image_shape == (28, 28) and ds.input_dim == 784
    # Rows are row-major 28x28 images: pixel (row r, column c) is at r * 28 + c.
    np.testing.assert_allclose(ds.train_x.reshape(-1, 28, 28), truth["train"], rtol=1e-6)
    np.testing.assert_allclose(ds.test_x.reshape(-1, 28, 28), truth["test"], rtol=1e-6)
    np.testing.assert_array_equal(ds.train_y, truth["train_y"])
    np.testing.assert_array_equal(ds.test_y, truth["test_y"])


def test_omniglot_known_pixel(tmp_path):
    # One bright pixel at row 2, column 5 of image 1: in chardata.mat's column-major
    # order it sits at index 5 * 28 + 2 of column 1.
    data = np.zeros((784, 3))
    data[5 * 28 + 2, 1] = 1.0
    write_chardata(tmp_path / "chardata.mat", data=data, target=one_hot(np.array([0, 3, 1])))
    ds = load_dataset("omniglot", tmp_path)
    assert ds.train_x[1].reshape(28, 28)[2, 5] == 1.0
    assert ds.train_x.sum() == 1.0
    assert list(ds.train_y) == [0, 3, 1]


def test_omniglot_without_targets_gives_zero_labels(tmp_path):
    write_chardata(tmp_path / "chardata.mat", drop=("target", "testtarget"))
    ds = load_dataset("omniglot", tmp_path)
    assert (ds.train_y == 0).all() and ds.train_y.shape == (30,) and ds.test_y.shape == (12,)


@pytest.mark.parametrize("kwargs, message", [
    (dict(drop=("testdata",)), "no variable 'testdata'"),
    (dict(data=np.zeros((783, 30))), "'data' must have 784 rows"),
    (dict(data=np.full((784, 30), 2.0)), "'data' has values outside [0, 1]"),
    (dict(data=np.full((784, 30), np.nan)), "'data' has values outside [0, 1]"),
    (dict(target=np.zeros((50, 29))), "'target' has 29 columns but there are 30 images"),
    (dict(testdata=np.array(["abc"])), "'testdata' must be a 2-D numeric matrix"),
])
def test_omniglot_bad_contents(tmp_path, kwargs, message):
    write_chardata(tmp_path / "chardata.mat", **kwargs)
    with pytest.raises(DataError, match="chardata.mat") as info:
        load_dataset("omniglot", tmp_path)
    assert message in str(info.value)


@pytest.mark.parametrize("payload", [b"this is not a mat file at all" * 10, b"", b"\x00" * 200,
                                     b"MATLAB 5.0 MAT-file" + b"\x00" * 150])
def test_omniglot_not_a_mat_file(tmp_path, payload):
    (tmp_path / "chardata.mat").write_bytes(payload)
    with pytest.raises(DataError, match="chardata.mat"):
        load_dataset("omniglot", tmp_path)


def test_omniglot_truncated_mat(tmp_path):
    p = tmp_path / "chardata.mat"
    write_chardata(p)
    p.write_bytes(p.read_bytes()[:3000])
    with pytest.raises(DataError, match="chardata.mat"):
        load_dataset("omniglot", tmp_path)


def test_omniglot_missing(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset("omniglot", tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "chardata.mat") in msg
    assert "https://github.com/yburda/iwae/raw/master/datasets/OMNIGLOT/chardata.mat" in msg


# ------------------------------------------------------------------- binarize

def test_binarize():
    x = np.random.default_rng(0).random((400, 784)).astype(np.float32)
    a, b = binarize(x, seed=3), binarize(x, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == x.shape
    assert set(np.unique(a)) <= {0.0, 1.0}
    assert abs(a.mean() - x.mean()) < 0.005
    assert not np.array_equal(a, binarize(x, seed=4))
    assert (binarize(np.zeros(50), 0) == 0).all() and (binarize(np.ones(50), 0) == 1).all()


# ----------------------------------------------------------------------- fuzz

VALID_IDX = idx_bytes(make_images(2, 0, side=4))


@st.composite
def idx_like_bytes(draw):
    kind = draw(st.sampled_from(["random", "mutated", "truncated", "header"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "header":   # a plausible header with arbitrary dims and a short body
        ndim = draw(st.integers(0, 6))
        dims = draw(st.lists(st.integers(0, 2**32 - 1), min_size=ndim, max_size=ndim))
        code = draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]))
        return header(code, tuple(dims)) + draw(st.binary(max_size=64))
    blob = bytearray(VALID_IDX)
    if kind == "truncated":
        return bytes(blob[: draw(st.integers(0, len(blob)))])
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(blob) - 1))
        blob[i] = draw(st.integers(0, 255))
    return bytes(blob)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=idx_like_bytes(), gz=st.sampled_from(["plain", "gz", "gz-cut"]))
def test_read_idx_fuzz(payload, gz):
    if gz == "gz":
        payload = gzip.compress(payload)
    elif gz == "gz-cut":
        payload = gzip.compress(payload)[:-3]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / ("f.gz" if gz != "plain" else "f")
        p.write_bytes(payload)
        try:
            out = read_idx(p)
        except DataError as e:
            assert "\n" not in str(e) and str(p) in str(e)
        else:
            assert isinstance(out, np.ndarray)


def test_a_zero_dimension_beside_huge_ones_is_a_data_error(tmp_path):
    """Found by the fuzz test: 0 bytes of data, but a shape numpy cannot describe."""
    p = tmp_path / "f"
    p.write_bytes(bytes([0, 0, 0x08, 4]) + (0).to_bytes(4, "big") + (2**31 - 1).to_bytes(4, "big") * 3)
    with pytest.raises(DataError, match="dimensions"):
        read_idx(p)


def test_bernoulli_entropy_of_the_two_pixel_scales(tmp_path):
    """The noise binarizing adds, from IDX files: a pixel byte b gives entropy H(b/scale). On real MNIST's test set
    this is 45.53 nats per image at /255 and 46.83 at /256 (the authors' scale); here on a synthetic IDX set."""
    from training.data import bernoulli_entropy
    images = np.zeros((2, 28, 28), np.uint8)
    images[0, 0, :4] = [255, 128, 64, 0]
    images[1, 5, :2] = [255, 255]
    labels = np.array([1, 2], np.uint8)
    for split in ("train", "t10k"):
        (tmp_path / f"{split}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (tmp_path / f"{split}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))

    def h(p):
        return 0.0 if p in (0.0, 1.0) else -(p * np.log(p) + (1 - p) * np.log(1 - p))

    for scale in (255, 256):
        expected = (h(255 / scale) + h(128 / scale) + h(64 / scale) + 2 * h(255 / scale)) / 2
        got = bernoulli_entropy(load_dataset("mnist", tmp_path, pixel_scale=scale).test_x)
        assert got == pytest.approx(expected, rel=1e-6)
    # at /255 a full byte is certain (no noise); at /256 it is not, so /256 images are noisier
    assert bernoulli_entropy(load_dataset("mnist", tmp_path, 256).test_x) > \
        bernoulli_entropy(load_dataset("mnist", tmp_path, 255).test_x) + 0.03
