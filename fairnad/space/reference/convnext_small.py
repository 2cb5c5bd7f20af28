"""A small ConvNeXt (Liu et al. 2022) for 16-32 px images: 2x2 patchify stem, four stages of
depthwise 7x7 conv + LayerNorm + inverted MLP blocks with layer scale, 2x2 downsampling between.

`width` is the first stage's channels (doubled each stage); `depth` the blocks of the third
stage (the others have a third of it, at least one), as in ConvNeXt's 1:1:3:1 layout.
"""

import torch
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Block(nn.Module):
    def __init__(self, c: int, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c))
        self.gamma = nn.Parameter(torch.full((c,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.mlp(self.norm(y)) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtSmall(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32, depth: int = 3) -> None:
        super().__init__()
        dims = [width * 2**i for i in range(4)]
        depths = [max(1, depth // 3), max(1, depth // 3), depth, max(1, depth // 3)]
        layers: list[nn.Module] = [nn.Conv2d(in_chans, dims[0], 2, 2), LayerNorm2d(dims[0])]
        for i, (d, n) in enumerate(zip(dims, depths)):
            if i > 0:
                layers += [LayerNorm2d(dims[i - 1]), nn.Conv2d(dims[i - 1], d, 2, 2)]
            layers += [Block(d) for _ in range(n)]
        self.features = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.features(x).mean((2, 3))))


def build_model(num_classes: int = 10, in_chans: int = 3, width: int = 32, depth: int = 3) -> nn.Module:
    return ConvNeXtSmall(num_classes, in_chans, width, depth)
