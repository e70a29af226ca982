"""Image classifiers. Every network takes `in_channels`, `num_classes` and `image_size` from the
dataset at build time, so one config works for any MedMNIST subset or size."""

from __future__ import annotations

import torch
from torch import nn


class BasicCNN(nn.Module):
    """The classic diagnosis CNN: conv+ReLU+max-pool blocks, a dense layer, class logits.

    Returns logits; the softmax lives in the loss and in prediction, where it is numerically safe.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int,
                 channels: tuple[int, ...] = (32, 64, 128), hidden: int = 512,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if image_size < 2 ** len(channels):
            raise ValueError(
                f"image_size {image_size} is too small for {len(channels)} pooling blocks"
            )
        blocks: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            blocks += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
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
