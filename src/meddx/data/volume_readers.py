"""`read_volume(path, where)`: the one entry point for reading a volume file or folder.

A folder is one DICOM series (meddx.data.dicom_series), a `.nii`/`.nii.gz` file a NIfTI
volume (meddx.data.nifti); both give a meddx.data.volume.Volume in the same (D, H, W) axes.
`where` names the input in error messages instead of its path, which may carry a patient's
name (the folder dataset passes "labels.csv line 7"). The readers are imported on use, so
importing this module costs neither nibabel nor pydicom.
"""

from __future__ import annotations

from pathlib import Path

from meddx.data.volume import Volume
from meddx.errors import DataError

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def read_volume(path: Path, where: str) -> Volume:
    """The volume in `path`: a folder is one DICOM series, a .nii/.nii.gz file NIfTI."""
    if path.is_dir():
        from meddx.data.dicom_series import read_dicom_series

        return read_dicom_series(path, where)
    if path.name.lower().endswith(NIFTI_SUFFIXES):
        from meddx.data.nifti import read_nifti

        return read_nifti(path, where)
    raise DataError(
        f"{where}: not a volume; give a NIfTI file ({', '.join(NIFTI_SUFFIXES)}) or a "
        "folder holding one DICOM series"
    )
