"""Checks every image dataset passes before anything trains on it, synthetic ones included.

Each failure is a DataError that names the split, the array and the offending indices, so
the user can find the bad sample instead of debugging a NaN loss three stages later. Which
labels are valid is the task's (`meddx.data.tasks`); the per-array checks are
`meddx.data.array_checks`, which the ECG checks use too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from pathlib import Path

import numpy as np

from meddx.data import tasks
from meddx.data.array_checks import MAX_LISTED, check_finite, listed
from meddx.data.npz import AXES, SPATIAL_DIMS, SPLITS, load_npz
from meddx.errors import DataError

Duplicate = tuple[str, int, str, int]  # (split, index, other split, other index)


def stored_channels(name: str, images: np.ndarray, channels: int, spatial_dims: int) -> int:
    """The channel count of a stored `(N, *spatial)` or `(N, *spatial, C)` array, or a DataError
    naming the shapes the dataset config allows (a volume given as images, or the reverse)."""
    if spatial_dims not in SPATIAL_DIMS:
        raise DataError(
            f"data.image.spatial_dims={spatial_dims!r}: 2 (images) or 3 (volumes) spatial axes"
        )
    axes = AXES[spatial_dims]
    allowed = f"(N, {axes})" if channels == 1 else f"(N, {axes}, {channels})"
    if channels == 1:
        allowed += f" or (N, {axes}, 1)"
    found = None
    if images.ndim == spatial_dims + 1:
        found = 1
    elif images.ndim == spatial_dims + 2:
        found = int(images.shape[-1])
    if found != channels:
        kind = "images" if spatial_dims == 2 else "volumes"
        raise DataError(
            f"{name} has shape {images.shape}, but the dataset config says {spatial_dims}-D "
            f"{kind} with {channels} channel(s) (data.image.spatial_dims, data.image.channels): "
            f"expected {allowed}"
        )
    return found


def check_spacing(name: str, spacing: np.ndarray, n: int, spatial_dims: int) -> None:
    """An optional per-case pixel (voxel) spacing: (N, spatial_dims) millimetres, finite, > 0."""
    if spacing.shape != (n, spatial_dims) or not np.issubdtype(spacing.dtype, np.number):
        raise DataError(
            f"{name} has shape {spacing.shape} ({spacing.dtype}); expected ({n}, {spatial_dims}) "
            "numbers: the mm per spatial axis of each case"
        )
    check_finite(name, spacing.astype(np.float64))
    bad = np.flatnonzero((spacing <= 0).any(axis=1))
    if len(bad):
        raise DataError(f"{name} holds spacings <= 0 at indices {listed(bad)}")


def check_image_splits(
    arrays: dict[str, np.ndarray],
    num_classes: int,
    task: str,
    channels: int,
    tolerated: Collection[Duplicate] = (),
    spatial_dims: int = 2,
) -> list[str]:
    """Raise a DataError on the first problem; return the `tolerated` leaks that were found.

    `spatial_dims` is 2 for images, 3 for volumes: every split must hold that layout.
    """
    shapes = set()
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        name = f"{split}_images"
        if images.ndim == 0 or labels.ndim == 0:
            raise DataError(f"split '{split}' holds a scalar where arrays of samples belong")
        if len(images) == 0:
            raise DataError(f"split '{split}' is empty")
        if len(images) != len(labels):
            raise DataError(f"split '{split}' has {len(images)} images but {len(labels)} labels")
        stored_channels(name, images, channels, spatial_dims)
        if 0 in images.shape[1:]:
            raise DataError(f"{name} has shape {images.shape}: an image needs pixels")
        shapes.add(images.shape[1:])
        if not (
            np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)
        ):
            raise DataError(f"{name} has dtype {images.dtype}; expected integers or floats")
        if np.issubdtype(images.dtype, np.floating):
            check_finite(name, images)
        if f"{split}_spacing" in arrays:
            check_spacing(f"{split}_spacing", arrays[f"{split}_spacing"], len(images), spatial_dims)
        spatial_shape = images.shape[1 : 1 + spatial_dims]
        tasks.of(task).check(f"{split}_labels", labels, num_classes, spatial_shape)
    if len(shapes) != 1:
        raise DataError(f"splits disagree on the image shape: {sorted(shapes)}")
    return check_no_leakage(arrays, tolerated)


def read_image_file(
    path: Path,
    num_classes: int,
    task: str,
    channels: int,
    tolerated: Collection[Duplicate] = (),
    spatial_dims: int = 2,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays of an image file in the MedMNIST layout, checked; the tolerated leaks found.

    Every error names the file: the file may come from anywhere (a mirror, a hand-made
    `data/raw/images.npz`), and a split name alone does not say which file to replace.
    """
    arrays = load_npz(path)
    try:
        found = check_image_splits(
            arrays, num_classes, task, channels, tolerated, spatial_dims=spatial_dims
        )
        return arrays, found
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def _digests(images: np.ndarray) -> list[bytes]:
    return [hashlib.blake2b(image.tobytes(), digest_size=16).digest() for image in images]


def check_no_leakage(
    arrays: dict[str, np.ndarray], tolerated: Collection[Duplicate] = ()
) -> list[str]:
    """The same image in two splits inflates every test figure: refuse it.

    `tolerated` lists duplicates known to be part of a published split (see
    `meddx.data.medmnist`): changing that split would break comparability with every
    published figure, so those are returned for reporting instead of raised.
    """
    seen: dict[bytes, tuple[str, int]] = {}
    clashes: list[str] = []
    known: list[str] = []
    allowed = set(tolerated)
    for split in SPLITS:
        for index, digest in enumerate(_digests(arrays[f"{split}_images"])):
            first = seen.get(digest)
            if first is None:
                seen[digest] = (split, index)
            elif first[0] != split:
                text = f"{first[0]}[{first[1]}] = {split}[{index}]"
                (known if (*first, split, index) in allowed else clashes).append(text)
    if clashes:
        raise DataError(
            f"{len(clashes)} image(s) appear in more than one split (leakage): "
            + ", ".join(clashes[:MAX_LISTED])
            + (" ..." if len(clashes) > MAX_LISTED else "")
        )
    return known
