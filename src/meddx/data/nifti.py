"""A NIfTI file as a `Volume` (meddx.data.volume): voxels, spacing from the header, no modality.

nibabel reads the file and applies the header's intensity scaling (scl_slope/scl_inter);
the affine nibabel chooses (sform, else qform) places the voxels, so the axes come out in
meddx's (D, H, W) order whatever order the file stores, and the spacing is the length of
the affine's columns (the voxel sizes in mm), not `pixdim` alone, which ignores a shear or
a qform/sform mismatch. NIfTI does not record the modality: the dataset config states it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from meddx.data.volume import Volume, oriented
from meddx.errors import DataError


def read_nifti(path: Path, where: str) -> Volume:
    """The volume of the NIfTI file `path`; `where` names it in errors (not its path)."""
    import nibabel as nib

    try:
        image = nib.load(path)
        data = image.get_fdata(dtype=np.float32)
        affine = np.asarray(image.affine, dtype=np.float64)
    except Exception as exc:  # nibabel raises many types for broken files
        raise DataError(f"{where}: not a readable NIfTI file ({type(exc).__name__})") from None
    if data.ndim == 4 and data.shape[3] == 1:  # a time series of one frame
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(
            f"{where}: NIfTI data of shape {data.shape} is not one 3-D volume (a 2-D image "
            "needs data.image.spatial_dims: 2; a 4-D series holds several volumes)"
        )
    return oriented(data, affine, None, where)
