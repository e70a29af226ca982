"""The user's own images: DICOM de-identification and the folder source (PNG, DICOM, NIfTI)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image
from pydicom.data import get_testdata_file

from meddx.data.dicom import deidentify, read_pixels
from meddx.data.npz import load_npz
from meddx.errors import DataError
from meddx.paths import Layout
from meddx.stages import acquire_images

# What pydicom's CT_small.dcm / MR_small.dcm say about their (fictitious) patients.
# Dates also sit inside the original UIDs (...20040826185059...), so UIDs must change too.
IDENTIFYING_VALUES = (
    "CompressedSamples",
    "1CT1",
    "4MR1",
    "JFK IMAGING CENTER",
    "CT01_OC0",
    "-0000200",
    "CLUNIE1",
    "20040119",
    "20040826",
)


def all_elements(ds: pydicom.Dataset) -> list[pydicom.DataElement]:
    found: list[pydicom.DataElement] = []
    ds.walk(lambda _, element: found.append(element))
    return found


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_dicom_identifying_tags_are_gone_after_deidentification(name: str) -> None:
    original = pydicom.dcmread(get_testdata_file(name))
    assert str(original.PatientName).startswith("CompressedSamples")
    ds = deidentify(pydicom.dcmread(get_testdata_file(name)))
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "InstitutionName",
        "ReferringPhysicianName",
        "StudyDate",
        "AccessionNumber",
        "StudyID",
        "StationName",
        "OperatorsName",
        "DeviceSerialNumber",
    ):
        assert keyword not in ds, keyword
    elements = all_elements(ds)
    assert not [e for e in elements if e.tag.is_private]
    assert not [e for e in elements if e.VR in ("PN", "DA", "DT", "TM")]
    assert ds.SOPInstanceUID != original.SOPInstanceUID
    assert ds.StudyInstanceUID != original.StudyInstanceUID
    assert ds.PatientIdentityRemoved == "YES"
    text = str(ds) + str(ds.file_meta)
    assert not [value for value in IDENTIFYING_VALUES if value in text]
    assert ds.Modality == original.Modality  # what the model may use stays
    np.testing.assert_array_equal(ds.pixel_array, original.pixel_array)


def test_dicom_with_burned_in_annotation_is_refused(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.BurnedInAnnotation = "YES"
    ds.save_as(tmp_path / "burned.dcm")
    with pytest.raises(DataError, match=r"labels\.csv line 3: .*burned-in annotations"):
        read_pixels(tmp_path / "burned.dcm", "labels.csv line 3")


def test_dicom_pixels_are_in_modality_units() -> None:
    path = Path(get_testdata_file("CT_small.dcm"))
    ds = pydicom.dcmread(path)
    pixels = read_pixels(path, "x")
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(pixels, expected)


def make_folder(root: Path) -> Path:
    """PNG, JPEG, DICOM (under a name that is a patient's) and NIfTI, split by labels.csv."""
    folder = root / "my_images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i, split in enumerate(["train", "train", "val", "test"]):
        image = (rng.random((40, 30)) * 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"xray{i}.png")
        rows.append(f"xray{i}.png,{['healthy', 'sick'][i % 2]},{split}")
    Image.fromarray((rng.random((20, 20, 3)) * 255).astype(np.uint8)).save(folder / "c.jpg")
    rows.append("c.jpg,1,test")
    shutil.copyfile(get_testdata_file("CT_small.dcm"), folder / "Doe_John_CT.dcm")
    shutil.copyfile(get_testdata_file("MR_small.dcm"), folder / "Doe_John_MR.dcm")
    rows += ["Doe_John_CT.dcm,sick,train", "Doe_John_MR.dcm,healthy,val"]
    nib.save(
        nib.Nifti1Image(rng.normal(size=(16, 16, 5)).astype(np.float32), np.eye(4)),
        folder / "scan.nii.gz",
    )
    rows.append("scan.nii.gz,healthy,train")
    (folder / "labels.csv").write_text("file,label,split\n" + "\n".join(rows) + "\n")
    return folder


FOLDER = (
    "data/image=folder",
    "data.image.class_names=[healthy,sick]",
    "data.image.task=binary",
    "data.image.size=24",
)


def test_folder_of_png_jpeg_dicom_nifti_becomes_the_medmnist_layout(
    make_cfg, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path)
    cfg = make_cfg(*FOLDER, f"data.image.folder.path={folder}")
    result = acquire_images.run(cfg)
    assert (result["n_train"], result["n_val"], result["n_test"]) == (4, 2, 2)
    assert result["splits"]["train"]["class_sick"] == 1 + 1  # xray1 + the CT
    arrays = load_npz(Layout.of(cfg).raw_images)
    assert arrays["train_images"].shape == (4, 24, 24)
    assert arrays["train_images"].dtype == np.uint8
    assert arrays["test_labels"].reshape(-1).tolist() == [1, 1]
    run = MlflowClient(cfg.tracking.uri).search_runs(
        [
            MlflowClient(cfg.tracking.uri)
            .get_experiment_by_name(cfg.tracking.experiment)
            .experiment_id
        ]
    )[0]
    logged = " ".join(f"{k}={v}" for k, v in {**run.data.params, **run.data.tags}.items())
    assert "Doe_John" not in logged
    assert not [value for value in IDENTIFYING_VALUES if value in logged]


def test_folder_without_split_column_is_split_per_class_by_seed(make_cfg, tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    folder.mkdir()
    rng = np.random.default_rng(1)
    lines = []
    for i in range(20):
        Image.fromarray((rng.random((12, 12)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
        lines.append(f"{i}.png,{i % 2}")
    (folder / "labels.csv").write_text("file,label\n" + "\n".join(lines) + "\n")
    overrides = (
        *FOLDER,
        f"data.image.folder.path={folder}",
        "data.image.folder.val_fraction=0.2",
        "data.image.folder.test_fraction=0.2",
    )
    first = acquire_images.run(make_cfg(*overrides))
    assert (first["n_train"], first["n_val"], first["n_test"]) == (12, 4, 4)
    assert first["splits"]["val"]["class_healthy"] == first["splits"]["val"]["class_sick"] == 2
    images = load_npz(Layout(tmp_path).raw_images)["val_images"]
    acquire_images.run(make_cfg(*overrides))
    np.testing.assert_array_equal(load_npz(Layout(tmp_path).raw_images)["val_images"], images)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            "a.png,sick,train\nb.png,sick,test",
            r"identical files in more than one split.*line 2 "
            r"\(train\) = line 3 \(test\)",
        ),
        ("a.png,7,train", r"labels.csv line 2: label 7 is out of range 0\.\.1"),
        ("a.png,tumour,train", r"labels.csv line 2: label 'tumour' is not one of"),
        ("missing.png,sick,train", r"labels.csv line 2: the file it names does not exist"),
        (
            "a.png,sick,train\nb.png,sick,val\na.png,healthy,train",
            r"labels.csv line 4 lists the same file as line 2 \(split train\): list each file once",
        ),
        (
            "a.png,sick,train\n./a.png,sick,test",
            r"labels.csv line 3 lists the same file as line 2 \(splits train, test\)",
        ),
    ],
)
def test_folder_errors_name_the_csv_line(make_cfg, tmp_path: Path, line: str, error: str) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "a.png")
    shutil.copyfile(folder / "a.png", folder / "b.png")
    (folder / "labels.csv").write_text(f"file,label,split\n{line}\n")
    cfg = make_cfg(*FOLDER, f"data.image.folder.path={folder}")
    with pytest.raises(DataError, match=error):
        acquire_images.run(cfg)
    assert not Layout.of(cfg).raw_images.exists()


OUTSIDE = "the file it names lies outside the image folder"


@pytest.mark.parametrize(
    ("listed", "link_to"),
    [
        ("../outside.png", None),
        ("../../../../../../../../etc/passwd", None),
        ("/etc/passwd", None),
        ("link.png", "../outside.png"),
        ("passwd.png", "/etc/passwd"),
    ],
)
def test_a_listed_file_leading_out_of_the_folder_is_refused_before_it_is_read(
    make_cfg, tmp_path: Path, listed: str, link_to: str | None
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for value, name in enumerate(("a.png", "b.png", "../outside.png")):
        Image.fromarray(np.full((8, 8), value, np.uint8)).save(folder / name)
    if link_to is not None:
        (folder / listed).symlink_to(link_to)
    (folder / "labels.csv").write_text(
        f"file,label,split\na.png,sick,train\nb.png,healthy,val\n{listed},sick,test\n"
    )
    cfg = make_cfg(*FOLDER, f"data.image.folder.path={folder}")
    with pytest.raises(DataError, match=rf"^labels.csv line 4: {OUTSIDE}.*copy the file into"):
        acquire_images.run(cfg)
    assert not Layout.of(cfg).raw_images.exists()


def test_a_symbolic_link_within_the_folder_is_read(make_cfg, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    (folder / "scans").mkdir(parents=True)
    for value, name in enumerate(("a.png", "b.png", "scans/c.png")):
        Image.fromarray(np.full((8, 8), value, np.uint8)).save(folder / name)
    (folder / "c.png").symlink_to("scans/c.png")
    (folder / "labels.csv").write_text(
        "file,label,split\na.png,sick,train\nb.png,healthy,val\nc.png,healthy,test\n"
    )
    result = acquire_images.run(make_cfg(*FOLDER, f"data.image.folder.path={folder}"))
    assert (result["n_train"], result["n_val"], result["n_test"]) == (1, 1, 1)


def test_the_image_folder_path_stays_out_of_params_and_the_config_artifact(
    make_cfg, tmp_path: Path
) -> None:
    folder = tmp_path / "Doe_Jane_1957-03-02"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(np.full((8, 8), ord(name[0]), np.uint8)).save(folder / name)
    (folder / "labels.csv").write_text(
        "file,label,split\na.png,sick,train\nb.png,healthy,val\nc.png,sick,test\n"
    )
    cfg = make_cfg(*FOLDER, f"data.image.folder.path={folder}")
    acquire_images.run(cfg)
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["data.image.folder.path"] == "<folder>"
    logged = " ".join(f"{k}={v}" for k, v in {**run.data.params, **run.data.tags}.items())
    config = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path)))
    assert "Doe_Jane" not in logged + config.read_text()
    assert "path: <folder>" in config.read_text()
