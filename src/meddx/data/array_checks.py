"""Per-array checks every dataset's validation uses (images, volumes, ECG beats, labels).

Each failure is a DataError naming the array and the first offending indices, so the user can
find the bad sample. They sit below `meddx.data.validate` and `meddx.data.tasks`, which both
use them: a task's label rules check with them, and validation calls the task's rules.
"""

from __future__ import annotations

import numpy as np

from meddx.errors import DataError

MAX_LISTED = 10


def listed(indices: np.ndarray | list[int]) -> str:
    """The first MAX_LISTED offending indices, and how many more there are."""
    items = list(map(int, indices[:MAX_LISTED]))
    more = len(indices) - len(items)
    return f"{items}" + (f" and {more} more" if more > 0 else "")


def check_finite(name: str, values: np.ndarray) -> None:
    """No NaN or infinity in any sample (row) of a float array."""
    bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
    if len(bad):
        raise DataError(f"{name} holds NaN or infinite values at indices {listed(bad)}")


def check_label_range(name: str, labels: np.ndarray, num_classes: int) -> None:
    """Every class index of a 1-D label array lies in 0..num_classes-1."""
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise DataError(
            f"{name} holds labels outside 0..{num_classes - 1} at indices {listed(bad)} "
            f"(values {sorted(set(labels[bad[:MAX_LISTED]].tolist()))})"
        )
