"""A small 2-D CNN for 8x8 digits and 28x28 Fashion-MNIST: conv-BN-ReLU stages, pooling between them.

`width` is the first stage's channels (doubled each stage), `depth` the conv layers per stage,
`dropout` the dropout before the classifier.
"""

import torch
from torch import nn


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    def __init__(self, num_classes=10, in_chans=1, width=32, depth=2, stages=2, dropout: float = 0.1):
        super().__init__()
        blocks, c = [], in_chans
        for s in range(stages):
            cout = width * 2**s
            for d in range(depth):
                blocks.append(conv_bn(c, cout))
                c = cout
            if s < stages - 1:
                blocks.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_model(num_classes: int = 10, in_chans: int = 1, width: int = 32, depth: int = 2, stages: int = 2,
                dropout: float = 0.1):
    return SmallCNN(num_classes, in_chans, width, depth, stages, dropout)
