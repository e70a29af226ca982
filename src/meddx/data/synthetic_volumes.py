"""A seeded, offline volume dataset (3-D, one channel) whose classes are learnable but not trivial.

The 3-D sibling of `meddx.data.synthetic_images`, in the same `.npz` layout (MedMNIST 3D's
`(N, D, H, W)` uint8): each class is a solid (ball, cube, hollow shell, cross of three bars)
at a random position, size, orientation and contrast over a smooth random background, with
noise and a distractor ball that carries no label. A ball and a shell differ only inside, a
ball and a cube only at the corners, so a network has to look at the volume in 3-D, and a
small one needs a few epochs: the offline pipeline trains a volume model for real in seconds.
"""

from __future__ import annotations

import numpy as np

from meddx.data.synthetic_images import balanced_splits

SHAPES = ("ball", "cube", "shell", "cross")


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3-D rotation (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _solid(kind: str, offsets: np.ndarray, r: float) -> np.ndarray:
    """Mask of `kind` of radius `r` over voxel offsets (3, D, H, W) in the solid's own frame."""
    dist2 = (offsets**2).sum(axis=0)
    if kind == "ball":
        return dist2 <= r**2
    if kind == "shell":
        return (dist2 <= r**2) & (dist2 >= (0.6 * r) ** 2)
    if kind == "cube":
        return (np.abs(offsets) <= r * 0.8).all(axis=0)
    if kind == "cross":
        inside = np.abs(offsets) <= r
        thin = np.abs(offsets) <= r * 0.3
        return (
            (inside[0] & thin[1] & thin[2])
            | (thin[0] & inside[1] & thin[2])
            | (thin[0] & thin[1] & inside[2])
        )
    raise ValueError(f"unknown solid {kind!r}; known: {SHAPES}")


def _background(rng: np.random.Generator, grid: np.ndarray, size: int) -> np.ndarray:
    """A few low-frequency cosines: smooth, random, different in every volume."""
    field = np.zeros(grid.shape[1:], dtype=np.float64)
    for _ in range(3):
        frequency = rng.uniform(-1.5, 1.5, 3)
        phase = rng.uniform(0, 2 * np.pi)
        field += np.cos(2 * np.pi * np.tensordot(frequency, grid, axes=1) / size + phase)
    return field / 3


def make_volume(rng: np.random.Generator, label: int, size: int, noise: float) -> np.ndarray:
    grid = np.indices((size, size, size)).astype(np.float64)
    r = rng.uniform(0.2, 0.32) * size
    centre = rng.uniform(r, size - r, 3)
    offsets = np.tensordot(_rotation(rng), grid - centre[:, None, None, None], axes=1)
    volume = 0.4 + 0.1 * _background(rng, grid, size)
    contrast = rng.uniform(0.2, 0.45) * rng.choice([-1.0, 1.0], p=[0.2, 0.8])
    volume = volume + contrast * _solid(SHAPES[label], offsets, r)
    blob = rng.uniform(0, size, 3)
    blob_r = rng.uniform(0.08, 0.15) * size
    inside = ((grid - blob[:, None, None, None]) ** 2).sum(axis=0) <= blob_r**2
    volume = volume + rng.uniform(-0.25, 0.25) * inside
    volume = np.clip(volume + rng.normal(0.0, noise, volume.shape), 0.0, 1.0)
    return (volume * 255).round().astype(np.uint8)


def generate(
    num_classes: int, sizes: dict[str, int], volume_size: int, noise: float, seed: int
) -> dict[str, np.ndarray]:
    """Balanced splits in the `.npz` layout; the same arguments give the same bytes."""
    if not 2 <= num_classes <= len(SHAPES):
        raise ValueError(f"num_classes must be within 2..{len(SHAPES)}, got {num_classes}")
    return balanced_splits(
        num_classes, sizes, seed, lambda rng, label: make_volume(rng, label, volume_size, noise)
    )
