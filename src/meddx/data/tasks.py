"""What a task decides in the data layout: which labels are valid, how they are stored for
training, how many samples each class has, and which samples a class's grid may show.

Keyed by the task the data facts name (`facts["task"]`), as the training and evaluation
halves are (`meddx.training.tasks`, `meddx.evaluation.tasks`): the four label kinds of
classification all resolve to `Classification`, `segmentation` (a mask per image for labels)
to `Segmentation`; validation (`meddx.data.validate`), the split
counts (`meddx.data.stats`), the sample grids (`meddx.data.samples`) and `preprocess_images`
serve it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from meddx.data.array_checks import MAX_LISTED, check_label_range, listed
from meddx.errors import ConfigError, DataError
from meddx.metrics import TASKS


class LabelRules(Protocol):
    """The label rules of one task; `kind` is its key in the data facts."""

    kind: str

    def check(
        self, name: str, labels: np.ndarray, num_classes: int, spatial_shape: tuple[int, ...]
    ) -> None:
        """A DataError naming `name` and the offending indices if `labels` are not valid for
        images of `spatial_shape` (H, W) or (D, H, W)."""
        ...

    def encode(self, labels: np.ndarray) -> np.ndarray:
        """Stored labels (as a source gives them) -> the array training reads."""
        ...

    def class_counts(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        """Samples per class, one count per class name."""
        ...

    def members(self, labels: np.ndarray, k: int) -> np.ndarray:
        """Indices of the samples a grid of class `k` may show."""
        ...


@dataclass(frozen=True)
class Classification:
    """A class index per sample (binary, multi-class, ordinal: `(N,)` or `(N, 1)`), or a 0/1
    per class (multi-label: `(N, num_classes)`); integers as MedMNIST stores them."""

    kind: str

    def check(
        self, name: str, labels: np.ndarray, num_classes: int, spatial_shape: tuple[int, ...]
    ) -> None:
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{name} has dtype {labels.dtype}; expected integers")
        if self.kind == "multi-label":
            if labels.ndim != 2 or labels.shape[1] != num_classes:
                raise DataError(f"{name} has shape {labels.shape}; expected (N, {num_classes})")
            bad = np.flatnonzero(((labels != 0) & (labels != 1)).any(axis=1))
            if len(bad):
                raise DataError(f"{name} holds values other than 0/1 at indices {listed(bad)}")
            return
        flat = labels.reshape(len(labels), -1)
        if flat.shape[1] != 1:
            raise DataError(f"{name} has shape {labels.shape}; expected (N,) or (N, 1)")
        check_label_range(name, flat[:, 0], num_classes)

    def encode(self, labels: np.ndarray) -> np.ndarray:
        """Multi-label: float 0/1 targets of BCE; else int64 class indices of cross-entropy."""
        if self.kind == "multi-label":
            return labels.astype(np.float32)
        return labels.reshape(-1).astype(np.int64)

    def class_counts(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        """Samples per class (multi-label: positives per class)."""
        if self.kind == "multi-label":
            return labels.reshape(len(labels), -1).sum(axis=0)
        return np.bincount(labels.reshape(-1).astype(np.int64), minlength=num_classes)

    def members(self, labels: np.ndarray, k: int) -> np.ndarray:
        """The samples of class `k` (multi-label: those that carry label `k`)."""
        if self.kind == "multi-label":
            return np.flatnonzero(labels.reshape(len(labels), -1)[:, k] == 1)
        return np.flatnonzero(labels.reshape(-1) == k)


MAX_MASK_CLASSES = 256  # masks are stored as uint8


@dataclass(frozen=True)
class Segmentation:
    """A mask per image: `(N, *spatial)` integers, the class of each pixel (voxel), 0 the
    background (the first class name), of the image's own spatial shape.

    Counted in cases, not pixels: `class_counts` gives, per structure, the cases whose mask
    holds it, and for the background the cases whose mask holds nothing else (empty masks),
    so the split counts in the data facts report the empty masks (`class_<background>`). A
    pixel count would be dominated by the background and say nothing a split check can use.
    """

    kind: str

    def check(
        self, name: str, labels: np.ndarray, num_classes: int, spatial_shape: tuple[int, ...]
    ) -> None:
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{name} has dtype {labels.dtype}; expected integer class masks")
        if num_classes > MAX_MASK_CLASSES:
            raise DataError(f"{name}: {num_classes} classes; masks hold at most {MAX_MASK_CLASSES}")
        if labels.shape[1:] != tuple(spatial_shape):
            raise DataError(
                f"{name} has masks of shape {labels.shape[1:]}, but the images are "
                f"{tuple(spatial_shape)}: every mask must have its image's spatial shape"
            )
        flat = labels.reshape(len(labels), -1)
        bad = np.flatnonzero(((flat < 0) | (flat >= num_classes)).any(axis=1))
        if len(bad):
            values = np.unique(flat[bad[:MAX_LISTED]])
            outside = values[(values < 0) | (values >= num_classes)]
            raise DataError(
                f"{name} holds mask values outside the {num_classes} classes "
                f"0..{num_classes - 1} (background first) at indices {listed(bad)} "
                f"(values {outside.tolist()})"
            )

    def encode(self, labels: np.ndarray) -> np.ndarray:
        """uint8 class masks: an eighth of int64's memory, widened per batch by the loss."""
        return labels.astype(np.uint8)

    def class_counts(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        """Cases per structure; for the background (class 0), the cases with an empty mask."""
        flat = labels.reshape(len(labels), -1)
        present = np.stack([(flat == k).any(axis=1) for k in range(num_classes)], axis=1)
        present[:, 0] = ~present[:, 1:].any(axis=1)
        return present.sum(axis=0)

    def members(self, labels: np.ndarray, k: int) -> np.ndarray:
        """The cases holding structure `k` (k = 0: the cases with an empty mask)."""
        flat = labels.reshape(len(labels), -1)
        if k == 0:
            return np.flatnonzero(~(flat > 0).any(axis=1))
        return np.flatnonzero((flat == k).any(axis=1))


SEGMENTATION = "segmentation"

# What `facts["task"]` names -> its label rules; a new task adds its entry (a test may add its own).
REGISTRY: dict[str, Callable[[str], LabelRules]] = {
    **dict.fromkeys(TASKS, Classification),
    SEGMENTATION: Segmentation,
}


def of(kind: str) -> LabelRules:
    """The label rules of the task the data facts name."""
    if kind not in REGISTRY:
        raise ConfigError(f"unknown task {kind!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[kind](kind)
