"""MobileNetV2 (Sandler et al. 2018) adapted to small images: stride 1 in the stem and the first stage.

`width` multiplies every channel count (rounded to multiples of 8); `depth` multiplies the
number of inverted-residual blocks per stage (rounded up).
"""

import math

import torch
from torch import nn

# expansion t, channels c, blocks n, first stride s
STAGES = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _round8(v: float) -> int:
    return max(8, int(v + 4) // 8 * 8)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(True),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        ]  # fmt: skip
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=10, in_chans=3, width: float = 1.0, depth: float = 1.0, head_channels=1280):
        super().__init__()
        c = _round8(32 * width)
        layers = [nn.Conv2d(in_chans, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU6(True)]
        for t, ch, n, s in STAGES:
            cout = _round8(ch * width)
            for i in range(math.ceil(n * depth)):
                layers.append(InvertedResidual(c, cout, s if i == 0 else 1, t))
                c = cout
        head = _round8(head_channels * max(1.0, width))
        layers += [nn.Conv2d(c, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU6(True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(head, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


def build_model(num_classes: int = 10, in_chans: int = 3, width: float = 1.0, depth: float = 1.0) -> nn.Module:
    return MobileNetV2(num_classes, in_chans, width, depth)
