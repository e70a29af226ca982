"""Image and volume classifiers. Every network takes `in_channels`, `num_classes`, `image_size`
and `spatial_dims` (2: images, 3: volumes) from the dataset at build time, so one config works
for any MedMNIST subset, size or dimensionality: a volume dataset gets the same recipe with
3-D convolutions, not a second network."""

from __future__ import annotations

import torch
from torch import nn

# Per spatial dimensionality: (convolution, batch norm, max-pool, adaptive average pool).
# A dict rather than MONAI's layer factories: `import monai` costs seconds per stage process.
LAYERS: dict[int, tuple[type[nn.Module], ...]] = {
    2: (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d),
    3: (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.AdaptiveAvgPool3d),
}


def layers(spatial_dims: int) -> tuple[type[nn.Module], ...]:
    if spatial_dims not in LAYERS:
        raise ValueError(f"spatial_dims must be one of {sorted(LAYERS)}, got {spatial_dims!r}")
    return LAYERS[spatial_dims]


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
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        if image_size < 2 ** len(channels):
            raise ValueError(
                f"image_size {image_size} is too small for {len(channels)} pooling blocks"
            )
        conv, _, pool, _ = layers(spatial_dims)
        blocks: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            blocks += [
                conv(previous, width, 3, padding=1),
                nn.ReLU(inplace=True),
                pool(2),
            ]
            previous = width
        self.features = nn.Sequential(*blocks)
        side = image_size // 2 ** len(channels)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(previous * side**spatial_dims, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _conv_bn(inputs: int, outputs: int, spatial_dims: int) -> list[nn.Module]:
    conv, norm, _, _ = layers(spatial_dims)
    return [
        conv(inputs, outputs, 3, padding=1, bias=False),
        norm(outputs),
        nn.ReLU(inplace=True),
    ]


class ConvNet(nn.Module):
    """Our small-image recipe net: stages of two conv+BN+ReLU, max-pool between stages, global
    average pooling, dropout, linear.

    Batch norm and global pooling make it train fast and generalise well at 28 px with a
    fraction of ResNet-18's compute (about 0.3 M parameters against 11 M), which is what a
    2-core CPU can afford for a few-minute run. With `spatial_dims=3` it is our small 3-D
    ConvNet for volumes (0.9 M parameters at the default widths).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: tuple[int, ...] = (32, 64, 128),
        convs_per_stage: int = 2,
        dropout: float = 0.2,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        if image_size < 2 ** (len(channels) - 1):
            raise ValueError(f"image_size {image_size} is too small for {len(channels)} stages")
        _, _, pool, global_pool = layers(spatial_dims)
        stack: list[nn.Module] = []
        previous = in_channels
        for index, width in enumerate(channels):
            if index:
                stack.append(pool(2))
            for _ in range(convs_per_stage):
                stack += _conv_bn(previous, width, spatial_dims)
                previous = width
        self.features = nn.Sequential(*stack)
        self.head = nn.Sequential(
            global_pool(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(previous, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
