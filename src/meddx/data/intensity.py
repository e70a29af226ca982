"""Moving images between the three scales the pipeline uses.

- stored: uint8 in the MedMNIST layout, (N, *spatial) or (N, *spatial, C) (meddx.data.npz);
- unit: float (N, C, *spatial) in [0, 1], where pixel distances are comparable across datasets;
- processed: what `preprocess_images` wrote, `(unit - mean) / std` with the `normalization`
  recorded in `data/processed/images.json`.

Generated images are stored as uint8 and brought to the processed scale with the REAL
dataset's normalization, so a classifier sees synthetic and real images on the same scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def channel_first(images: np.ndarray, spatial_dims: int = 2) -> np.ndarray:
    """(N, *spatial) or (N, *spatial, C) -> (N, C, *spatial) float32 in [0, 1] for integer input."""
    x = images.astype(np.float32)
    if np.issubdtype(images.dtype, np.integer):
        x /= float(np.iinfo(images.dtype).max)
    if x.ndim == spatial_dims + 1:
        return x[:, None]
    return np.ascontiguousarray(np.moveaxis(x, -1, 1))


def _stats(normalization: dict[str, Any], ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std shaped to broadcast over (N, C, *spatial) arrays of `ndim`."""
    shape = (1, -1) + (1,) * (ndim - 2)
    mean = np.asarray(normalization["mean"], dtype=np.float32).reshape(shape)
    std = np.asarray(normalization["std"], dtype=np.float32).reshape(shape)
    return mean, std


def processed_to_unit(images: np.ndarray, normalization: dict[str, Any]) -> np.ndarray:
    mean, std = _stats(normalization, images.ndim)
    return np.clip(images * std + mean, 0.0, 1.0).astype(np.float32)


def unit_to_processed(images: np.ndarray, normalization: dict[str, Any]) -> np.ndarray:
    mean, std = _stats(normalization, images.ndim)
    return ((images - mean) / std).astype(np.float32)


def stored_to_processed(
    images: np.ndarray, normalization: dict[str, Any], spatial_dims: int = 2
) -> np.ndarray:
    return unit_to_processed(channel_first(images, spatial_dims), normalization)


def unit_to_stored(images: np.ndarray) -> np.ndarray:
    """(N, C, *spatial) in [0, 1] -> uint8 (N, *spatial) for one channel, (N, *spatial, C)
    otherwise."""
    stored = np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)
    if stored.shape[1] == 1:
        return stored[:, 0]
    return np.ascontiguousarray(np.moveaxis(stored, 1, -1))
