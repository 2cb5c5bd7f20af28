"""A 1-D CNN for MNIST-1D (40-sample signals, 10 classes): conv blocks, global pooling, linear head.

`width` scales the channels, `depth` the number of conv blocks (every other one halves the length),
`kernel_size` sets the receptive field of each convolution.
"""

import torch
from torch import nn


class ConvBlock1d(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm1d(cout)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Mnist1dCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 1, width: int = 32, depth: int = 4, kernel_size: int = 5):
        super().__init__()
        layers, c = [], in_chans
        for i in range(depth):
            cout = width * (2 if i >= depth // 2 else 1)
            layers.append(ConvBlock1d(c, cout, stride=2 if i % 2 == 1 else 1, kernel_size=kernel_size))
            c = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=-1))


def build_model(num_classes: int = 10, in_chans: int = 1, width: int = 32, depth: int = 4, kernel_size: int = 5):
    return Mnist1dCNN(num_classes, in_chans, width, depth, kernel_size)
