"""The MedMNIST `.npz` layout that every image source is turned into.

Keys `{train,val,test}_{images,labels}`; images `(N, *spatial)` for one channel or
`(N, *spatial, C)`, uint8, where `spatial` is (H, W) for images and (D, H, W) for volumes
(MedMNIST 3D's `(N, 28, 28, 28)`); labels `(N, 1)` (single-label) or `(N, L)` (multi-label),
or for segmentation masks `(N, *spatial)` of class indices; optionally `{split}_spacing`
`(N, spatial_dims)`, each case's mm per axis (segmentation distances are measured with it).
Whether a dataset holds images or volumes is a fact of its config (`data.image.spatial_dims`,
2 unless it says 3): a 4-D array alone cannot tell an RGB image from a grey volume. After
`preprocess_images` the arrays are channel-first, `(N, C, *spatial)`, and the shape alone says
it. Keeping every source in this one layout is what makes everything downstream
dataset-agnostic.
"""

from __future__ import annotations

import tokenize
import zipfile
from pathlib import Path

import numpy as np

from meddx.errors import DataError
from meddx.io import atomic_open

SPLITS = ("train", "val", "test")
SPATIAL_DIMS = (2, 3)
AXES = {2: "H, W", 3: "D, H, W"}
KEYS = tuple(f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels"))


def save_npz(path: str | Path, arrays: dict[str, np.ndarray], compress: bool = True) -> None:
    """Write atomically; a file object stops numpy from appending its own `.npz` suffix."""
    with atomic_open(path, "wb") as handle:
        (np.savez_compressed if compress else np.savez)(handle, **arrays)


def load_npz(path: str | Path, keys: tuple[str, ...] = KEYS) -> dict[str, np.ndarray]:
    """Read every array into memory, turning a truncated or foreign file into a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise DataError(
                    f"{path} lacks the arrays {missing}; expected at least {list(keys)}"
                )
            arrays = {key: archive[key] for key in archive.files}
    # numpy parses a .npy header with Python's tokenizer: a corrupt one raises its errors
    except (
        zipfile.BadZipFile,
        EOFError,
        OSError,
        ValueError,
        SyntaxError,
        tokenize.TokenError,
        MemoryError,
    ) as exc:
        raise DataError(
            f"{path} is not a readable .npz file (truncated or corrupt?): {exc}"
        ) from None
    # numpy hands back the raw bytes of a member that is not a .npy array
    foreign = sorted(key for key, value in arrays.items() if not isinstance(value, np.ndarray))
    if foreign:
        raise DataError(f"{path} holds members that are not .npy arrays: {foreign}")
    return arrays
