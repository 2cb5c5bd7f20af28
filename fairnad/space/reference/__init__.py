"""Reference models: plain source files that follow the candidate contract (docs/candidate-contract.md).

They are starting points for open-ended searches and baselines for comparisons. Each exposes
scaling arguments (`scale`) so a search can grow or shrink it without rewriting code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fairnad.errors import ConfigError

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Reference:
    name: str
    file: str
    datasets: tuple[str, ...]
    scale: dict = field(default_factory=dict)  # scaling arguments and their defaults
    summary: str = ""

    @property
    def path(self) -> Path:
        return HERE / self.file

    def source(self) -> str:
        return self.path.read_text()


REFERENCES = {
    r.name: r
    for r in [
        Reference("mnist1d-cnn", "mnist1d_cnn.py", ("mnist1d",), {"width": 32, "depth": 4}, "1-D CNN"),
        Reference("small-cnn", "small_cnn.py", ("digits", "fashion-mnist"), {"width": 32, "depth": 2}, "small 2-D CNN"),
        Reference("resnet20", "resnet_cifar.py", ("cifar10", "cifar100", "imagenet16-120"), {"depth": 20, "width": 16},
                  "CIFAR ResNet, depth 6n+2"),
        Reference("mobilenetv2", "mobilenetv2_cifar.py", ("cifar10", "cifar100", "imagenet16-120"),
                  {"width": 1.0, "depth": 1.0}, "MobileNetV2 for small images"),
        Reference("nb201", "nb201_cell.py", ("cifar10", "cifar100", "imagenet16-120"), {"width": 16, "cells": 5},
                  "NAS-Bench-201 cell network"),
        Reference("convnext-small", "convnext_small.py", ("cifar10", "cifar100", "imagenet16-120"),
                  {"width": 32, "depth": 3}, "small ConvNeXt"),
    ]
}  # fmt: skip


def reference(name: str) -> Reference:
    if name not in REFERENCES:
        raise ConfigError(f"unknown reference model {name!r}; available: {', '.join(REFERENCES)}")
    return REFERENCES[name]


def for_dataset(dataset: str, input_shape: tuple[int, ...]) -> list[Reference]:
    """The starting models of a dataset. A dataset no reference names (a user's arrays) gets the 1-D
    CNN for signals (`input_shape` (channels, length)) and the small 2-D CNN for images (both take
    any length or size: global pooling before the head). The caller knows the dataset's shape
    (evaluate.datasets.dataset_spec): a space does not read datasets."""
    named = [r for r in REFERENCES.values() if dataset in r.datasets]
    if named:
        return named
    return [REFERENCES["mnist1d-cnn" if len(input_shape) == 2 else "small-cnn"]]
