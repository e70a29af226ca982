"""Real image files for the predict and serving tests: PNG (Pillow) and DICOM (pydicom)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from omegaconf import DictConfig
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from meddx.data.npz import load_npz
from meddx.paths import Layout

PATIENT = "Doe^Jane"


def raw_test_images(cfg: DictConfig) -> np.ndarray:
    """The test split's stored uint8 images, (N, H, W), as acquire_images wrote them."""
    return load_npz(Layout.of(cfg).raw_images, keys=("test_images",))["test_images"]


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def write_dicom(path: Path, image: np.ndarray) -> Path:
    """An 8-bit greyscale secondary-capture DICOM file naming a (fictitious) patient."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = PATIENT
    ds.PatientID = "JD-0042"
    ds.Modality = "OT"
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(image, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
