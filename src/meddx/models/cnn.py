"""Image classifiers. Every network takes `in_channels`, `num_classes` and `image_size` from the
dataset at build time, so one config works for any MedMNIST subset or size."""

from __future__ import annotations

import torch
from torch import nn


class BasicCNN(nn.Module):
    """The classic diagnosis CNN: conv+ReLU+max-pool blocks, a dense layer, class logits.

    Returns logits; the softmax lives in the loss and in prediction, where it is numerically safe.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, ...] = (32, 64, 128),
        hidden: int = 512,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if image_size < 2 ** len(channels):
            raise ValueError(
                f"image_size {image_size} is too small for {len(channels)} pooling blocks"
            )
        blocks: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            blocks += [
                nn.Conv2d(previous, width, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.features = nn.Sequential(*blocks)
        side = image_size // 2 ** len(channels)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(previous * side * side, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _conv_bn(inputs: int, outputs: int) -> list[nn.Module]:
    return [
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    ]


class ConvNet(nn.Module):
    """Our small-image recipe net: stages of two conv+BN+ReLU, max-pool between stages, global
    average pooling, dropout, linear.

    Batch norm and global pooling make it train fast and generalise well at 28 px with a
    fraction of ResNet-18's compute (about 0.3 M parameters against 11 M), which is what a
    2-core CPU can afford for a few-minute run.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, ...] = (32, 64, 128),
        convs_per_stage: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if image_size < 2 ** (len(channels) - 1):
            raise ValueError(f"image_size {image_size} is too small for {len(channels)} stages")
        layers: list[nn.Module] = []
        previous = in_channels
        for index, width in enumerate(channels):
            if index:
                layers.append(nn.MaxPool2d(2))
            for _ in range(convs_per_stage):
                layers += _conv_bn(previous, width)
                previous = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(previous, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
