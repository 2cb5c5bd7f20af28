"""Dataset loaders on real offline data and on tiny files written in the exact standard formats."""

import json
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


# -- a user's own arrays (--dataset FILE.npz) ---------------------------------------------------------
def _signals(n: int, rng, length: int = 30, classes: int = 4):
    """A small learnable 1-D task: a noisy sine whose frequency is the class."""
    y = rng.integers(0, classes, n)
    t = np.linspace(0, 1, length)
    x = np.stack([np.sin(2 * np.pi * (c + 1) * t + rng.random()) + 0.5 * rng.standard_normal(length) for c in y])
    return x.astype(np.float64), y


def test_a_users_npz_gets_a_validation_split_and_its_shape_and_classes_from_the_arrays(tmp_path):
    from fairnad.evaluate.datasets import dataset_spec

    rng = np.random.default_rng(0)
    x, y = _signals(500, rng)
    np.savez(tmp_path / "sig.npz", x_train=x[:400], y_train=y[:400], x_test=x[400:], y_test=y[400:])
    spec = dataset_spec(str(tmp_path / "sig.npz"))
    assert spec.input_shape == (1, 30) and spec.num_classes == 4 and not spec.pixels
    from fairnad.evaluate.datasets import cache_dir

    assert prepare(str(tmp_path / "sig.npz")).parent == cache_dir() / "datasets"  # not beside the user's file
    a = load(prepare(str(tmp_path / "sig.npz")))
    assert _sizes(a) == (360, 40, 100) and a["x_train"].dtype == np.float32 and a["x_val"].shape[1:] == (1, 30)
    train_rows = {r.tobytes() for r in a["x_train"]}
    assert not any(r.tobytes() in train_rows for r in a["x_val"])  # held out, not copied
    imgs = rng.integers(0, 255, (20, 3, 6, 6)).astype(np.uint8)
    np.savez(tmp_path / "img.npz", x_train=imgs[:12], y_train=np.arange(12) % 3, x_val=imgs[12:16],
             y_val=np.arange(4) % 3, x_test=imgs[16:], y_test=np.arange(4) % 3)  # fmt: skip
    spec = dataset_spec(str(tmp_path / "img.npz"))
    assert spec.input_shape == (3, 6, 6) and spec.num_classes == 3 and spec.pixels
    a = load(prepare(str(tmp_path / "img.npz")))
    assert _sizes(a) == (12, 4, 4) and a["mean"].shape == (3,)  # uint8 pixels: normalised per channel


@pytest.mark.parametrize("arrays, expected", [
    ({"x_train": np.zeros((4, 5))}, r"no array 'y_train'; a dataset file holds x_train, y_train, x_test, y_test"),
    ({"x_train": np.zeros((4, 5)), "y_train": np.zeros(4), "x_test": np.zeros((2, 5)), "y_test": np.zeros(2, int)},
     r"y_train must be integer class labels"),
    ({"x_train": np.zeros((4, 5)), "y_train": np.zeros(4, int), "x_test": np.zeros((2, 6)), "y_test": np.zeros(2, int)},
     r"the splits' inputs differ in shape"),
    ({"x_train": np.zeros(4), "y_train": np.zeros(4, int), "x_test": np.zeros(2), "y_test": np.zeros(2, int)},
     r"x_train must be numbers shaped \(N, L\), \(N, C, L\) or \(N, C, H, W\)"),
    ({"x_train": np.zeros((20, 5)), "y_train": np.arange(15) % 2, "x_test": np.zeros((2, 5)), "y_test": np.zeros(2, int)},
     r"x_train has 20 inputs but y_train 15 labels; give one label per input"),  # (before the split cut them alike)
    ({"x_train": np.zeros((15, 5)), "y_train": np.arange(20) % 2, "x_test": np.zeros((2, 5)), "y_test": np.zeros(2, int)},
     r"x_train has 15 inputs but y_train 20 labels"),
    ({"x_train": np.full((20, 5), np.nan), "y_train": np.arange(20) % 2, "x_test": np.zeros((2, 5)),
      "y_test": np.zeros(2, int)}, r"x_train holds 100 NaN or infinite values"),
    ({"x_train": np.zeros((20, 8, 8, 3)), "y_train": np.arange(20) % 2, "x_test": np.zeros((2, 8, 8, 3)),
      "y_test": np.zeros(2, int)}, r"looks like channels last; images are \(N, C, H, W\): save np.transpose"),
    ({"x_train": np.zeros((20, 5)), "y_train": np.zeros(20, int), "x_test": np.zeros((2, 5)), "y_test": np.zeros(2, int)},
     r"y_train holds one class only"),
    ({"x_train": np.zeros((20, 5)), "y_train": np.arange(20) % 2 - 1, "x_test": np.zeros((2, 5)),
      "y_test": np.zeros(2, int)}, r"y_train has the label -1; classes are numbered from 0"),
    ({"x_train": np.float64(3.0), "y_train": np.zeros(2, int), "x_test": np.zeros((2, 5)), "y_test": np.zeros(2, int)},
     r"x_train must be numbers shaped"),  # (a 0-d array: no length to compare)
    ({"x_train": np.array([np.zeros(3), np.zeros(4)], dtype=object), "y_train": np.zeros(2, int),
      "x_test": np.zeros((2, 5)), "y_test": np.zeros(2, int)}, r"an array cannot be read without pickle"),
])  # fmt: skip
def test_a_malformed_npz_is_one_line_naming_the_file_and_the_array(tmp_path, arrays, expected):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(ConfigError, match=expected):
        prepare(str(tmp_path / "d.npz"))
    (tmp_path / "t.npz").write_text("not arrays")
    with pytest.raises(ConfigError, match=r"t.npz: not a readable .npz file .*numpy.savez"):
        prepare(str(tmp_path / "t.npz"))
    with pytest.raises(ConfigError, match=r"gone.npz: dataset file not found"):
        prepare(str(tmp_path / "gone.npz"))


def test_an_open_search_on_a_users_npz_trains_and_resumes_from_another_folder(run_cli, tmp_path):
    rng = np.random.default_rng(1)
    x, y = _signals(700, rng)
    np.savez(tmp_path / "sig.npz", x_train=x[:500], y_train=y[:500], x_test=x[500:], y_test=y[500:])
    p = run_cli("evaluate", "ref:mnist1d-cnn", "--dataset", "sig.npz", "--epochs", "4", "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    row = json.loads(p.stdout)
    assert row["status"] == "complete" and row["metrics"]["test_acc"] > 50  # 4 classes: chance is 25%
    # starting models only (no LLM call): the reference 1-D CNN and its scaled variants, on the user's arrays
    p = run_cli("search", "--space", "open", "--dataset", "sig.npz", "-s", "fairnad", "-n", "1", "--epochs", "2",
                "--run-dir", "run", "--json")  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    other = tmp_path / "elsewhere"
    other.mkdir()
    p = run_cli("resume", str(tmp_path / "run"), "-n", "2", "--json", cwd=other)
    assert p.returncode == 0, p.stderr[-2000:]
    s = json.loads(p.stdout)
    assert s["evaluations"] == 2 and s["llm"]["calls"] == 0 and s["best"]["accuracy"] > 25


@pytest.mark.parametrize("shape", [(2, 64, 4), (8, 100, 1), (3, 8, 8)])
def test_images_channels_first_with_a_narrow_width_are_not_taken_for_channels_last(tmp_path, shape):
    from fairnad.evaluate.datasets import dataset_spec

    x = np.random.default_rng(0).random((20, *shape))
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(20) % 2, x_test=x[:4], y_test=np.arange(4) % 2)
    assert dataset_spec(str(tmp_path / "d.npz")).input_shape == shape
