"""A seeded, offline image dataset whose classes are learnable but not trivial.

Each class is a shape (disc, square, ring, cross, ...) drawn at a random position, size and
contrast over a smooth random background, with noise and a distractor blob. A small CNN
needs a few epochs to separate them, so the default pipeline exercises real training
without any download.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from meddx.data.npz import SPLITS

SHAPES = ("disc", "square", "ring", "cross", "triangle", "bar")


def _shape_mask(
    kind: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float, angle: float
) -> np.ndarray:
    dy, dx = yy - cy, xx - cx
    ry = dy * np.cos(angle) - dx * np.sin(angle)
    rx = dy * np.sin(angle) + dx * np.cos(angle)
    if kind == "disc":
        return dy**2 + dx**2 <= r**2
    if kind == "square":
        return (np.abs(ry) <= r * 0.85) & (np.abs(rx) <= r * 0.85)
    if kind == "ring":
        d2 = dy**2 + dx**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    if kind == "cross":
        return ((np.abs(ry) <= r * 0.3) & (np.abs(rx) <= r)) | (
            (np.abs(rx) <= r * 0.3) & (np.abs(ry) <= r)
        )
    if kind == "triangle":
        return (ry <= r * 0.7) & (ry >= 1.6 * np.abs(rx) - r)
    if kind == "bar":
        return (np.abs(ry) <= r * 0.3) & (np.abs(rx) <= r * 1.1)
    raise ValueError(f"unknown shape {kind!r}; known: {SHAPES}")


def _smooth_background(rng: np.random.Generator, size: int) -> np.ndarray:
    coarse = rng.normal(0.0, 1.0, (4, 4))
    idx = np.linspace(0, 3, size)
    rows = np.array([np.interp(idx, np.arange(4), coarse[i]) for i in range(4)])
    full = np.array([np.interp(idx, np.arange(4), rows[:, j]) for j in range(size)]).T
    return full


def make_image(
    rng: np.random.Generator, label: int, size: int, channels: int, noise: float
) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = rng.uniform(0.16, 0.3) * size
    cy, cx = rng.uniform(r, size - r, 2)
    angle = rng.uniform(0, np.pi)
    image = 0.35 + 0.12 * _smooth_background(rng, size)
    contrast = rng.uniform(0.2, 0.5) * rng.choice([-1.0, 1.0], p=[0.2, 0.8])
    image = image + contrast * _shape_mask(SHAPES[label], yy, xx, cy, cx, r, angle)
    # A distractor blob that carries no label information.
    by, bx = rng.uniform(0, size, 2)
    br = rng.uniform(0.05, 0.12) * size
    image = image + rng.uniform(-0.25, 0.25) * ((yy - by) ** 2 + (xx - bx) ** 2 <= br**2)
    image = image + rng.normal(0.0, noise, image.shape)
    image = np.clip(image, 0.0, 1.0)
    if channels > 1:
        tint = rng.uniform(0.8, 1.0, channels)
        image = np.stack([image * t for t in tint], axis=-1)
    return (image * 255).round().astype(np.uint8)


def balanced_splits(
    num_classes: int,
    sizes: dict[str, int],
    seed: int,
    make: Callable[[np.random.Generator, int], np.ndarray],
) -> dict[str, np.ndarray]:
    """Balanced, shuffled labels per split and `make(rng, label)` for each sample: the layout
    every synthetic source (images, volumes) writes; one generator per split, so a split's
    bytes do not depend on the size of another."""
    arrays: dict[str, np.ndarray] = {}
    for offset, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, offset])
        n = int(sizes[split])
        labels = np.arange(n) % num_classes
        rng.shuffle(labels)
        arrays[f"{split}_images"] = np.stack([make(rng, int(label)) for label in labels])
        arrays[f"{split}_labels"] = labels.reshape(-1, 1).astype(np.uint8)
    return arrays


def generate(
    num_classes: int, sizes: dict[str, int], image_size: int, channels: int, noise: float, seed: int
) -> dict[str, np.ndarray]:
    """Balanced splits in the MedMNIST layout; the same arguments give the same bytes."""
    if not 2 <= num_classes <= len(SHAPES):
        raise ValueError(f"num_classes must be within 2..{len(SHAPES)}, got {num_classes}")
    return balanced_splits(
        num_classes,
        sizes,
        seed,
        lambda rng, label: make_image(rng, label, image_size, channels, noise),
    )
