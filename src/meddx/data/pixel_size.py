"""The pixel size (mm per row and per column) a 2-D image file states, for measurements in mm.

A DICOM image states it as PixelSpacing (row spacing, column spacing; read after
de-identification, meddx.data.dicom), a NIfTI image in its header (the voxel sizes of the
affine, in the axes meddx.data.folder reads it in: rows along the canonical y axis, columns
along x). PNG/JPEG files state none that means millimetres: None, and the caller says what
it assumed.
"""

from __future__ import annotations

from pathlib import Path

from meddx.data import folder
from meddx.errors import DataError


def pixel_size_mm(path: Path, where: str) -> tuple[float, float] | None:
    """(row, column) mm per pixel of the 2-D image file `path`, or None when it states none."""
    kind = folder.kind_of(path)
    if kind == "dicom":
        from meddx.data.dicom import decoding, read_dataset

        ds = read_dataset(path, where)
        if "PixelSpacing" not in ds:
            return None
        with decoding(where, "holds a malformed PixelSpacing"):
            row, column = (float(v) for v in ds.PixelSpacing)
        if min(row, column) <= 0:
            raise DataError(f"{where}: PixelSpacing {row}, {column} is not a size in mm")
        return row, column
    if kind == "nifti":
        import nibabel as nib
        from nibabel.affines import voxel_sizes

        sizes = voxel_sizes(nib.as_closest_canonical(nib.load(path)).affine)
        return float(sizes[1]), float(sizes[0])  # folder reads np.rot90 of (x, y): rows are y
    return None
