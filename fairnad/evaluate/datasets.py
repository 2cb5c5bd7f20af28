"""Datasets for proxy training, prepared once into a cache of plain arrays.

CPU datasets build offline: MNIST-1D (procedural), digits (scikit-learn), Fashion-MNIST (IDX
files, e.g. Debian's dataset-fashion-mnist). CUDA-sized datasets come from a folder the user
gives, in their standard formats: CIFAR-10/100 (`cifar-10-batches-py/`, `cifar-100-python/`)
and ImageNet16-120 (`ImageNet16/train_data_batch_1..10`, `val_data`), with NAS-Bench-201's
train / validation / test splits. The sandboxed trainer only reads the cached .npz.
"""

from __future__ import annotations

import gzip
import functools
import hashlib
import json
import os
import pickle
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fairnad.errors import ConfigError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int
    input_shape: tuple[int, ...]  # (C, L) for 1-D signals, (C, H, W) for images
    pixels: bool  # uint8 images normalised on the fly (mean/std per channel) vs float arrays
    augment: bool  # pad-crop and horizontal flip while training
    needs_dir: bool  # the user must point --data-dir at the files
    recipe: dict[str, Any] = field(default_factory=dict)  # default training settings
    splits: str = ""  # how train / val / test are made, for the docs and --help
    train_size: int = 0  # training inputs (a user's arrays: sizes the time limit)

    @property
    def in_chans(self) -> int:
        return self.input_shape[0]


_SMALL = {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 5e-4, "label_smoothing": 0.0}
_CIFAR = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "batch_size": 256,
          "label_smoothing": 0.0}  # fmt: skip

DATASETS: dict[str, DatasetSpec] = {
    "mnist1d": DatasetSpec(
        "mnist1d", 10, (1, 40), False, False, False, {**_SMALL, "batch_size": 128, "epochs": 20},
        "4000 train (last 500 held out as validation) / 1000 test, built by mnist1d.make_dataset()",
    ),
    "digits": DatasetSpec(
        "digits", 10, (1, 8, 8), False, False, False, {**_SMALL, "batch_size": 64, "epochs": 30},
        "scikit-learn's 1797 8x8 digits, shuffled with seed 0: 1200 train / 297 validation / 300 test",
    ),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", 10, (1, 28, 28), True, False, False, {**_SMALL, "batch_size": 256, "epochs": 5},
        "60000 train (last 5000 held out as validation) / 10000 test, IDX files",
    ),
    "cifar10": DatasetSpec(
        "cifar10", 10, (3, 32, 32), True, True, True, {**_CIFAR, "epochs": 12},
        "NAS-Bench-201 cifar10-valid: 25000 train / 25000 validation from the training set; test = test set",
    ),
    "cifar100": DatasetSpec(
        "cifar100", 100, (3, 32, 32), True, True, True, {**_CIFAR, "epochs": 12},
        "NAS-Bench-201: 50000 train; the test set split into 5000 validation (x-valid) / 5000 test (x-test)",
    ),
    "imagenet16-120": DatasetSpec(
        "imagenet16-120", 120, (3, 16, 16), True, True, True, {**_CIFAR, "epochs": 12},
        "NAS-Bench-201: classes 1-120 of ImageNet16; train batches; val_data split 3000 x-valid / 3000 x-test",
    ),
}  # fmt: skip

FASHION_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")


def dataset_spec(name: str) -> DatasetSpec:
    """A built-in dataset by name, or a user's arrays: a path ending in .npz (see `_user_arrays`)."""
    if is_user_dataset(name):
        p = Path(name)
        if not p.is_file():
            raise ConfigError(f"{name}: dataset file not found (a .npz with x_train, y_train, x_test, y_test)")
        st = p.stat()
        return _user_spec(str(p.resolve()), st.st_size, st.st_mtime_ns)
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}, or your arrays as a .npz file")
    return DATASETS[name]


def is_user_dataset(name: str) -> bool:
    return name.lower().endswith(".npz")


@functools.lru_cache(maxsize=8)
def _user_spec(path: str, _size: int, _mtime: int) -> DatasetSpec:
    """What a user's arrays are: inputs (N, L) or (N, C, L) are 1-D signals, (N, C, H, W) images; uint8
    inputs are pixels (normalised per channel), floats are used as they are; classes 0..K-1."""
    a = _user_arrays(Path(path))
    x = a["x_train"]
    labels = np.concatenate([a["y_train"], a["y_val"], a["y_test"]])
    n = {k: len(a[f"y_{k}"]) for k in ("train", "val", "test")}
    held = "" if "x_val" in _npz_keys(Path(path)) else " (the last 10% of x_train, shuffled with seed 0)"
    return DatasetSpec(
        path, int(labels.max()) + 1, tuple(int(d) for d in x.shape[1:]), x.dtype == np.uint8, False, False,
        {**_SMALL, "batch_size": 128, "epochs": 10},
        f"{Path(path).name}: {n['train']} train / {n['val']} validation{held} / {n['test']} test", n["train"],
    )  # fmt: skip


def cache_dir() -> Path:
    return Path(os.environ.get("FAIRNAD_CACHE", Path.home() / ".cache" / "fairnad"))


def cached_path(name: str, data_dir: str | Path | None = None) -> Path:
    """Where `prepare` keeps (or will keep) the .npz of `name` built from `data_dir`."""
    src = _source_dir(dataset_spec(name), data_dir)
    key = hashlib.sha256(json.dumps([name, _fingerprint(src) if src else None, 1]).encode()).hexdigest()[:12]
    stem = Path(name).stem if is_user_dataset(name) else name  # a user's file: its path is in the key
    return cache_dir() / "datasets" / f"{stem}-{key}.npz"


def prepare(name: str, data_dir: str | Path | None = None) -> Path:
    """The cached .npz of `name` (built on first use): x/y for train, val and test, plus meta."""
    spec = dataset_spec(name)
    src = _source_dir(spec, data_dir)
    out = cached_path(name, data_dir)
    if out.is_file():
        return out
    arrays = _user_arrays(src) if is_user_dataset(name) else _BUILDERS[name](src)
    _check_arrays(spec, arrays)
    if spec.pixels:
        x = arrays["x_train"].astype(np.float32) / 255.0
        arrays["mean"] = x.mean(axis=tuple(i for i in range(x.ndim) if i != 1)).astype(np.float32)
        arrays["std"] = x.std(axis=tuple(i for i in range(x.ndim) if i != 1)).astype(np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp.npz")  # (pool threads prepare at once)
    np.savez(tmp, **arrays)
    os.replace(tmp, out)  # atomic: a concurrent reader never sees half a file
    return out


def load(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _source_dir(spec: DatasetSpec, data_dir) -> Path | None:
    if is_user_dataset(spec.name):
        return Path(spec.name)  # the file itself: its fingerprint keys the cache
    if spec.name == "fashion-mnist":
        d = Path(data_dir) if data_dir else FASHION_DEFAULT_DIR
        if not d.is_dir():
            raise ConfigError(
                f"fashion-mnist: folder {d} not found; install Debian's dataset-fashion-mnist or pass --data-dir "
                "with train-images-idx3-ubyte.gz and the three other IDX files"
            )
        return d
    if not spec.needs_dir:
        return None
    if data_dir is None:
        raise ConfigError(f"{spec.name}: pass --data-dir, the folder holding {_EXPECTED[spec.name]}")
    d = Path(data_dir)
    if not d.is_dir():
        raise ConfigError(f"{spec.name}: --data-dir {d} is not a folder")
    return d


def _fingerprint(d: Path) -> list:
    if d.is_file():
        return [str(d), d.stat().st_size, d.stat().st_mtime_ns]
    return sorted((str(p.relative_to(d)), p.stat().st_size, int(p.stat().st_mtime)) for p in d.rglob("*") if p.is_file())


def _check_arrays(spec: DatasetSpec, a: dict[str, np.ndarray]) -> None:
    for split in ("train", "val", "test"):
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        if len(x) != len(y) or len(x) == 0:
            raise ConfigError(f"{spec.name}: the {split} split has {len(x)} inputs and {len(y)} labels")
        if tuple(x.shape[1:]) != spec.input_shape:
            raise ConfigError(f"{spec.name}: {split} inputs have shape {x.shape[1:]}, expected {spec.input_shape}")
        if y.min() < 0 or y.max() >= spec.num_classes:
            raise ConfigError(f"{spec.name}: {split} labels outside 0..{spec.num_classes - 1}")


# -- builders ------------------------------------------------------------------------------------
def _mnist1d(_src) -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset  # make_dataset never downloads

    d = make_dataset(get_dataset_args())
    x = np.asarray(d["x"], np.float32)[:, None, :]
    y = np.asarray(d["y"], np.int64)
    xt = np.asarray(d["x_test"], np.float32)[:, None, :]
    mean, std = x.mean(), x.std()
    norm = lambda v: ((v - mean) / std).astype(np.float32)  # noqa: E731
    return {"x_train": norm(x[:3500]), "y_train": y[:3500], "x_val": norm(x[3500:]), "y_val": y[3500:],
            "x_test": norm(xt), "y_test": np.asarray(d["y_test"], np.int64)}  # fmt: skip


def _digits(_src) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    x = (d.images[order].astype(np.float32) / 16.0)[:, None]
    x = ((x - x[:1200].mean()) / x[:1200].std()).astype(np.float32)
    y = d.target[order].astype(np.int64)
    return {"x_train": x[:1200], "y_train": y[:1200], "x_val": x[1200:1497], "y_val": y[1200:1497],
            "x_test": x[1497:], "y_test": y[1497:]}  # fmt: skip


def _read_idx(path: Path, magic: int) -> np.ndarray:
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"fashion-mnist: {path} is missing") from None
    except (OSError, EOFError) as err:
        raise ConfigError(f"fashion-mnist: {path} is not a readable (gzip) IDX file: {err}") from None
    if len(data) < 8 or struct.unpack(">I", data[:4])[0] != magic:
        raise ConfigError(f"fashion-mnist: {path} is not an IDX file (bad magic number)")
    ndim = magic & 0xFF
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ConfigError(f"fashion-mnist: {path} is truncated ({body.size} values for shape {dims})")
    return body.reshape(dims)


def _idx_file(d: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (d / name).is_file():
            return d / name
    raise ConfigError(f"fashion-mnist: {d / (stem + '.gz')} is missing")


def _fashion(src: Path) -> dict[str, np.ndarray]:
    x = _read_idx(_idx_file(src, "train-images-idx3-ubyte"), 0x803)[:, None]
    y = _read_idx(_idx_file(src, "train-labels-idx1-ubyte"), 0x801).astype(np.int64)
    xt = _read_idx(_idx_file(src, "t10k-images-idx3-ubyte"), 0x803)[:, None]
    yt = _read_idx(_idx_file(src, "t10k-labels-idx1-ubyte"), 0x801).astype(np.int64)
    n_val = max(1, len(x) // 12)
    return {"x_train": x[:-n_val], "y_train": y[:-n_val], "x_val": x[-n_val:], "y_val": y[-n_val:],
            "x_test": xt, "y_test": yt}  # fmt: skip


class _ArraysOnly(pickle.Unpickler):
    """Dataset pickles hold dicts, lists and numpy arrays; refuse anything else (no code execution)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }  # fmt: skip

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(path: Path, dataset: str) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArraysOnly(f, encoding="latin1").load()
    except FileNotFoundError:
        raise ConfigError(f"{dataset}: {path} is missing") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ConfigError(f"{dataset}: {path} is not a dataset pickle ({err})") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{dataset}: {path} does not hold a dict of data and labels")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _field(d: dict, path: Path, dataset: str, *names: str):
    for n in names:
        if n in d:
            return d[n]
    raise ConfigError(f"{dataset}: {path} has no {' or '.join(names)!s} entry")


def _images(d: dict, path: Path, dataset: str, side: int) -> np.ndarray:
    data = np.asarray(_field(d, path, dataset, "data"), dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * side * side:
        raise ConfigError(f"{dataset}: {path} data has shape {data.shape}, expected (N, {3 * side * side})")
    return data.reshape(-1, 3, side, side)


def _split_file(src: Path, name: str, keys: tuple[str, str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """NB201's split files (AutoDL's {"key": ["int", [...]]} or plain lists) when present, else
    a seeded half-and-half split of the same sizes."""
    for p in (src / name, src.parent / name):
        if p.is_file():
            try:
                raw = json.loads(p.read_text())
                parts = [raw[k][1] if isinstance(raw[k], list) and raw[k] and raw[k][0] == "int" else raw[k]
                         for k in keys]  # fmt: skip
                return np.asarray(parts[0], np.int64), np.asarray(parts[1], np.int64)
            except (ValueError, KeyError, TypeError) as err:
                raise ConfigError(f"{p}: not a NAS-Bench-201 split file with keys {keys} ({err})") from None
    order = np.random.default_rng(0).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def _batch_file(path: Path, dataset: str, side: int, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one pickled batch file (CIFAR's and ImageNet16's layout)."""
    d = _unpickle(path, dataset)
    return _images(d, path, dataset, side), np.asarray(_field(d, path, dataset, label_key), np.int64)


def _batch_files(paths: list[Path], dataset: str, side: int, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    parts = [_batch_file(p, dataset, side, label_key) for p in paths]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def _cifar10(src: Path) -> dict[str, np.ndarray]:
    base = src / "cifar-10-batches-py" if (src / "cifar-10-batches-py").is_dir() else src
    x, y = _batch_files([base / f"data_batch_{i}" for i in range(1, 6)], "cifar10", 32, "labels")
    xt, yt = _batch_file(base / "test_batch", "cifar10", 32, "labels")
    tr, va = _split_file(src, "cifar-split.txt", ("train", "valid"), len(x))
    return {"x_train": x[tr], "y_train": y[tr], "x_val": x[va], "y_val": y[va], "x_test": xt, "y_test": yt}


def _cifar100(src: Path) -> dict[str, np.ndarray]:
    base = src / "cifar-100-python" if (src / "cifar-100-python").is_dir() else src
    x, y = _batch_file(base / "train", "cifar100", 32, "fine_labels")
    xt, yt = _batch_file(base / "test", "cifar100", 32, "fine_labels")
    va, te = _split_file(src, "cifar100-test-split.txt", ("xvalid", "xtest"), len(xt))
    return {"x_train": x, "y_train": y, "x_val": xt[va], "y_val": yt[va], "x_test": xt[te], "y_test": yt[te]}


def _imagenet16(src: Path) -> dict[str, np.ndarray]:
    base = src / "ImageNet16" if (src / "ImageNet16").is_dir() else src
    x, y = _batch_files([base / f"train_data_batch_{i}" for i in range(1, 11)], "imagenet16-120", 16, "labels")
    xv, yv = _batch_file(base / "val_data", "imagenet16-120", 16, "labels")
    keep, keep_v = y <= 120, yv <= 120  # ImageNet16-120: the first 120 of the 1000 classes, labels 1-based
    x, y, xv, yv = x[keep], y[keep] - 1, xv[keep_v], yv[keep_v] - 1
    va, te = _split_file(src, "imagenet-16-120-test-split.txt", ("xvalid", "xtest"), len(xv))
    return {"x_train": x, "y_train": y, "x_val": xv[va], "y_val": yv[va], "x_test": xv[te], "y_test": yv[te]}


def _npz_keys(path: Path) -> set[str]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return set(z.files)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: not a readable .npz file ({err}); save your arrays with numpy.savez") from None


def _user_arrays(path: Path) -> dict[str, np.ndarray]:
    """A user's .npz: x_train, y_train, x_test, y_test (and x_val, y_val, else the last 10% of the
    shuffled training set). Inputs (N, L) get a channel axis; labels must be integers from 0."""
    keys = _npz_keys(path)
    need = ["x_train", "y_train", "x_test", "y_test"] + (["x_val", "y_val"] if {"x_val", "y_val"} & keys else [])
    missing = [k for k in need if k not in keys]
    if missing:
        raise ConfigError(f"{path}: no array {missing[0]!r}; a dataset file holds x_train, y_train, x_test, y_test "
                          f"(and optionally x_val, y_val); it has {sorted(keys)}")  # fmt: skip
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in need}
    except ValueError as err:  # object arrays (lists of arrays, strings) are refused rather than unpickled
        raise ConfigError(f"{path}: an array cannot be read without pickle ({err}); save plain numeric arrays "
                          "(numpy.savez with numbers, not lists or objects)") from None
    for split in ("train", "val", "test"):
        if f"x_{split}" in a:
            _check_split(path, split, a[f"x_{split}"], a[f"y_{split}"])
    if "x_val" not in a:
        order = np.random.default_rng(0).permutation(len(a["y_train"]))
        cut = len(order) - max(1, len(order) // 10)
        if cut < 1:
            raise ConfigError(f"{path}: {len(order)} training examples leave none after holding out a validation "
                              "set; give more, or x_val and y_val")  # fmt: skip
        a["x_val"], a["y_val"] = a["x_train"][order[cut:]], a["y_train"][order[cut:]]
        a["x_train"], a["y_train"] = a["x_train"][order[:cut]], a["y_train"][order[:cut]]
    for split in ("train", "val", "test"):
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        a[f"x_{split}"] = (x[:, None] if x.ndim == 2 else x).astype(np.uint8 if x.dtype == np.uint8 else np.float32)
        a[f"y_{split}"] = y.astype(np.int64)
    shapes = {a[f"x_{k}"].shape[1:] for k in ("train", "val", "test")}
    if len(shapes) > 1:
        raise ConfigError(f"{path}: the splits' inputs differ in shape: {sorted(shapes)}")
    if len(np.unique(a["y_train"])) < 2:
        raise ConfigError(f"{path}: y_train holds one class only; a classifier needs two or more")
    return a


def _check_split(path: Path, split: str, x: np.ndarray, y: np.ndarray) -> None:
    """One split of a user's arrays as training needs it; one line naming the array otherwise."""
    if x.dtype.kind not in "fui" or x.ndim not in (2, 3, 4):
        raise ConfigError(f"{path}: x_{split} must be numbers shaped (N, L), (N, C, L) or (N, C, H, W); it is "
                          f"{x.dtype} {x.shape}")  # fmt: skip
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ConfigError(f"{path}: y_{split} must be integer class labels, one per input; it is {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise ConfigError(f"{path}: x_{split} has {len(x)} inputs but y_{split} {len(y)} labels; give one label per input")
    if len(y) == 0:
        raise ConfigError(f"{path}: y_{split} is empty; every split needs examples")
    if y.min() < 0:
        raise ConfigError(f"{path}: y_{split} has the label {int(y.min())}; classes are numbered from 0")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ConfigError(f"{path}: x_{split} holds {int((~np.isfinite(x)).sum())} NaN or infinite values; "
                          "fill or drop them before the search (every model would fail on them)")  # fmt: skip
    # channels last: (N, H, W, 3) images; (N, C, H, W) with a narrow W stays allowed unless H = C or C is large
    if x.ndim == 4 and x.shape[3] in (1, 3, 4) and x.shape[1] >= 8 and (x.shape[1] == x.shape[2] or x.shape[1] > 16):
        raise ConfigError(f"{path}: x_{split} is shaped {x.shape}, which looks like channels last; images are "
                          "(N, C, H, W): save np.transpose(x, (0, 3, 1, 2))")  # fmt: skip


_BUILDERS = {"mnist1d": _mnist1d, "digits": _digits, "fashion-mnist": _fashion, "cifar10": _cifar10,
             "cifar100": _cifar100, "imagenet16-120": _imagenet16}  # fmt: skip
_EXPECTED = {
    "cifar10": "cifar-10-batches-py/ (data_batch_1..5, test_batch)",
    "cifar100": "cifar-100-python/ (train, test)",
    "imagenet16-120": "ImageNet16/ (train_data_batch_1..10, val_data)",
}
