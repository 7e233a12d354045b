"""clients.mnist (mnist5k and IDX files) and clients.cifar10 (python batches)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from bdfl.errors import BDFLError
from bdfl.learning.task import load_task


def test_mnist5k_lenet_learns() -> None:
    task = load_task("clients.mnist")
    ds = task.load_dataset(None)
    assert ds.name == "mnist5k"
    train = (ds.X_train[:1200], ds.y_train[:1200])
    client = task.make_client(train, (ds.X_test[:400], ds.y_test[:400]), seed=0, hparams={"batch_size": 32})
    p0 = client.get_parameters({})
    _, _, m0 = client.evaluate(p0, {})
    p, n, _ = client.fit(p0, {"local_epochs": 2})
    _, _, m1 = client.evaluate(p, {})
    assert n == 1200 and m0["accuracy"] < 0.25 and m1["accuracy"] > 0.7, (m0, m1)
    assert sum(a.size for a in p) == 61706


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_mnist_from_idx_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 20))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (6, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 6))
    task = load_task("clients.mnist")
    ds = task.load_dataset(str(tmp_path))
    assert len(ds.y_train) == 20 and ds.input_shape == (1, 28, 28)
    client = task.make_client(ds.train, ds.test, seed=0)
    p, n, _ = client.fit(client.get_parameters({}), {})
    assert n == 20 and all(np.isfinite(a).all() for a in p)


def _cifar_dir(root: Path) -> Path:
    d = root / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (8, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, 8).tolist()}
        (d / name).write_bytes(pickle.dumps(batch, protocol=2))
    return d


def test_cifar10_client(tmp_path: Path) -> None:
    task = load_task("clients.cifar10")
    ds = task.load_dataset(str(_cifar_dir(tmp_path)))
    assert ds.input_shape == (3, 32, 32) and len(ds.y_train) == 40
    client = task.make_client(ds.train, ds.test, seed=0)
    p0 = client.get_parameters({})
    assert sum(a.size for a in p0) == 188810
    p, n, m = client.fit(p0, {"local_epochs": 1})
    loss, nv, mv = client.evaluate(p, {})
    assert n == 40 and nv == 8 and 0.0 <= mv["accuracy"] <= 1.0 and np.isfinite(loss)
    # the normalisation constants are not exchanged parameters
    assert len(p0) == 10


def test_cifar10_needs_a_data_dir() -> None:
    task = load_task("clients.cifar10")
    with pytest.raises(BDFLError, match="local copy of CIFAR-10") as info:
        task.load_dataset(None)
    assert "cifar-10-batches-py" in info.value.fix
