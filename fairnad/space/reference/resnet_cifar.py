"""ResNet for 32x32 inputs (He et al. 2016, the CIFAR variant): depth = 6n + 2 (20, 32, 44, 56, 110).

Three stages of n basic blocks with width, 2*width, 4*width channels; stride 2 between stages,
1x1-conv projection shortcuts where the shape changes.
"""

import torch
from torch import nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x), inplace=True)


class CifarResNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, depth: int = 20, width: int = 16) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"depth must be 6n + 2 (20, 32, 44, 56, ...), got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True))
        blocks, c = [], width
        for stage, mult in enumerate((1, 2, 4)):
            for i in range(n):
                blocks.append(BasicBlock(c, width * mult, 2 if (i == 0 and stage > 0) else 1))
                c = width * mult
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def build_model(num_classes: int = 10, in_chans: int = 3, depth: int = 20, width: int = 16) -> nn.Module:
    return CifarResNet(num_classes, in_chans, depth, width)
