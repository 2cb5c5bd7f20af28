"""The NAS-Bench-201 network (Dong & Yang 2020): a stem, three stages of `cells` cells joined by
residual reduction blocks, then BN-ReLU, pooling and a linear head.

`arch` is the cell in NB201's notation; `width` is the first stage's channels (16 in the
benchmark), `cells` the cells per stage (5 in the benchmark).
"""

import torch
from torch import nn

DEFAULT_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


class ReLUConvBN(nn.Sequential):
    def __init__(self, c: int, k: int) -> None:
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c, c, k, 1, k // 2, bias=False), nn.BatchNorm2d(c))


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, c: int) -> nn.Module:
    ops = {
        "none": lambda: Zero(),
        "skip_connect": lambda: nn.Identity(),
        "nor_conv_1x1": lambda: ReLUConvBN(c, 1),
        "nor_conv_3x3": lambda: ReLUConvBN(c, 3),
        "avg_pool_3x3": lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
    }
    if name not in ops:
        raise ValueError(f"unknown NB201 op {name!r}")
    return ops[name]()


def parse_arch(arch: str) -> list[list[tuple[str, int]]]:
    """'|a~0|+|b~0|c~1|+|...' -> for each node, its (op, input node) edges."""
    return [[(e.split("~")[0], int(e.split("~")[1])) for e in node.strip("|").split("|")] for node in arch.split("+")]


class Cell(nn.Module):
    def __init__(self, c: int, arch: str) -> None:
        super().__init__()
        self.nodes = parse_arch(arch)
        self.edges = nn.ModuleList(make_op(op, c) for node in self.nodes for op, _ in node)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, k = [x], 0
        for node in self.nodes:
            total = 0
            for _, src in node:
                total = total + self.edges[k](states[src])
                k += 1
            states.append(total)
        return states[-1]


class ResidualReduction(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.ReLU(), nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout))
        self.b = nn.Sequential(nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


class NB201Network(nn.Module):
    def __init__(self, num_classes=10, in_chans=3, arch: str = DEFAULT_ARCH, width: int = 16, cells: int = 5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))
        layers, c = [], width
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, c * 2))
                c *= 2
            layers += [Cell(c, arch) for _ in range(cells)]
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.cells(self.stem(x)))
        return self.classifier(x.mean((2, 3)))


def build_model(num_classes: int = 10, in_chans: int = 3, arch: str = DEFAULT_ARCH, width: int = 16, cells: int = 5):
    return NB201Network(num_classes, in_chans, arch, width, cells)
