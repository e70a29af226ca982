"""MSD Task04 Hippocampus (Simpson et al. 2019): MRI volumes, labels 1 anterior, 2 posterior.

The challenge's test labels are not public, so the 260 labelled cases are split here by a
seeded, recorded rule. Volumes (about 35x50x35 at 1 mm) are zero-padded, centred, to one
shape (`data.image.size`, large enough to hold every case: cropping is allowed only where
it removes no labelled voxel) and brought to uint8 by their own 0.5-99.5 percentiles (MRI
intensities have no absolute scale). The voxel spacing is kept per case (`{split}_spacing`,
mm along D, H, W) so that distances and volumes are measured in mm. Each file is read only
after its MD5 matches the manifest; an image and label whose shapes or affines disagree, or
an image with non-finite voxels, is an error naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from meddx.data.group_splits import split_cases
from meddx.data.manifest import Manifest, dataset_folder, read_manifest
from meddx.errors import DataError

SUBDIR = "msd_hippocampus"
IMAGES, LABELS = "imagesTr", "labelsTr"
CLASSES = 3  # 0 background, 1 anterior, 2 posterior
PERCENTILES = (0.5, 99.5)


def case_names(manifest: Manifest) -> list[str]:
    """Every image the manifest lists; each must have its label (an image alone is refused)."""
    images = sorted(n.split("/", 1)[1] for n in manifest.sums if n.startswith(f"{IMAGES}/"))
    unlabelled = [n for n in images if f"{LABELS}/{n}" not in manifest.sums]
    if unlabelled:
        raise DataError(
            f"{manifest.folder / IMAGES / unlabelled[0]} has no label in {LABELS}/ "
            f"({len(unlabelled)} image(s) without one)"
        )
    return images


def _nifti(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    import nibabel as nib

    try:
        volume = nib.load(path)
        return np.asarray(volume.dataobj), volume.affine, tuple(volume.header.get_zooms()[:3])
    except Exception as exc:  # nibabel raises many types for a damaged file
        raise DataError(f"{path} is not a readable NIfTI volume: {exc}") from None


def fit_shape(volume: np.ndarray, shape: tuple[int, ...], path: Path, keep: bool) -> np.ndarray:
    """Centre `volume` in `shape`: zero-padded, cropped only where `keep` allows losing voxels.

    `keep=False` is for labels: a crop that would cut a labelled voxel is an error.
    """
    out = np.zeros(shape, dtype=volume.dtype)
    src, dst = [], []
    for have, want in zip(volume.shape, shape, strict=True):
        lo = abs(have - want) // 2
        src.append(slice(lo, lo + want) if have > want else slice(0, have))
        dst.append(slice(0, want) if have > want else slice(lo, lo + have))
    out[tuple(dst)] = volume[tuple(src)]
    if not keep and np.count_nonzero(out) != np.count_nonzero(volume):
        raise DataError(
            f"{path}: its shape {volume.shape} does not fit data.image.size={list(shape)} "
            "without cutting labelled voxels; configure a larger size"
        )
    return out


def to_uint8(volume: np.ndarray, path: Path) -> np.ndarray:
    """Per-volume percentile window to 0..255; non-finite voxels are refused, not repaired."""
    data = volume.astype(np.float64)
    if not np.isfinite(data).all():
        raise DataError(f"{path} holds {int((~np.isfinite(data)).sum())} NaN/inf voxel(s)")
    low, high = np.percentile(data, PERCENTILES)
    scaled = (data - low) / max(high - low, 1e-6)
    return np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)


def read_case(manifest: Manifest, name: str, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """(image uint8, label uint8, spacing mm) of one case, both brought to `shape`."""
    image_path = manifest.path(f"{IMAGES}/{name}")
    label_path = manifest.path(f"{LABELS}/{name}")
    image, image_affine, spacing = _nifti(image_path)
    label, label_affine, _ = _nifti(label_path)
    if image.shape != label.shape:
        raise DataError(f"{label_path} has shape {label.shape}, its image {image.shape}")
    if not np.allclose(image_affine, label_affine, atol=1e-4):
        raise DataError(
            f"{label_path}: its affine differs from its image's ({image_path}), so the mask "
            "does not lie on the image; resample or replace one of them"
        )
    values = np.unique(label)
    if not np.isin(values, np.arange(CLASSES)).all():
        raise DataError(f"{label_path} holds label values {values.tolist()}; expected 0, 1, 2")
    mask = fit_shape(label.astype(np.uint8), shape, label_path, keep=False)
    image = fit_shape(to_uint8(image, image_path), shape, image_path, keep=True)
    return image, mask, np.array(spacing, dtype=np.float64)


def load_hippocampus(spec: DictConfig, mirror: Path | None, limit: int | None = None) -> dict:
    """The dataset layout of the labelled cases (optionally the first `limit`), split by case.

    Each split carries `_spacing` (mm along D, H, W) and `_ids` (file names) beside images and
    labels; `split_rule` records how the split was drawn.
    """
    manifest = read_manifest(
        dataset_folder(mirror, SUBDIR, "MSD Hippocampus"), spec.manifest_sha256
    )
    names = case_names(manifest)[:limit]
    shape = tuple(int(n) for n in spec.size)
    return split_cases(
        names, names, spec.split, lambda i: read_case(manifest, names[i], shape), "case"
    )
