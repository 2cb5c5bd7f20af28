"""Tiny dataset files in the exact on-disk formats the real loaders read (CIFAR, ImageNet16, IDX)."""

import gzip
import json
import pickle
import struct

import numpy as np


def write_cifar10(root, n_train_per_batch=20, n_test=30, seed=0, learnable=False):
    """CIFAR-10's python layout. `learnable`: each class is a fixed random image plus noise, so a
    network that trains reaches a high accuracy within an epoch or two (random pixels teach nothing)."""
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 256, (10, 3072)) if learnable else None

    def images(labels):
        if not learnable:
            return rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        noise = rng.integers(-80, 81, (len(labels), 3072))
        return np.clip(templates[np.asarray(labels)] + noise, 0, 255).astype(np.uint8)

    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i in range(1, 6):
        labels = rng.integers(0, 10, n_train_per_batch).tolist()
        batch = {b"batch_label": b"training batch", b"labels": labels, b"data": images(labels),
                 b"filenames": [b"x.png"] * n_train_per_batch}  # fmt: skip
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    labels = rng.integers(0, 10, n_test).tolist()
    (d / "test_batch").write_bytes(pickle.dumps({b"labels": labels, b"data": images(labels)}, protocol=2))
    return d


def write_nb201_cifar10_split(root, n):
    """AutoDL's config format: each key maps to [type, value]."""
    idx = list(range(n))
    (root / "cifar-split.txt").write_text(json.dumps({"train": ["int", idx[::2]], "valid": ["int", idx[1::2]]}))


def write_cifar100(root, n_train=40, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        obj = {b"fine_labels": rng.integers(0, 100, n).tolist(), b"coarse_labels": rng.integers(0, 20, n).tolist(),
               b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}  # fmt: skip
        (d / name).write_bytes(pickle.dumps(obj, protocol=2))
    return d


def write_imagenet16(root, n_per_batch=12, n_val=24, seed=0):
    rng = np.random.default_rng(seed)
    d = root / "ImageNet16"
    d.mkdir(parents=True)
    for i in range(1, 11):
        labels = rng.integers(1, 1001, n_per_batch)
        labels[:4] = rng.integers(1, 121, 4)  # make sure some of the 120 kept classes appear
        obj = {"data": rng.integers(0, 256, (n_per_batch, 768), dtype=np.uint8), "labels": labels.tolist(),
               "mean": np.zeros(768)}  # fmt: skip
        (d / f"train_data_batch_{i}").write_bytes(pickle.dumps(obj))
    labels = rng.integers(1, 121, n_val)
    (d / "val_data").write_bytes(pickle.dumps({"data": rng.integers(0, 256, (n_val, 768), dtype=np.uint8),
                                               "labels": labels.tolist()}))  # fmt: skip
    return d


def write_idx(path, array, gz=True):
    magic = 0x800 | array.ndim | (0x08 << 8)  # 0x0803 for images, 0x0801 for labels
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def write_fashion(root, n_train=60, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(root / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, n_train))
    write_idx(root / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(root / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, n_test))
    return root
