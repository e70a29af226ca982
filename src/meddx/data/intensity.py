"""Moving images between the three scales the pipeline uses.

- stored: uint8 in the MedMNIST layout, (N, H, W) or (N, H, W, C);
- unit: float (N, C, H, W) in [0, 1], where pixel distances are comparable across datasets;
- processed: what `preprocess_images` wrote, `(unit - mean) / std` with the `normalization`
  recorded in `data/processed/images.json`.

Generated images are stored as uint8 and brought to the processed scale with the REAL
dataset's normalization, so a classifier sees synthetic and real images on the same scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def channel_first(images: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) -> (N, C, H, W) float32 in [0, 1] for integer input."""
    x = images.astype(np.float32)
    if np.issubdtype(images.dtype, np.integer):
        x /= float(np.iinfo(images.dtype).max)
    return x[:, None] if x.ndim == 3 else np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _stats(normalization: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    mean = np.asarray(normalization["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(normalization["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    return mean, std


def processed_to_unit(images: np.ndarray, normalization: dict[str, Any]) -> np.ndarray:
    mean, std = _stats(normalization)
    return np.clip(images * std + mean, 0.0, 1.0).astype(np.float32)


def unit_to_processed(images: np.ndarray, normalization: dict[str, Any]) -> np.ndarray:
    mean, std = _stats(normalization)
    return ((images - mean) / std).astype(np.float32)


def stored_to_processed(images: np.ndarray, normalization: dict[str, Any]) -> np.ndarray:
    return unit_to_processed(channel_first(images), normalization)


def unit_to_stored(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> uint8 (N, H, W) for one channel, (N, H, W, C) otherwise."""
    stored = np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)
    if stored.shape[1] == 1:
        return stored[:, 0]
    return np.ascontiguousarray(stored.transpose(0, 2, 3, 1))
