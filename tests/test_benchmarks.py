"""The six built-in tables: integrity, known optima, ranks and exact random-search statistics."""

import json

import numpy as np
import pytest

from fairnad.evaluate.tabular import list_benchmarks, load_benchmark

from conftest import SHARED

EXPECTED = {  # name: (entries, positions, best reported accuracy, a genotype at the optimum)
    "nas-bench-macro": (6561, 8, 93.1267, "22212220"),
    "channel-bench-resnet": (16384, 7, 93.8933, "4344424"),
    "channel-bench-mobilenet": (16384, 7, 91.8867, "4444342"),
    "nb201-cifar10": (15625, 6, 94.3733, "333123"),
    "nb201-cifar100": (15625, 6, 73.5133, "333133"),
    "nb201-imagenet16-120": (15625, 6, 47.3111, "223133"),
}


def test_all_six_are_registered():
    assert list_benchmarks() == list(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_counts_and_optimum(name):
    n, ndim, best, genotype = EXPECTED[name]
    b = load_benchmark(name)
    assert len(b) == n == b.space.size
    assert b.space.ndim == ndim
    assert sorted(b.keys) == sorted(set(b.keys))
    opt = b.optimum()
    assert opt["test_accuracy"] == pytest.approx(best, abs=1e-4)
    assert genotype in opt["tied"]
    assert b.lookup(genotype)["rank"] == 1
    assert all(b.space.is_valid(k) for k in b.keys[:500])


def test_known_entries_are_unchanged():
    macro = load_benchmark("nas-bench-macro")
    assert macro.row("00000000")["mean_acc"] == pytest.approx(45.3633, abs=1e-4)
    assert macro.row("11111111")["params"] == 1588874
    assert macro.row("22212220")["flops"] == 85164544
    assert macro.row("22212202")["mean_acc"] == macro.row("22212220")["mean_acc"]  # same network, duplicated key
    res = load_benchmark("channel-bench-resnet")
    assert res.row("1111111")["mean"] == pytest.approx(91.7, abs=1e-4)
    assert res.row("4444444")["params"] == 15356170
    mob = load_benchmark("channel-bench-mobilenet")
    assert mob.row("1111111")["flops"] == 14285312
    c10 = load_benchmark("nb201-cifar10")
    resnet_cell = "303101"  # edges 01,02,12,03,13,23: conv3x3, none, conv3x3, skip, none, skip
    row = c10.row(resnet_cell)
    assert row["cell"] == "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
    assert row["val_acc_200"] == pytest.approx(90.86, abs=1e-3)
    assert row["test_acc_200"] == pytest.approx(93.91, abs=1e-3)
    assert c10.row("201100")["nb201_index"] >= 0
    # params / MACs computed from the NB201 network, equal to NB201's published extremes
    assert (c10.row("333333")["params"], c10.row("333333")["flops"]) == (1531546, 220119680)
    assert (c10.row("000000")["params"], c10.row("000000")["flops"]) == (73306, 7783040)
    assert load_benchmark("nb201-imagenet16-120").row("333333")["params"] == 1538696
    assert c10.row(resnet_cell)["val_acc_12"] < row["val_acc_200"]


@pytest.mark.skipif(not (SHARED / "benchmarks").is_dir(), reason="the original files are only in the dev checkout")
def test_values_bit_identical_to_the_original_files():
    raw = json.loads((SHARED / "benchmarks/nas-bench-macro/nas-bench-macro_cifar10.json").read_text())
    b = load_benchmark("nas-bench-macro")
    for k, v in raw.items():
        r = b.row(k)
        assert r["mean_acc"] == v["mean_acc"] and r["params"] == v["params"] and r["test_acc_3"] == v["test_acc"][2]
    raw = json.loads((SHARED / "benchmarks/nas-bench-201/nasbench201_imagenet.json").read_text())
    b = load_benchmark("nb201-imagenet16-120")
    by_cell = {c: i for i, c in enumerate(b.columns["cell"])}
    for cell, v in raw.items():
        i = by_cell[cell]
        assert b.columns["val_acc_200"][i] == v["val_acc_200"] and b.columns["test_acc_200"][i] == v["test_acc_200"]


def test_rank_is_one_plus_strictly_better():
    b = load_benchmark("nb201-cifar10")
    test = b.columns["test_acc_200"]
    for g in ["000000", "333123", "303101", "123412"]:
        v = b.lookup(g)["test_accuracy"]
        assert b.lookup(g)["rank"] == 1 + int(np.sum(test > v))
    # ties share a rank: the two optimal NB201 cells on CIFAR-10 have equal test accuracy
    assert b.lookup("333123")["rank"] == b.lookup("333132")["rank"] == 1


def test_nb201_searches_validation_and_reports_test():
    b = load_benchmark("nb201-cifar10")
    m = b.lookup("303101")
    assert m["accuracy"] == pytest.approx(90.86, abs=1e-3)  # what the search sees
    assert m["test_accuracy"] == pytest.approx(93.91, abs=1e-3)  # what is reported
    low = b.lookup("303101", fidelity="12")
    assert low["accuracy"] == b.row("303101")["val_acc_12"]
    assert low["test_accuracy"] == m["test_accuracy"]


@pytest.mark.parametrize(
    "name,k,mean,rank",  # exact values from shared/benchmarks/*/PROVENANCE.md
    [
        ("nas-bench-macro", 10, 92.433, 595), ("nas-bench-macro", 100, 92.866, 64),
        ("channel-bench-resnet", 10, 93.524, 1479), ("channel-bench-resnet", 100, 93.695, 160),
        ("channel-bench-mobilenet", 10, 91.380, 1483), ("channel-bench-mobilenet", 100, 91.627, 161),
        ("nb201-cifar10", 10, 93.029, 1611), ("nb201-cifar10", 100, 93.782, 227),
        ("nb201-cifar100", 10, 69.752, 1517), ("nb201-cifar100", 100, 71.439, 220),
        ("nb201-imagenet16-120", 10, 43.296, 1486), ("nb201-imagenet16-120", 100, 45.371, 251),
    ],
)  # fmt: skip
def test_exact_random_search_expectation(name, k, mean, rank):
    e = load_benchmark(name).random_search_expectation(k)
    assert e["mean"] == pytest.approx(mean, abs=1e-3)
    assert e["rank_mean"] == pytest.approx(rank, abs=1)


def test_random_search_expectation_matches_simulation():
    b = load_benchmark("nb201-cifar100")
    rng = np.random.default_rng(0)
    val, test = b.columns["val_acc_200"], b.columns["test_acc_200"]
    picks = []
    for _ in range(4000):
        idx = rng.choice(len(b), size=10, replace=False)
        picks.append(test[idx[np.argmax(val[idx])]])
    assert np.mean(picks) == pytest.approx(b.random_search_expectation(10)["mean"], abs=0.06)
