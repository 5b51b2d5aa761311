"""Datasets: scikit-learn digits, MNIST, Fashion-MNIST (IDX files) and Omniglot (chardata.mat).

Every problem a user can cause with a data file (missing, truncated, corrupt,
not what its name says) raises `DataError` with one line naming the file; no
numpy/struct/zlib/scipy/OS error escapes. Readers check sizes against the file
before allocating, and only read regular files, so no input can make them hang
or allocate what the file cannot hold.
"""
from __future__ import annotations

import gzip
import math
import os
import stat
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .config import DATASETS
from .errors import DataError

# Where the IDX files come from. yann.lecun.com is often down or rate-limited;
# torchvision switched to this mirror for that reason.
DOWNLOAD_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DOWNLOAD_TIMEOUT_S = 5.0

OMNIGLOT_URL = "https://github.com/yburda/iwae/raw/master/datasets/OMNIGLOT/chardata.mat"

# IDX type codes (http://yann.lecun.com/exdb/mnist/, bottom of the page); all big-endian.
IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
# Deflate cannot expand data by more than ~1032x, so a gzip file of n bytes
# cannot hold more than this many times n bytes; used to refuse absurd headers
# before reading.
GZIP_MAX_RATIO = 1100
_CHUNK = 1 << 20


@dataclass
class Dataset:
    name: str
    train_x: np.ndarray   # float32, (N, D), values in [0, 1]
    train_y: np.ndarray   # int64, (N,): digit, or Omniglot alphabet id; zeros if unknown
    test_x: np.ndarray
    test_y: np.ndarray
    image_shape: tuple[int, int]

    @property
    def input_dim(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_dims(self) -> tuple[int, int, int]:
        """(C, H, W) of one image; the rows of train_x/test_x are images flattened in that order."""
        return (1, *self.image_shape)  # every dataset here is grey


def load_dataset(name: str, data_dir: str | os.PathLike = "data", pixel_scale: int = 256) -> Dataset:
    """Load one of DATASETS; MNIST-style and Omniglot files are looked for in data_dir.

    IDX pixels become bytes / pixel_scale: 256 as in the authors' mnist.pkl.gz (see RunConfig).
    """
    if name == "digits":
        return _load_digits()
    if name in ("mnist", "fashion-mnist"):
        return _load_idx_dataset(name, Path(data_dir), pixel_scale)
    if name == "omniglot":
        return _load_omniglot(Path(data_dir))
    raise DataError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")


def bernoulli_entropy(x: np.ndarray) -> float:
    """Mean over images of the summed per-pixel Bernoulli entropy (nats): the noise that binarizing
    x adds, which no model can explain, so an upper bound on any binarized log-likelihood.
    On the MNIST test set: 45.53 nats at bytes/255, 46.83 at bytes/256 (the authors' scale)."""
    p = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(p > 0, p * np.log(p), 0.0) + np.where(p < 1, (1 - p) * np.log1p(-p), 0.0))
    return float(h.sum(axis=1).mean())


def binarize(x: np.ndarray, seed: int) -> np.ndarray:
    """One fixed Bernoulli(x) sample as float32 0/1; the same seed gives the same sample."""
    rng = np.random.default_rng(seed)
    # u < x with u ~ U[0, 1): x = 0 never gives 1 and x = 1 always does.
    return (rng.random(np.shape(x), dtype=np.float32) < x).astype(np.float32)


# --------------------------------------------------------------------- digits

def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    # Stratified and seeded so every run, and the explorer, sees the same split.
    train_x, test_x, train_y, test_y = train_test_split(x, y, test_size=360, random_state=0, stratify=y)
    return Dataset("digits", train_x, train_y, test_x, test_y, (8, 8))


# ------------------------------------------------------------------ IDX files

def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain, or gzip when named .gz or starting with the gzip magic)."""
    path = Path(path)
    size = _regular_file_size(path)
    if size == 0:
        raise DataError(f"{path}: empty file, expected an IDX file")
    try:
        with open(path, "rb") as raw:
            is_gzip = path.name.endswith(".gz") or raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if is_gzip:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return _parse_idx(stream, path, size, compressed=True)
            return _parse_idx(raw, path, size, compressed=False)
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        # gzip reports a bad header, CRC or length as OSError/BadGzipFile and a
        # cut-off stream as EOFError.
        corrupt = path.name.endswith(".gz") or isinstance(e, (EOFError, zlib.error, gzip.BadGzipFile))
        what = "corrupt gzip file" if corrupt else "cannot read"
        raise DataError(f"{path}: {what} ({_one_line(e)})") from None
    except MemoryError:
        raise DataError(f"{path}: too large to load into memory") from None


def _parse_idx(stream: BinaryIO, path: Path, file_size: int, compressed: bool) -> np.ndarray:
    head = _read_upto(stream, 4)
    if len(head) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(head)} bytes)")
    if head[0] != 0 or head[1] != 0:
        raise DataError(f"{path}: not an IDX file (magic bytes {head[:2].hex()}, expected 0000)")
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{path}: unsupported IDX data type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise DataError(f"{path}: IDX header has 0 dimensions")
    dims_raw = _read_upto(stream, 4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header: {ndim} dimensions need {4 * ndim} bytes, "
                        f"found {len(dims_raw)}")
    dims = tuple(int.from_bytes(dims_raw[i:i + 4], "big") for i in range(0, 4 * ndim, 4))
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize   # Python ints: no overflow on absurd dims

    if compressed:
        data = _read_gzip_payload(stream, path, expected, file_size)
    else:
        # Compare with the file size before allocating, so a header claiming
        # billions of items costs nothing.
        found = file_size - 4 - 4 * ndim
        _check_payload_size(path, expected, found)
        data = bytearray(expected)
        if stream.readinto(data) != expected:   # file shrank while reading
            raise DataError(f"{path}: truncated: expected {expected} bytes of data, could not read them all")
    try:
        arr = np.frombuffer(data, dtype=dtype).reshape(dims)
    except ValueError:  # e.g. a zero dimension beside others so large that numpy cannot describe the shape
        raise DataError(f"{path}: IDX dimensions {dims} do not describe an array numpy can hold") from None
    return arr if dtype.itemsize == 1 else arr.astype(dtype.newbyteorder("="))


def _read_gzip_payload(stream: BinaryIO, path: Path, expected: int, file_size: int) -> bytearray:
    # The uncompressed size is unknown up front (the gzip trailer holds it only
    # mod 2**32 and can lie), so read in chunks and keep at most `expected`
    # bytes; past what deflate can hold, count without keeping.
    keep = expected <= GZIP_MAX_RATIO * file_size
    data = bytearray()
    found = 0
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:
            break
        if keep and found < expected:
            data += chunk[:expected - found]
        found += len(chunk)
    _check_payload_size(path, expected, found)
    if len(data) != expected:   # cannot happen while GZIP_MAX_RATIO exceeds deflate's limit
        raise DataError(f"{path}: gzip data larger than its file size allows; corrupt file")
    return data


def _check_payload_size(path: Path, expected: int, found: int) -> None:
    if found < expected:
        raise DataError(f"{path}: truncated: expected {expected} bytes of data, found {found}")
    if found > expected:
        raise DataError(f"{path}: {found - expected} extra bytes after the {expected} bytes of data "
                        f"the header describes")


def _read_upto(stream: BinaryIO, n: int) -> bytes:
    """Read n bytes, or fewer only at end of file."""
    parts, got = [], 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _regular_file_size(path: Path) -> int:
    # Opening a FIFO or a device could block forever; only read regular files.
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({_one_line(e)})") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: not a regular file")
    return st.st_size


def _load_idx_dataset(name: str, data_dir: Path, pixel_scale: int) -> Dataset:
    folder, files = _find_idx_files(name, data_dir)
    train_x, train_y = _read_split(files[0], files[1], "train", pixel_scale)
    test_x, test_y = _read_split(files[2], files[3], "test", pixel_scale)
    return Dataset(name, train_x, train_y, test_x, test_y, (28, 28))


def _find_idx_files(name: str, data_dir: Path) -> tuple[Path, list[Path]]:
    """The folder holding the four IDX files (downloading them if allowed) and their paths."""
    # MNIST and Fashion-MNIST use the same file names, so a folder named after
    # the dataset is the unambiguous place and is searched first; data_dir
    # itself serves a user who points it straight at the files.
    folders = [data_dir / name, data_dir]
    for folder in folders:
        found = [_existing(folder / f) for f in IDX_FILES]
        if all(found):
            return folder, found  # type: ignore[return-value]
    # Download into the named subfolder: dropping MNIST into data_dir would make
    # a later `fashion-mnist` load silently find MNIST there. Only into a data folder that exists: a
    # mistyped --data-dir must not fill a new folder with 55 MB without the user asking for it.
    target = data_dir / name
    if not data_dir.is_dir():
        need = ", ".join(f + ".gz" for f in IDX_FILES)
        raise DataError(f"{name} files not found: the data folder {data_dir.absolute()} does not exist (a mistyped "
                        f"--data-dir?). Put {need} in {target.absolute()}, or create {data_dir.absolute()} to let "
                        "them be downloaded there (unless LVAE_OFFLINE=1)")
    reason = _download_idx(name, target)
    found = [_existing(target / f) for f in IDX_FILES]
    if reason is None and all(found):
        return target, found  # type: ignore[return-value]
    where = " or ".join(str(f.absolute()) for f in reversed(folders))
    need = ", ".join(f + ".gz" for f in IDX_FILES)
    raise DataError(f"{name} files not found in {where}: need {need} (plain or .gz); {reason}")


def files_at_hand(name: str, data_dir: str | os.PathLike = "data") -> tuple[bool, str]:
    """Whether the dataset's files are already in data_dir (nothing is downloaded or read), and where they
    are or must be put, in words: the Train page offers a dataset only when they are there."""
    data_dir = Path(data_dir)
    if name == "digits":
        return True, "built in (scikit-learn)"
    if name == "omniglot":
        candidates = [data_dir / "chardata.mat", data_dir / "omniglot" / "chardata.mat"]
        found = next((p for p in candidates if p.is_file()), None)
        return (True, str(found)) if found else \
            (False, f"put chardata.mat (the IWAE paper's 28x28 split, {OMNIGLOT_URL}) in {candidates[1].absolute()}")
    for folder in (data_dir / name, data_dir):
        if all(_existing(folder / f) for f in IDX_FILES):
            return True, str(folder)
    need = ", ".join(f + ".gz" for f in IDX_FILES)
    return False, f"put the four IDX files ({need}) in {(data_dir / name).absolute()}"


def _existing(plain: Path) -> Path | None:
    # Plain first: a user who unpacked the files wants those read, and they
    # need no decompression.
    for p in (plain, plain.with_name(plain.name + ".gz")):
        if p.exists():
            return p
    return None


def _download_idx(name: str, folder: Path) -> str | None:
    """Fetch the missing .gz files into folder; None on success, else why not (for the error)."""
    if os.environ.get("LVAE_OFFLINE", "0") not in ("", "0"):
        return "LVAE_OFFLINE is set, so not downloading them"
    missing = [f for f in IDX_FILES if _existing(folder / f) is None]
    for i, base in enumerate(missing):
        url = DOWNLOAD_URLS[name] + base + ".gz"
        try:
            _download(url, folder / (base + ".gz"))
        except Exception as e:   # any failure means "no download"; the caller says what to do
            if i == 0:
                return f"no network to download them ({_one_line(e)})"
            return f"downloading {url} failed ({_one_line(e)})"
    return None


def _download(url: str, dest: Path) -> None:
    # Connect before creating any folder, so that no network leaves nothing
    # behind. Write to a temp file beside dest and rename only when complete,
    # so an interrupted download never leaves a truncated file under the real name.
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
            os.replace(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


def _read_split(images_path: Path, labels_path: Path, split: str, pixel_scale: int) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected 3 dimensions (images, rows, columns), found {images.ndim}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected 1 dimension (labels), found {labels.ndim}")
    for path, arr in ((images_path, images), (labels_path, labels)):
        if arr.dtype != np.uint8:
            raise DataError(f"{path}: expected unsigned bytes (IDX type 0x08), found {arr.dtype}")
    if images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: expected 28x28 images, found {images.shape[1]}x{images.shape[2]}")
    if images.shape[0] == 0:
        raise DataError(f"{images_path}: holds no images; the {split} split needs at least one")
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{labels_path}: {labels.shape[0]} labels but {images_path.name} "
                        f"has {images.shape[0]} images")
    if labels.max() > 9:
        raise DataError(f"{labels_path}: label {int(labels.max())} outside 0..9")
    x = images.reshape(images.shape[0], -1).astype(np.float32)
    x /= float(pixel_scale)   # in place: no second copy of the 60000x784 array
    return x, labels.astype(np.int64)


# ------------------------------------------------------------------- Omniglot

def _load_omniglot(data_dir: Path) -> Dataset:
    candidates = [data_dir / "chardata.mat", data_dir / "omniglot" / "chardata.mat"]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        where = " or ".join(str(p.absolute()) for p in candidates)
        raise DataError(f"omniglot file not found: expected {where}; download chardata.mat "
                        f"(the 28x28 split of the IWAE paper) from {OMNIGLOT_URL}")
    mat = _read_mat(path)
    train_x = _omniglot_images(mat, "data", path)
    test_x = _omniglot_images(mat, "testdata", path)
    train_y = _omniglot_labels(mat, "target", path, train_x.shape[0])
    test_y = _omniglot_labels(mat, "testtarget", path, test_x.shape[0])
    return Dataset("omniglot", train_x, train_y, test_x, test_y, (28, 28))


MAT_VARIABLES = ["data", "testdata", "target", "testtarget"]  # only these are parsed; nothing else is


def _loadmat(path: str) -> dict:
    from scipy.io import loadmat
    return loadmat(path, variable_names=MAT_VARIABLES)


def _loadmat_in_child(path: str) -> dict:
    """loadmat in a forked child process: scipy's C reader can crash the process on some corrupt files
    (seen in CI as a segfault), which would take a training run or the app down with it; a crashed
    child is one failed read. Fork (Linux) costs milliseconds; elsewhere the read runs in this process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    if "fork" not in multiprocessing.get_all_start_methods():
        return _loadmat(path)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        try:
            return pool.submit(_loadmat, path).result()
        except BrokenProcessPool:
            raise DataError(f"{path}: not a readable MATLAB .mat file (the reader crashed on it: corrupt?)") from None


def _read_mat(path: Path) -> dict:
    _regular_file_size(path)
    try:
        return _loadmat_in_child(str(path))
    except DataError:
        raise
    except NotImplementedError:
        raise DataError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; "
                        f"use the original chardata.mat from {OMNIGLOT_URL}") from None
    except MemoryError:
        raise DataError(f"{path}: too large to load into memory, or a corrupt .mat header") from None
    except Exception as e:
        # scipy's .mat reader raises many types on bad bytes (ValueError,
        # TypeError, struct.error, zlib.error, MatReadError, ...); all mean
        # "this is not a usable .mat file".
        raise DataError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {_one_line(e)})") from None


def _omniglot_images(mat: dict, key: str, path: Path) -> np.ndarray:
    if key not in mat:
        raise DataError(f"{path}: no variable {key!r}; expected the IWAE chardata.mat with "
                        f"data, testdata, target, testtarget")
    arr = mat[key]
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.dtype.kind not in "biuf":
        raise DataError(f"{path}: {key!r} must be a 2-D numeric matrix, found "
                        f"{getattr(arr, 'dtype', type(arr).__name__)} {getattr(arr, 'shape', '')}")
    if arr.shape[0] != 784:
        raise DataError(f"{path}: {key!r} must have 784 rows (28x28 pixels), found {arr.shape[0]}")
    if arr.shape[1] == 0:
        raise DataError(f"{path}: {key!r} holds no images")
    # Each column is one image whose 784 pixels are stored column-major (MATLAB
    # order); this is the IWAE code's conversion to row-major rows.
    if not np.all((arr >= 0) & (arr <= 1)):   # also catches NaN; checked before the float32 cast can overflow
        raise DataError(f"{path}: {key!r} has values outside [0, 1]")
    x = arr.T.astype(np.float32).reshape(-1, 28, 28).reshape(-1, 784, order="F")
    return np.ascontiguousarray(x)


def _omniglot_labels(mat: dict, key: str, path: Path, n: int) -> np.ndarray:
    if key not in mat:
        return np.zeros(n, dtype=np.int64)   # labels only colour the explorer's plots
    t = mat[key]
    if not isinstance(t, np.ndarray) or t.ndim != 2 or t.dtype.kind not in "biuf" or t.shape[0] == 0:
        raise DataError(f"{path}: {key!r} must be a 2-D numeric one-hot matrix, found "
                        f"{getattr(t, 'dtype', type(t).__name__)} {getattr(t, 'shape', '')}")
    if t.shape[1] != n:
        raise DataError(f"{path}: {key!r} has {t.shape[1]} columns but there are {n} images")
    return np.argmax(t, axis=0).astype(np.int64)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
