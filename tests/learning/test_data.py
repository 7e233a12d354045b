"""Data sets, local-file loaders and partitioning."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bdfl.errors import BDFLError
from bdfl.learning.data import (
    Dataset,
    label_histogram,
    load_builtin,
    load_cifar10,
    load_digits,
    load_idx,
    load_mnist5k,
    make_peer_shards,
    partition_dirichlet,
    partition_iid,
    read_idx,
    split_train_val,
    stratified_split,
)

# --------------------------------------------------------------------------- built-ins


def test_digits_shapes_range_and_split() -> None:
    ds = load_digits()
    assert ds.name == "digits" and ds.num_classes == 10
    assert ds.input_shape == (1, 8, 8)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert 0.19 < len(ds.y_test) / 1797 < 0.21
    assert ds.X_train.min() == 0.0 and ds.X_train.max() == 1.0
    # stratified: every class in the test split in proportion
    counts = label_histogram(ds.y_test, 10)
    assert counts.min() >= 34 and counts.max() <= 38
    # no sample in both splits
    train_rows = {r.tobytes() for r in ds.X_train}
    overlap = sum(r.tobytes() in train_rows for r in ds.X_test)
    assert overlap < 5  # digits has a few duplicate images, nothing more


def test_digits_split_is_seeded() -> None:
    a, b, c = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_train, c.y_train)


def test_mnist5k() -> None:
    ds = load_mnist5k()
    assert ds.input_shape == (1, 28, 28)
    assert len(ds.y_train) == 4000 and len(ds.y_test) == 1000
    assert np.array_equal(label_histogram(ds.y_test, 10), np.full(10, 100))
    assert 0.0 <= ds.X_train.min() and ds.X_train.max() <= 1.0
    # real images: plenty of ink in the centre, none in the corners
    assert ds.X_train[:, 0, 10:18, 10:18].mean() > 0.2
    assert ds.X_train[:, 0, :2, :2].max() == 0.0


def test_load_builtin_unknown_name() -> None:
    with pytest.raises(BDFLError, match="unknown built-in data set 'nope'") as info:
        load_builtin("nope")
    assert "digits" in info.value.fix and "mnist5k" in info.value.fix


def test_dataset_validates_labels() -> None:
    X = np.zeros((3, 1, 2, 2), np.float32)
    with pytest.raises(BDFLError, match="labels must lie in"):
        Dataset("x", X, np.array([0, 1, 5]), X, np.array([0, 1, 2]), num_classes=3)
    with pytest.raises(BDFLError, match="rows"):
        Dataset("x", X, np.array([0, 1]), X, np.array([0, 1, 2]), num_classes=3)


@pytest.mark.parametrize("labels", [np.array([0.0, 1.0, 2.0]), np.array([0.1, 0.5, 0.9]), np.array([True, False, True])])
def test_dataset_refuses_labels_that_are_not_integers(labels: np.ndarray) -> None:
    """Float labels (read from a CSV, or regression targets) are refused by name, with the
    fix, instead of failing later inside a label-flipping attack's index map."""
    X = np.zeros((3, 1, 2, 2), np.float32)
    with pytest.raises(BDFLError, match="y_train must hold integer class labels") as err:
        Dataset("x", X, labels, X, np.array([0, 1, 2]), num_classes=3)
    assert "astype(np.int64)" in err.value.fix
    Dataset("x", X, labels.astype(np.int64), X, np.array([0, 1, 2], np.uint8), num_classes=3)  # integers pass


@pytest.mark.parametrize("num_classes", [1, 0, 2.0, True])
def test_dataset_needs_two_classes(num_classes: object) -> None:
    X = np.zeros((3, 1, 2, 2), np.float32)
    with pytest.raises(BDFLError, match="num_classes must be an integer >= 2"):
        Dataset("x", X, np.array([0, 0, 0]), X, np.array([0, 0, 0]), num_classes=num_classes)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- IDX files


def _write_idx(path: Path, array: np.ndarray, *, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def _make_idx_dir(root: Path, *, gz: bool, dotted: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, size=12, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=5, dtype=np.uint8),
    }
    for name, arr in arrays.items():
        fname = name.replace("-idx", ".idx") if dotted else name
        _write_idx(root / (fname + (".gz" if gz else "")), arr, gz=gz)
    return arrays


@pytest.mark.parametrize("gz,dotted", [(False, False), (True, False), (True, True)])
def test_load_idx(tmp_path: Path, gz: bool, dotted: bool) -> None:
    arrays = _make_idx_dir(tmp_path, gz=gz, dotted=dotted)
    ds = load_idx(tmp_path, name="fashion")
    assert ds.name == "fashion" and ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert np.allclose(ds.X_train[:, 0] * 255.0, arrays["train-images-idx3-ubyte"])
    assert np.array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])
    assert np.array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert ds.X_test.dtype == np.float32


def test_load_idx_missing_files_names_them(tmp_path: Path) -> None:
    _make_idx_dir(tmp_path, gz=False)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte")
    with pytest.raises(BDFLError) as info:
        load_idx(tmp_path)
    msg = str(info.value)
    assert str(tmp_path) in msg and "t10k-labels-idx1-ubyte" in msg
    assert "train-images-idx3-ubyte" in info.value.fix
    with pytest.raises(BDFLError, match="does not exist"):
        load_idx(tmp_path / "nowhere")


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(BDFLError, match="not an IDX file"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"abc")
    with pytest.raises(BDFLError, match="says"):
        read_idx(short)


# --------------------------------------------------------------------------- CIFAR-10 batches


def _cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch",
        b"labels": [int(v) for v in rng.integers(0, 10, size=n)],
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [b"x.png"] * n,
    }


def _make_cifar_dir(root: Path, protocol: int) -> dict[str, dict]:
    d = root / "cifar-10-batches-py"
    d.mkdir()
    batches = {f"data_batch_{i}": _cifar_batch(4, i) for i in range(1, 6)}
    batches["test_batch"] = _cifar_batch(3, 9)
    for name, batch in batches.items():
        (d / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    return batches


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_load_cifar10(tmp_path: Path, protocol: int) -> None:
    batches = _make_cifar_dir(tmp_path, protocol)
    ds = load_cifar10(tmp_path)  # parent directory also works
    assert ds.input_shape == (3, 32, 32) and len(ds.y_train) == 20 and len(ds.y_test) == 3
    first = batches["data_batch_1"]
    assert np.allclose(ds.X_train[0] * 255.0, first[b"data"][0].reshape(3, 32, 32))
    assert ds.y_train[:4].tolist() == first[b"labels"]
    assert np.array_equal(load_cifar10(tmp_path / "cifar-10-batches-py").y_test, ds.y_test)


def test_cifar_python2_module_names(tmp_path: Path) -> None:
    """The real files were written by Python 2 NumPy: globals live in numpy.core.multiarray."""
    _make_cifar_dir(tmp_path, 2)
    d = tmp_path / "cifar-10-batches-py"
    for f in d.iterdir():
        raw = f.read_bytes().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
        f.write_bytes(raw)
    assert len(load_cifar10(d).y_train) == 20


class _Evil:
    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {_Evil.marker}",))


def test_cifar_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    _make_cifar_dir(tmp_path, 2)
    d = tmp_path / "cifar-10-batches-py"
    marker = tmp_path / "pwned"
    _Evil.marker = marker  # type: ignore[attr-defined]
    (d / "data_batch_3").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(BDFLError, match="data_batch_3 is not a valid CIFAR-10 python batch.*refusing"):
        load_cifar10(d)
    assert not marker.exists()


def test_cifar_missing_files(tmp_path: Path) -> None:
    _make_cifar_dir(tmp_path, 2)
    os.remove(tmp_path / "cifar-10-batches-py" / "test_batch")
    with pytest.raises(BDFLError, match="test_batch") as info:
        load_cifar10(tmp_path)
    assert "cifar-10-batches-py" in info.value.fix


# --------------------------------------------------------------------------- partitioning


def _check_cover(parts: list[np.ndarray], n: int) -> None:
    allidx = np.concatenate(parts)
    assert len(allidx) == n and np.array_equal(np.sort(allidx), np.arange(n))
    for p in parts:
        assert p.dtype == np.int64 and np.all(np.diff(p) > 0)


def test_partition_iid() -> None:
    y = np.repeat(np.arange(10), 50)
    parts = partition_iid(y, 7, seed=3)
    _check_cover(parts, 500)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    again = partition_iid(y, 7, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert not np.array_equal(parts[0], partition_iid(y, 7, seed=4)[0])
    # IID: every peer sees most classes
    assert min(len(np.unique(y[p])) for p in parts) >= 8


def test_partition_dirichlet_min_size_and_skew() -> None:
    y = load_digits().y_train
    parts = partition_dirichlet(y, 20, alpha=0.5, seed=0, min_size=20)
    _check_cover(parts, len(y))
    assert min(len(p) for p in parts) >= 20
    again = partition_dirichlet(y, 20, alpha=0.5, seed=0, min_size=20)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))

    def dominance(alpha: float) -> float:
        ps = partition_dirichlet(y, 20, alpha=alpha, seed=1, min_size=5)
        return float(np.mean([label_histogram(y[p], 10).max() / len(p) for p in ps]))

    # small alpha: each peer dominated by few classes; large alpha: close to uniform (0.1)
    assert dominance(0.1) > 0.5
    assert dominance(1000.0) < 0.25


def test_partition_errors() -> None:
    y = np.zeros(30, dtype=np.int64)
    with pytest.raises(BDFLError, match="at least 10 samples"):
        partition_dirichlet(y, 4, alpha=0.5, seed=0, min_size=10)
    with pytest.raises(BDFLError, match="alpha"):
        partition_dirichlet(y, 2, alpha=0.0, seed=0)
    with pytest.raises(BDFLError, match="positive integer"):
        partition_iid(y, 0, seed=0)
    with pytest.raises(BDFLError, match="seed"):
        partition_iid(y, 2, seed=-1)


@settings(max_examples=25, deadline=None)
@given(
    n_samples=st.integers(20, 200),
    n_peers=st.integers(1, 10),
    alpha=st.floats(0.1, 10.0),
    seed=st.integers(0, 2**31),
)
def test_partitions_always_cover_property(n_samples: int, n_peers: int, alpha: float, seed: int) -> None:
    y = np.arange(n_samples) % 5
    _check_cover(partition_iid(y, n_peers, seed), n_samples)
    parts = partition_dirichlet(y, n_peers, alpha, seed, min_size=1)
    _check_cover(parts, n_samples)
    assert min(len(p) for p in parts) >= 1


def test_split_train_val() -> None:
    idx = np.arange(100, 150)
    tr, va = split_train_val(idx, 0.2, seed=1)
    assert len(va) == 10 and len(tr) == 40
    assert set(tr) | set(va) == set(idx) and not set(tr) & set(va)
    tr2, va2 = split_train_val(idx, 0.2, seed=1)
    assert np.array_equal(va, va2)
    # tiny shards keep both parts non-empty
    tr, va = split_train_val(np.array([5, 6]), 0.01, seed=0)
    assert len(tr) == 1 and len(va) == 1
    tr, va = split_train_val(idx, 0.0, seed=0)
    assert len(va) == 0
    with pytest.raises(BDFLError):
        split_train_val(idx, 1.0, seed=0)


def test_make_peer_shards() -> None:
    ds = load_digits()
    shards = make_peer_shards(ds, 10, scheme="dirichlet", alpha=0.5, seed=2, val_fraction=0.25)
    assert len(shards) == 10
    total = sum(len(s.y_train) + len(s.y_val) for s in shards)
    assert total == len(ds.y_train)
    for s in shards:
        assert len(s.y_val) >= 1 and s.X_train.shape[1:] == (1, 8, 8)
        assert abs(len(s.y_val) - 0.25 * (len(s.y_val) + len(s.y_train))) <= 1
    with pytest.raises(BDFLError, match="scheme"):
        make_peer_shards(ds, 3, scheme="nope")


def test_stratified_split_fraction() -> None:
    y = np.repeat(np.arange(4), 25)
    tr, te = stratified_split(y, 0.2, seed=0)
    assert len(te) == 20 and np.array_equal(label_histogram(y[te], 4), np.full(4, 5))


def test_digits_matches_scikit_learn() -> None:
    from sklearn.datasets import load_digits as sk_load_digits

    from bdfl.learning.data import _digits_raw

    X, y = _digits_raw()
    ref = sk_load_digits()
    assert np.array_equal(X, ref.data) and np.array_equal(y, ref.target)


# --------------------------------------------------------------------------- iid_sample (scale benchmarks)


def test_partition_iid_sample_draws_overlapping_fixed_size_shards() -> None:
    from bdfl.learning.data import partition_iid_sample

    y = load_digits().y_train  # 1,438 samples: 1,000 peers cannot be partitioned, but can sample
    parts = partition_iid_sample(y, 1000, 12, seed=0)
    assert len(parts) == 1000
    for p in parts:
        assert len(p) == 12 and p.dtype == np.int64 and np.all(np.diff(p) > 0)  # sorted, distinct
        assert p.min() >= 0 and p.max() < len(y)
    # overlapping across peers is allowed (and, at 12,000 draws from 1,438, certain)
    assert len(np.unique(np.concatenate(parts))) < 12_000
    # seeded and deterministic; a peer's draw does not depend on the peer count
    again = partition_iid_sample(y, 1000, 12, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    fewer = partition_iid_sample(y, 10, 12, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(fewer, parts[:10]))
    assert not np.array_equal(parts[0], partition_iid_sample(y, 1, 12, seed=1)[0])
    # the peers' draws are independent: not all the same
    assert len({tuple(p) for p in parts}) == 1000


def test_partition_iid_sample_errors() -> None:
    from bdfl.learning.data import partition_iid_sample

    y = np.arange(30) % 3
    with pytest.raises(BDFLError, match="31 distinct samples"):
        partition_iid_sample(y, 2, 31, seed=0)
    with pytest.raises(BDFLError, match="samples_per_peer"):
        partition_iid_sample(y, 2, 0, seed=0)
    with pytest.raises(BDFLError, match="positive integer"):
        partition_iid_sample(y, 0, 5, seed=0)
    with pytest.raises(BDFLError, match="seed"):
        partition_iid_sample(y, 2, 5, seed=-1)
    assert [len(p) for p in partition_iid_sample(y, 3, 30, seed=0)] == [30, 30, 30]  # the whole set


def test_make_peer_shards_iid_sample() -> None:
    ds = load_digits()
    shards = make_peer_shards(ds, 1000, scheme="iid_sample", samples_per_peer=10, seed=0, val_fraction=0.2)
    assert len(shards) == 1000
    for s in shards[:50]:
        assert len(s.y_train) == 8 and len(s.y_val) == 2
    with pytest.raises(BDFLError, match="samples_per_peer"):
        make_peer_shards(ds, 3, scheme="iid_sample")  # samples_per_peer left at 0
