"""Dataset statistics shared by the image and ECG stages: class counts, pixel statistics."""

from __future__ import annotations

import re

import numpy as np

from meddx.data import tasks
from meddx.data.npz import SPLITS


def class_key(name: str) -> str:
    """`class_<name>` with MLflow-safe characters (MedMNIST names hold commas, parentheses)."""
    return "class_" + re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")


def class_counts(labels: np.ndarray, task: str, class_names: list[str]) -> dict[str, int]:
    """Samples per class, as the task counts them (`meddx.data.tasks`), keyed by `class_key`."""
    counts = tasks.of(task).class_counts(labels, len(class_names))
    return {class_key(name): int(count) for name, count in zip(class_names, counts, strict=True)}


def split_counts(
    arrays: dict[str, np.ndarray], task: str, class_names: list[str]
) -> dict[str, dict[str, int]]:
    """Per split: `n` and the `class_counts` of `{split}_labels`, as every data stage reports."""
    return {
        split: {
            "n": len(arrays[f"{split}_labels"]),
            **class_counts(arrays[f"{split}_labels"], task, class_names),
        }
        for split in SPLITS
    }


def pixel_stats(images: np.ndarray) -> dict[str, list[float]]:
    """Per-channel mean/std/min/max of channel-first `(N, C, *spatial)` images or volumes."""
    axes = (0, *range(2, images.ndim))
    return {
        "mean": images.mean(axis=axes, dtype=np.float64).tolist(),
        "std": images.std(axis=axes, dtype=np.float64).tolist(),
        "min": images.min(axis=axes).astype(float).tolist(),
        "max": images.max(axis=axes).astype(float).tolist(),
    }
