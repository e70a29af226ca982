"""One medical volume as meddx reads it, whatever file it came from: voxels, spacing, modality.

Every reader (meddx.data.nifti for NIfTI files, meddx.data.dicom_series for DICOM series
folders) ends in `Volume` with the same axis order, so a patient's NIfTI export and their
DICOM series give the same array: axes (D, H, W) run inferior -> superior, anterior ->
posterior and patient right -> left. That is the layout of an axial DICOM series in the
standard orientation, as a radiologist views it (axial slices, anterior up, patient's right
on the image's left). A volume acquired otherwise (sagittal, coronal, oblique) is turned to
the closest of these axes by whole-axis flips and transposes (nibabel's orientation tools),
never interpolated: the readers keep the scanner's voxels, resampling is the standardisation's
job (meddx.data.standardise).

Callers (the folder dataset, `predict`) read through meddx.data.volume_readers.read_volume.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from meddx.errors import DataError

# nibabel's axis codes of the (W, H, D) = (x, y, z) voxel axes, in RAS+ world coordinates.
WHD_CODES = ("L", "P", "S")


@dataclass(frozen=True)
class Volume:
    """`voxels` (D, H, W) float32 in modality units (CT: HU); `spacing` in mm along D, H, W;
    `modality` the DICOM Modality ("CT", "MR", ...), None when the file does not say (NIfTI);
    `affine` the source's voxel-to-RAS+ affine in the source's own voxel order (a NIfTI file's,
    or a series' geometry), so a result on these voxels can be written back where they lie."""

    voxels: np.ndarray
    spacing: tuple[float, float, float]
    modality: str | None
    affine: np.ndarray | None = None

    def in_source_order(self, array: np.ndarray) -> np.ndarray:
        """An array on `voxels`' (D, H, W) grid in the source's voxel order, the order
        `affine` places: the inverse of the readers' flips and transposes."""
        from nibabel.orientations import apply_orientation

        if self.affine is None:
            raise ValueError("the volume does not say where its voxels lie (no affine)")
        whd = np.asarray(array).transpose(2, 1, 0)
        return apply_orientation(whd, ornt_transform_to_source(self.affine))


def ornt_transform_to_source(affine: np.ndarray) -> np.ndarray:
    """nibabel's orientation transform from meddx's (W, H, D) axes to the source's (i, j, k)."""
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    return ornt_transform(axcodes2ornt(WHD_CODES), io_orientation(affine))


def oriented(data: np.ndarray, affine: np.ndarray, modality: str | None, where: str) -> Volume:
    """`data` indexed (i, j, k) with a voxel-to-RAS+ `affine` as a checked `Volume`."""
    from nibabel.affines import voxel_sizes
    from nibabel.orientations import (
        apply_orientation,
        axcodes2ornt,
        inv_ornt_aff,
        io_orientation,
        ornt_transform,
    )

    if data.ndim != 3 or not data.size:
        raise DataError(f"{where}: data of shape {data.shape} is not one 3-D volume")
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise DataError(  # a zero voxel size, or two axes along one direction
            f"{where}: the header's geometry places the voxels in no volume; the file's "
            "affine (or DICOM spacing and orientation) is broken"
        )
    if not np.isfinite(data).all():
        raise DataError(
            f"{where}: the volume holds NaN or infinite voxels; fix or leave out the file"
        )
    transform = ornt_transform(io_orientation(affine), axcodes2ornt(WHD_CODES))
    whd = apply_orientation(data, transform)
    spacing = voxel_sizes(affine @ inv_ornt_aff(transform, data.shape))
    return Volume(
        np.ascontiguousarray(whd.transpose(2, 1, 0), dtype=np.float32),
        (float(spacing[2]), float(spacing[1]), float(spacing[0])),
        modality,
        np.asarray(affine, dtype=np.float64),
    )


Source = tuple[str | None, tuple[float, float, float]]  # a volume's modality and spacing


def describe(sources: list[Source]) -> dict[str, str]:
    """What the volumes were as read, before standardisation: modalities and spacing range.

    Recorded (as MLflow tags) so a run says what it was made from; none of it identifies a
    patient.
    """
    modalities = Counter(modality or "unstated" for modality, _ in sources)
    spacing = np.array([spacing for _, spacing in sources])

    def mm(values: np.ndarray) -> str:
        return " x ".join(f"{value:.4g}" for value in values)

    return {
        "data.volumes.modalities": ", ".join(f"{k}: {n}" for k, n in sorted(modalities.items())),
        "data.volumes.spacing_min_mm": mm(spacing.min(axis=0)),
        "data.volumes.spacing_max_mm": mm(spacing.max(axis=0)),
    }
