"""ResNet-18 as the MedMNIST v2 baseline builds it for 28 px inputs.

The MedMNIST experiments (`MedMNIST2D/models.py`) use the CIFAR variant: a 3x3 stride-1 stem
and no max-pool, so a 28 px image keeps its resolution through the first stage. Written here
rather than taken from torchvision, which does not import beside this torch build.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inputs: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != width:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet with basic blocks; `layers=(2, 2, 2, 2)` is ResNet-18."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        layers: tuple[int, ...] = (2, 2, 2, 2),
        widths: tuple[int, ...] = (64, 128, 256, 512),
    ) -> None:
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(f"layers {list(layers)} and widths {list(widths)} differ in length")
        if image_size < 2 ** (len(layers) - 1):
            raise ValueError(f"image_size {image_size} is too small for {len(layers)} stages")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        previous = widths[0]
        for stage, (count, width) in enumerate(zip(layers, widths, strict=True)):
            for index in range(count):
                stride = 2 if stage and not index else 1
                blocks.append(BasicBlock(previous, width, stride))
                previous = width
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(previous, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def resnet18(in_channels: int, num_classes: int, image_size: int) -> ResNet:
    return ResNet(in_channels, num_classes, image_size, layers=(2, 2, 2, 2))
