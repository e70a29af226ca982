"""DICOM in, de-identified pixels out.

Every DICOM file is de-identified the moment it is read, before anything else in meddx
sees it, so no later step (a log line, an error message, an MLflow tag) can leak a patient
detail by accident. The rules follow the spirit of the DICOM PS3.15 Basic Application
Level Confidentiality Profile:
- every private tag is dropped (vendors hide names and IDs there);
- every person name (VR PN), date, date-time and time (VR DA/DT/TM) is removed, wherever
  it sits, nested sequences included;
- the listed identifying attributes (IDs, addresses, institution, device serials, free
  text that often carries names) and overlays/curves (burned-in text) are removed;
- study/series/instance UIDs are replaced by UIDs derived from them, so images of one
  study still group together but the originals cannot be looked up;
- PatientIdentityRemoved=YES and DeidentificationMethod record what was done.
A file that declares burned-in annotations is refused: text in the pixels cannot be
removed by editing tags.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from meddx.errors import DataError

if TYPE_CHECKING:  # pydicom is imported only where DICOM is read
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

IDENTIFYING = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "OtherPatientIDs",
    "OtherPatientNames",
    "OtherPatientIDsSequence",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientAge",
    "PatientSex",
    "PatientSize",
    "PatientWeight",
    "EthnicGroup",
    "Occupation",
    "MedicalRecordLocator",
    "AdditionalPatientHistory",
    "PatientComments",
    "MilitaryRank",
    "BranchOfService",
    "RegionOfResidence",
    "CountryOfResidence",
    "PatientReligiousPreference",
    "PatientInsurancePlanCodeSequence",
    "ResponsiblePerson",
    "ResponsibleOrganization",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "InstitutionCodeSequence",
    "StationName",
    "ReferringPhysicianName",
    "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "ScheduledPerformingPhysicianName",
    "AccessionNumber",
    "StudyID",
    "StudyDescription",
    "SeriesDescription",
    "PerformedProcedureStepDescription",
    "RequestedProcedureDescription",
    "ImageComments",
    "DeviceSerialNumber",
    "PlateID",
    "DetectorID",
    "RequestAttributesSequence",
    "ReferencedPatientSequence",
    "ReferencedStudySequence",
    "ReferencedImageSequence",
    "SourceImageSequence",
    "ProtocolName",
    "TimezoneOffsetFromUTC",
    "FrameComments",
    "AdmissionID",
    "IssuerOfAdmissionID",
    "ClinicalTrialSubjectID",
    "ClinicalTrialSubjectReadingID",
    "ClinicalTrialSiteName",
    "ClinicalTrialSponsorName",
    "SourceApplicationEntityTitle",
)
REMAPPED_UIDS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
    "MediaStorageSOPInstanceUID",
)
REMOVED_VRS = ("PN", "DA", "DT", "TM")
METHOD = "meddx: identifying, private, PN/DA/DT/TM removed; UIDs remapped"  # LO: <= 64


def deidentify(ds: Dataset) -> Dataset:
    """De-identify `ds` in place and return it."""
    from pydicom.uid import generate_uid

    ds.remove_private_tags()
    identifying = set(IDENTIFYING)

    def scrub(dataset: Dataset, element: DataElement) -> None:
        group = element.tag.group
        if (
            element.VR in REMOVED_VRS
            or element.keyword in identifying
            or 0x5000 <= group <= 0x50FF
            or 0x6000 <= group <= 0x60FF
        ):
            del dataset[element.tag]
        elif element.keyword in REMAPPED_UIDS and element.value:
            element.value = generate_uid(entropy_srcs=["meddx", str(element.value)])

    ds.walk(scrub)
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.walk(scrub)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    return ds


@contextmanager
def decoding(where: str, what: str) -> Iterator[None]:
    """Any failure of pydicom on a malformed file as a DataError naming its labels.csv line.

    pydicom converts element values lazily, when they are first read, and its pixel handlers
    check little: a broken file raises whatever type the step it breaks hits (fuzzing found
    ValueError, KeyError, TypeError, struct.error, NotImplementedError and more).
    """
    try:
        yield
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{where}: {what} ({type(exc).__name__}: {exc})") from None


def read_dataset(path: Path, where: str, what: str = "not a readable DICOM file") -> Dataset:
    """The de-identified dataset of one DICOM file; one with burned-in text is refused.

    `where` names the file for error messages without naming its path (which may itself
    hold a patient name): the caller passes e.g. "labels.csv line 7"; `what` says what
    was wrong when pydicom cannot read it.
    """
    import pydicom

    with decoding(where, what):
        ds = deidentify(pydicom.dcmread(path))
        burned = str(ds.get("BurnedInAnnotation", "")).upper() == "YES"
    if burned:
        raise DataError(
            f"{where}: the DICOM file declares burned-in annotations (text in the "
            "pixels that de-identification cannot remove); leave it out"
        )
    return ds


def read_pixels(path: Path, where: str) -> np.ndarray:
    """De-identified float pixels `(H, W)` or `(H, W, 3)` in modality units (e.g. HU for CT).

    `where` names the file for error messages without naming its path (see read_dataset).
    """
    from pydicom.pixels import apply_modality_lut

    ds = read_dataset(path, where)
    with decoding(where, "cannot decode the DICOM pixel data"):
        pixels = ds.pixel_array
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1))
        if frames > 1:  # a 2D pipeline takes the middle frame of a multi-frame image
            pixels = pixels[frames // 2]
        if samples == 1:
            pixels = apply_modality_lut(pixels, ds).astype(np.float32)
            if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":  # white = low
                pixels = pixels.max() - pixels
        pixels = np.asarray(pixels, dtype=np.float32)
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)) or not pixels.size:
        raise DataError(
            f"{where}: the DICOM pixel data has shape {pixels.shape}, not one greyscale or RGB "
            "image (rows x columns [x 3])"
        )
    return pixels
