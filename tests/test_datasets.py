"""Dataset loaders on real offline data and on tiny files written in the exact standard formats."""

import pickle

import numpy as np
import pytest

from fairnad.errors import ConfigError
from fairnad.evaluate.datasets import load, prepare

from datafiles import write_cifar10, write_cifar100, write_fashion, write_imagenet16, write_nb201_cifar10_split


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRNAD_CACHE", str(tmp_path / "cache"))


def _sizes(a):
    return tuple(len(a[f"x_{s}"]) for s in ("train", "val", "test"))


def test_mnist1d_and_digits_build_offline():
    m = load(prepare("mnist1d"))
    assert _sizes(m) == (3500, 500, 1000) and m["x_train"].shape[1:] == (1, 40) and m["x_train"].dtype == np.float32
    assert abs(float(m["x_train"].mean())) < 0.05  # normalised with training statistics
    d = load(prepare("digits"))
    assert _sizes(d) == (1200, 297, 300) and d["x_train"].shape[1:] == (1, 8, 8)
    assert set(np.unique(d["y_train"])) == set(range(10))


def test_cache_is_reused():
    p = prepare("digits")
    stamp = p.stat().st_mtime_ns
    assert prepare("digits") == p and p.stat().st_mtime_ns == stamp


def test_fashion_mnist_idx_files(tmp_path):
    a = load(prepare("fashion-mnist", write_fashion(tmp_path / "fm", n_train=60, n_test=20)))
    assert _sizes(a) == (55, 5, 20) and a["x_train"].dtype == np.uint8 and a["x_train"].shape[1:] == (1, 28, 28)
    assert a["mean"].shape == (1,) and 0 < a["std"][0] < 1


def test_fashion_mnist_errors(tmp_path):
    d = write_fashion(tmp_path / "fm")
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ConfigError, match="t10k-labels-idx1-ubyte.gz is missing"):
        prepare("fashion-mnist", d)
    d2 = write_fashion(tmp_path / "fm2")
    data = (d2 / "train-images-idx3-ubyte.gz").read_bytes()
    (d2 / "train-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte.gz is not a readable"):
        prepare("fashion-mnist", d2)
    with pytest.raises(ConfigError, match="folder .* not found; install Debian's dataset-fashion-mnist"):
        prepare("fashion-mnist", tmp_path / "nothing")


def test_cifar10_with_and_without_nb201_split_file(tmp_path):
    write_cifar10(tmp_path / "c")
    a = load(prepare("cifar10", tmp_path / "c"))
    assert _sizes(a) == (50, 50, 30) and a["x_train"].shape[1:] == (3, 32, 32) and a["x_train"].dtype == np.uint8
    write_cifar10(tmp_path / "s")
    write_nb201_cifar10_split(tmp_path / "s", 100)
    b = load(prepare("cifar10", tmp_path / "s"))
    raw = pickle.loads((tmp_path / "s/cifar-10-batches-py/data_batch_1").read_bytes())
    first = np.asarray(raw[b"data"][0]).reshape(3, 32, 32)
    assert np.array_equal(b["x_train"][0], first)  # train = even indices per the split file
    assert np.array_equal(b["x_val"][0], np.asarray(raw[b"data"][1]).reshape(3, 32, 32))


def test_cifar100_and_imagenet16(tmp_path):
    write_cifar100(tmp_path / "c100")
    a = load(prepare("cifar100", tmp_path / "c100"))
    assert _sizes(a) == (40, 10, 10) and a["y_train"].max() < 100
    write_imagenet16(tmp_path / "in16")
    b = load(prepare("imagenet16-120", tmp_path / "in16"))
    assert b["x_train"].shape[1:] == (3, 16, 16)
    assert b["y_train"].min() >= 0 and b["y_train"].max() < 120  # classes 1..120 kept, shifted to 0..119
    assert len(b["x_val"]) + len(b["x_test"]) == 24


def test_missing_or_malformed_cifar(tmp_path):
    with pytest.raises(ConfigError, match=r"cifar10: pass --data-dir, the folder holding cifar-10-batches-py/"):
        prepare("cifar10")
    d = write_cifar10(tmp_path / "c")
    (d / "data_batch_3").unlink()
    with pytest.raises(ConfigError, match="data_batch_3 is missing"):
        prepare("cifar10", tmp_path / "c")
    d2 = write_cifar10(tmp_path / "evil")

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("touch pwned",))

    (d2 / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(ConfigError, match="refusing to load"):
        prepare("cifar10", tmp_path / "evil")
    d3 = write_cifar10(tmp_path / "shape")
    (d3 / "data_batch_1").write_bytes(pickle.dumps({b"data": np.zeros((5, 100), np.uint8), b"labels": [0] * 5}))
    with pytest.raises(ConfigError, match=r"data has shape \(5, 100\), expected \(N, 3072\)"):
        prepare("cifar10", tmp_path / "shape")


def test_unknown_dataset():
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'; available: mnist1d"):
        prepare("mnist")
