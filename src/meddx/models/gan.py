"""Class-conditional GAN networks sized by the dataset (`channels`, `num_classes`, `image_size`).

The generator (DCGAN, Radford et al. 2016) maps noise plus a label embedding to a small
feature map and doubles it with stride-2 transposed convolutions up to the image size; the
discriminator mirrors it with stride-2 convolutions and conditions through a projection
head (Miyato & Koyama 2018): `score = w.h + <embed(y), h>`, which conditions more stably
than concatenating labels to the image. Both work for any size that halves at least once to
a map of 4 pixels or more (28 -> 7, 32 -> 4, 64 -> 4, 224 -> 7).

Images live in [-1, 1] (tanh output); the stages convert from and to the dataset's scale.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from meddx.errors import ConfigError

NORMS = ("batch", "layer", "none")


def upsampling_plan(image_size: int) -> tuple[int, int]:
    """(number of stride-2 steps, side of the first feature map) for `image_size`."""
    steps = 0
    while image_size % 2 ** (steps + 1) == 0 and image_size // 2 ** (steps + 1) >= 4:
        steps += 1
    if steps == 0:
        raise ValueError(
            f"image_size {image_size} cannot be halved to a feature map of >= 4 px; "
            "use an even size such as 28, 32 or 64"
        )
    return steps, image_size // 2**steps


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # per-sample, so the WGAN-GP gradient penalty stays per-sample
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; known: {NORMS}")


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.'s initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """Noise + label -> image in [-1, 1], shape (N, channels, image_size, image_size).

    Widths halve at each doubling of the side, from `base_channels * 2**(steps-1)` down to
    `base_channels`; the last transposed convolution writes the image channels directly.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: int,
        latent_dim: int = 64,
        base_channels: int = 32,
        embed_dim: int = 16,
    ) -> None:
        super().__init__()
        steps, side = upsampling_plan(image_size)
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        widths = [base_channels * 2 ** (steps - 1 - i) for i in range(steps)]
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.project = nn.Sequential(
            nn.Linear(latent_dim + embed_dim, widths[0] * side * side, bias=False),
            nn.Unflatten(1, (widths[0], side, side)),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(widths):
            blocks += [
                nn.ConvTranspose2d(width_in, width_out, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width_out),
                nn.ReLU(inplace=True),
            ]
        self.upsample = nn.Sequential(*blocks)
        self.to_image = nn.Sequential(
            nn.ConvTranspose2d(widths[-1], channels, 4, stride=2, padding=1), nn.Tanh()
        )
        dcgan_init(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(labels)], dim=1))
        return self.to_image(self.upsample(h))

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, seed: int, batch_size: int = 512) -> torch.Tensor:
        """Images for `labels` from noise drawn with its own seeded generator (eval mode)."""
        was_training = self.training
        self.eval()
        noise = torch.Generator().manual_seed(seed)
        chunks = []
        for start in range(0, len(labels), batch_size):
            part = labels[start : start + batch_size]
            z = torch.randn(len(part), self.latent_dim, generator=noise)
            chunks.append(self(z, part))
        self.train(was_training)
        return torch.cat(chunks)


class Discriminator(nn.Module):
    """Image + label -> one unbounded score per image (a logit, or a WGAN critic value)."""

    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: int,
        base_channels: int = 32,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        steps, side = upsampling_plan(image_size)
        blocks: list[nn.Module] = []
        width_in = channels
        for i in range(steps):
            width_out = base_channels * 2**i
            blocks += [
                nn.Conv2d(width_in, width_out, 4, stride=2, padding=1),
                # no norm on the first layer, as in DCGAN: it sees the raw pixels
                nn.Identity() if i == 0 else _norm(norm, width_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width_in = width_out
        self.features = nn.Sequential(*blocks, nn.Flatten())
        features = width_in * side * side
        self.score = nn.Linear(features, 1)
        self.embed = nn.Embedding(num_classes, features)
        # Same scale as the linear score's weights: a N(0, 1) embedding over thousands of
        # features would make the projection term dominate and saturate the loss.
        bound = features**-0.5
        nn.init.uniform_(self.embed.weight, -bound, bound)
        dcgan_init(self)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.features(images)
        return self.score(h).squeeze(1) + (self.embed(labels) * h).sum(dim=1)


def dataset_kwargs(facts: dict[str, Any]) -> dict[str, int]:
    """The sizes both networks are built with, from `data/processed/images.json`."""
    if facts.get("spatial_dims", 2) != 2:
        raise ConfigError(
            f"dataset {facts['name']!r} holds {facts['spatial_dims']}-D volumes; the GAN "
            "generates 2-D images only"
        )
    if facts["task"] == "multi-label":
        raise ConfigError(
            f"dataset {facts['name']!r} is multi-label; the class-conditional GAN needs one "
            "label per image (binary, multi-class or ordinal)"
        )
    return {
        "channels": int(facts["channels"]),
        "num_classes": int(facts["num_classes"]),
        "image_size": int(facts["size"]),
    }
