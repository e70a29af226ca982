"""A seeded, offline segmentation dataset: images (2-D) or volumes (3-D) with a mask each.

Two structures over the backgrounds of the classification sets (`synthetic_images`,
`synthetic_volumes`, whose shapes are drawn here too): a large bright disc (ball) and a
smaller dark square (cube) drawn over it, each at a random position, size, orientation and
contrast, each absent from about one case in ten (so some masks are empty, as real ones can
be), plus an unlabelled distractor blob and noise. A small UNet learns it in a few epochs:
the offline pipeline trains and scores a segmentation model for real in seconds.

Masks are `(N, *spatial)` uint8 class indices (0 background, 1 disc, 2 square), the npz
layout's labels for a segmentation dataset; the same arguments give the same bytes.
"""

from __future__ import annotations

import numpy as np

from meddx.data.npz import SPLITS
from meddx.data.synthetic_images import _shape_mask, _smooth_background
from meddx.data.synthetic_volumes import _background, _rotation, _solid
from meddx.errors import ConfigError

STRUCTURES = 2  # foreground classes: the disc (ball) and the square (cube)
PRESENT = 0.9  # chance that a case holds a given structure


def _structures(rng: np.random.Generator, size: int) -> list[tuple[int, float, float]]:
    """(class, radius, contrast) of each structure this case holds, drawn in order."""
    drawn = []
    if rng.random() < PRESENT:
        drawn.append((1, rng.uniform(0.2, 0.3) * size, rng.uniform(0.2, 0.4)))
    if rng.random() < PRESENT:
        drawn.append((2, rng.uniform(0.1, 0.16) * size, -rng.uniform(0.2, 0.35)))
    return drawn


def _finish(rng: np.random.Generator, image: np.ndarray, blob: np.ndarray, noise: float):
    """Distractor, noise, clipping and uint8: the steps both dimensions share."""
    image = image + rng.uniform(-0.15, 0.15) * blob
    image = np.clip(image + rng.normal(0.0, noise, image.shape), 0.0, 1.0)
    return (image * 255).round().astype(np.uint8)


def make_image(rng: np.random.Generator, size: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = 0.35 + 0.12 * _smooth_background(rng, size)
    mask = np.zeros((size, size), dtype=np.uint8)
    for label, r, contrast in _structures(rng, size):
        cy, cx = rng.uniform(r, size - r, 2)
        inside = _shape_mask(
            ("disc", "square")[label - 1], yy, xx, cy, cx, r, rng.uniform(0, np.pi)
        )
        image = np.where(inside, image + contrast, image)
        mask[inside] = label
    by, bx = rng.uniform(0, size, 2)
    blob = (yy - by) ** 2 + (xx - bx) ** 2 <= (rng.uniform(0.05, 0.1) * size) ** 2
    return _finish(rng, image, blob, noise), mask


def make_volume(rng: np.random.Generator, size: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    grid = np.indices((size, size, size)).astype(np.float64)
    volume = 0.4 + 0.1 * _background(rng, grid, size)
    mask = np.zeros((size, size, size), dtype=np.uint8)
    for label, r, contrast in _structures(rng, size):
        centre = rng.uniform(r, size - r, 3)
        offsets = np.tensordot(_rotation(rng), grid - centre[:, None, None, None], axes=1)
        inside = _solid(("ball", "cube")[label - 1], offsets, r)
        volume = np.where(inside, volume + contrast, volume)
        mask[inside] = label
    centre = rng.uniform(0, size, 3)
    blob = ((grid - centre[:, None, None, None]) ** 2).sum(axis=0) <= (0.1 * size) ** 2
    return _finish(rng, volume, blob, noise), mask


def generate(
    num_classes: int, sizes: dict[str, int], size: int, spatial_dims: int, noise: float, seed: int
) -> dict[str, np.ndarray]:
    """Splits in the npz layout, one generator per split (a split's bytes do not depend on
    the size of another)."""
    if num_classes != STRUCTURES + 1:
        raise ConfigError(
            f"data.image.class_names: synthetic masks have {STRUCTURES + 1} classes "
            f"(background first), not {num_classes}"
        )
    make = make_image if spatial_dims == 2 else make_volume
    arrays: dict[str, np.ndarray] = {}
    for offset, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, offset])
        cases = [make(rng, size, noise) for _ in range(int(sizes[split]))]
        arrays[f"{split}_images"] = np.stack([image for image, _ in cases])
        arrays[f"{split}_labels"] = np.stack([mask for _, mask in cases])
    return arrays
