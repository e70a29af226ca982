"""The user's own volumes: NIfTI files and DICOM series read, checked and standardised.

Every file here is real: DICOM series written slice by slice with pydicom, NIfTI files with
nibabel. Errors must name the labels.csv line and never a file name (names carry patients').
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from meddx.data.dicom_series import read_dicom_series
from meddx.data.folder import load_folder
from meddx.data.nifti import read_nifti
from meddx.data.npz import load_npz
from meddx.data.standardise import standardisation, transform
from meddx.data.volume import Volume
from meddx.data.volume_readers import read_volume
from meddx.errors import ConfigError, DataError
from meddx.paths import Layout
from meddx.stages import acquire_images, preprocess_images

WHERE = "labels.csv line 4"
TILT = np.deg2rad(20.0)  # the slices' plane turned about the patient's left-right axis
ROW_DIR = np.array([1.0, 0.0, 0.0])
COL_DIR = np.array([0.0, np.cos(TILT), -np.sin(TILT)])
NORMAL = np.cross(ROW_DIR, COL_DIR)
GAP, PIXEL = 2.5, (0.8, 0.6)  # mm between slices; PixelSpacing (between rows, columns)
SLOPE, INTERCEPT = 2.0, -1024.0
Edit = Callable[[int, Dataset], None]


def stored_slice(k: int, side: int, seed: int) -> np.ndarray:
    """Stored values that tell slice (k), row, column and series apart, inside the CT window."""
    rows, cols = np.mgrid[:side, :side]
    return (450 + 5 * seed + 20 * k + 3 * rows + cols).astype(np.uint16)  # -124..196 HU


def write_series(
    folder: Path, n: int = 5, side: int = 16, edit: Edit | None = None, seed: int = 0
) -> np.ndarray:
    """A CT series of `n` tilted slices under shuffled names; its HU in position order."""
    folder.mkdir(parents=True)
    series, study = generate_uid(), generate_uid()
    names = np.random.default_rng(seed).permutation(n)
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientName, ds.PatientID = "CT", "Doe^John", "MRN-12345"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.InstanceNumber = int(names[k]) + 1  # numbered like the names: neither is the order
        ds.Rows = ds.Columns = side
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = SLOPE, INTERCEPT
        ds.ImageOrientationPatient = [round(v, 6) for v in (*ROW_DIR, *COL_DIR)]
        ds.ImagePositionPatient = [
            round(v, 4) for v in np.array([-20.0, 5.0, 30.0]) + k * GAP * NORMAL
        ]
        ds.PixelSpacing = list(PIXEL)
        ds.PixelData = stored_slice(k, side, seed).tobytes()
        if edit is not None:
            edit(k, ds)
        ds.save_as(folder / f"IM{names[k]:04d}_Doe_John.dcm", enforce_file_format=True)
    return np.stack([stored_slice(k, side, seed) * SLOPE + INTERCEPT for k in range(n)])


def test_a_dicom_series_is_stacked_by_position_on_the_normal_in_hu(tmp_path: Path) -> None:
    hu = write_series(tmp_path / "series")
    volume = read_dicom_series(tmp_path / "series", WHERE)
    np.testing.assert_allclose(volume.voxels, hu)  # slice k = the k-th along the normal
    np.testing.assert_allclose(volume.spacing, (GAP, *PIXEL), rtol=1e-4)  # not GAP*cos(tilt)
    assert volume.modality == "CT"


def test_a_nifti_volume_comes_out_in_dhw_order_with_the_spacing_of_its_affine(
    tmp_path: Path,
) -> None:
    data = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)
    # Stored axes: i runs to superior (4 mm), j to anterior (3 mm), k to the patient's right.
    affine = np.array([[0, 0, 2.0, 7], [0, 3.0, 0, -1], [4.0, 0, 0, 2], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "v.nii.gz")
    volume = read_nifti(tmp_path / "v.nii.gz", WHERE)
    np.testing.assert_allclose(volume.voxels, data[:, ::-1, ::-1])  # D up, H to P, W to L
    assert volume.spacing == (4.0, 3.0, 2.0)
    assert volume.modality is None


def test_a_nifti_whose_affine_places_no_volume_is_a_data_error(tmp_path: Path) -> None:
    image = nib.Nifti1Image(np.ones((4, 4, 4), np.float32), None)
    image.set_sform(np.diag([1.0, 1.0, 0.0, 1.0]), code=1)  # a zero slice spacing
    image.set_qform(None, code=0)  # (nibabel refuses to write it as a qform)
    nib.save(image, tmp_path / "v.nii")
    with pytest.raises(DataError, match=rf"^{WHERE}: the header's geometry places the voxels"):
        read_nifti(tmp_path / "v.nii", WHERE)


def test_a_series_and_its_nifti_export_give_the_same_volume(tmp_path: Path) -> None:
    hu = write_series(tmp_path / "series")
    series = read_volume(tmp_path / "series", WHERE)
    # The same voxels as a NIfTI file: (column, row, slice) in RAS+, from the DICOM geometry.
    affine = np.eye(4)
    affine[:3, 0] = ROW_DIR * PIXEL[1]
    affine[:3, 1] = COL_DIR * PIXEL[0]
    affine[:3, 2] = NORMAL * GAP
    affine = np.diag([-1.0, -1, 1, 1]) @ affine
    nib.save(nib.Nifti1Image(hu.transpose(2, 1, 0), affine), tmp_path / "same.nii")
    nifti = read_volume(tmp_path / "same.nii", WHERE)
    np.testing.assert_allclose(nifti.voxels, series.voxels)
    np.testing.assert_allclose(nifti.spacing, series.spacing, rtol=1e-4)


def _std(size: int, **options: object) -> Callable[[Volume, str], np.ndarray]:
    spec = OmegaConf.create({"size": size, "standardise": {"resize": None, **options}})
    return transform(standardisation(spec))


def test_resampling_to_a_finer_spacing_adds_slices_between_the_old_ones() -> None:
    ramp = np.broadcast_to(np.arange(8, dtype=np.float32)[:, None, None] * 2.0, (8, 16, 16))
    volume = Volume(ramp.copy(), (2.0, 1.0, 1.0), None)  # 2 mm slices, value = depth in mm
    out = _std(
        16, modality="other", spacing=[1.0, 1.0, 1.0], resize="pad_crop", percentiles=[0, 100]
    )(volume, WHERE)
    assert out.shape == (16, 16, 16)
    profile = out[:, 8, 8].astype(float)
    steps = np.diff(profile[profile > 0])
    assert len(steps) == 13 and np.allclose(steps, 255 / 14, atol=1)  # 15 slices 1 mm apart


def test_the_ct_window_maps_its_hu_range_to_0_1_and_clips_outside() -> None:
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0], dtype=np.float32)
    voxels = np.broadcast_to(hu[:, None, None], (5, 5, 5)).copy()
    out = _std(5, modality="ct", window=[-160, 240])(Volume(voxels, (1.0, 1.0, 1.0), "CT"), WHERE)
    assert out[:, 0, 0].tolist() == [0, 0, 128, 255, 255]  # 40 HU is mid-window: 127.5


@pytest.mark.parametrize("norm", ["percentile", "zscore"])
def test_mri_normalisation_is_per_volume_so_scanner_gain_and_offset_vanish(norm: str) -> None:
    voxels = np.random.default_rng(0).normal(300, 40, size=(8, 8, 8)).astype(np.float32)
    std = _std(8, modality="mri", mri_norm=norm)
    first = std(Volume(voxels, (1.0, 1.0, 1.0), "MR"), WHERE)
    scaled = std(Volume(voxels * 3 + 500, (1.0, 1.0, 1.0), "MR"), WHERE)
    assert np.abs(first.astype(int) - scaled.astype(int)).max() <= 1
    if norm == "zscore":  # mean 0 sd 1, -3..3 sd to [0, 1]: the mean lands mid-range
        assert abs(first.mean() - 127.5) < 3
        assert abs((first.astype(float) / 255 * 6 - 3).std() - 1) < 0.05
    else:
        assert (first.min(), first.max()) == (0, 255)


def test_a_volume_of_the_wrong_size_with_resizing_off_is_a_data_error() -> None:
    voxels = np.random.default_rng(0).random((6, 8, 8), dtype=np.float32)
    volume = Volume(voxels, (1.0, 1.0, 1.0), None)
    with pytest.raises(DataError, match=rf"{WHERE}: the volume is 6x8x8 .* wants 8x8x8"):
        _std(8, modality="other")(volume, WHERE)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"modality": "pet"}, r"standardise.modality='pet' is not one of"),
        ({"modality": "ct", "window": None}, r"standardise.window=None: give \[low, high\]"),
        ({"modality": "mri", "mri_norm": "minmax"}, r"standardise.mri_norm='minmax'"),
        ({"modality": "other", "resize": "stretch"}, r"standardise.resize='stretch'"),
        ({"modality": "other", "spacing": 1.5}, r"standardise.spacing=1.5: give \[d, h, w\] mm"),
    ],
)
def test_a_bad_standardisation_is_a_config_error_naming_the_key(options, error) -> None:
    spec = OmegaConf.create({"size": 8, "standardise": {"resize": None, **options}})
    with pytest.raises(ConfigError, match=error):
        standardisation(spec)


def _tilt_one(k: int, ds: Dataset) -> None:
    if k == 2:
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]


def _shrink_pixels(k: int, ds: Dataset) -> None:
    if k == 2:
        ds.PixelSpacing = [0.7, 0.6]


def _other_series(k: int, ds: Dataset) -> None:
    if k >= 3:
        ds.SeriesInstanceUID = "1.2.3.4"


def _unevenly(k: int, ds: Dataset) -> None:
    position = np.array([float(v) for v in ds.ImagePositionPatient])
    ds.ImagePositionPatient = [
        round(v, 4) for v in position + (0.3 * GAP * NORMAL if k == 4 else 0)
    ]


def _as_mr(k: int, ds: Dataset) -> None:
    ds.Modality = "MR"


SERIES_ERRORS = [
    (_other_series, r"mixes 2 DICOM series \(different SeriesInstanceUID\)"),
    (_unevenly, r"unevenly spaced \(gaps 2.5 to 3.25 mm, tolerance 1% of the median 2.5 mm\)"),
    (_tilt_one, r"differ in orientation \(ImageOrientationPatient\)"),
    (_shrink_pixels, r"differ in pixel size \(PixelSpacing\)"),
    (_as_mr, r"the DICOM series is MR, but data.image.standardise.modality=ct"),
]


def labelled(folder: Path, rows: list[str]) -> Path:
    (folder / "labels.csv").write_text("file,label,split\n" + "\n".join(rows) + "\n")
    return folder


def spec3d(folder: Path, size: int = 8, **standardise: object) -> object:
    return OmegaConf.create(
        {
            "source": "folder",
            "task": "binary",
            "class_names": ["healthy", "sick"],
            "channels": 1,
            "spatial_dims": 3,
            "size": size,
            "folder": {
                "path": str(folder),
                "labels": "labels.csv",
                "val_fraction": 0.1,
                "test_fraction": 0.2,
                "window": None,
            },
            "standardise": {
                "modality": "ct",
                "resize": "resize",
                "window": [-160, 240],
                **standardise,
            },
        }
    )


def _good_rows(folder: Path) -> list[str]:
    """Line 2 and 3 of labels.csv: two good NIfTI volumes."""
    for i in range(2):
        noise = np.random.default_rng(i).normal(size=(6, 6, 6)).astype(np.float32)
        nib.save(nib.Nifti1Image(noise * 100, np.eye(4)), folder / f"ok{i}.nii.gz")
    return ["ok0.nii.gz,healthy,train", "ok1.nii.gz,sick,val"]


@pytest.mark.parametrize(("edit", "error"), SERIES_ERRORS, ids=lambda v: getattr(v, "__name__", ""))
def test_a_broken_series_is_a_data_error_naming_its_labels_line(
    tmp_path: Path, edit: Edit, error: str
) -> None:
    folder = _mkdir(tmp_path / "data")
    rows = [*_good_rows(folder), "Doe_John/,sick,test"]
    write_series(folder / "Doe_John", edit=edit)
    with pytest.raises(DataError, match=rf"^labels.csv line 4: .*{error}") as caught:
        load_folder(spec3d(labelled(folder, rows)), seed=0, root=tmp_path)
    assert "Doe" not in str(caught.value) and "IM0" not in str(caught.value)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_a_missing_slice_is_an_uneven_spacing_error(tmp_path: Path) -> None:
    folder = _mkdir(tmp_path / "data")
    rows = [*_good_rows(folder), "series,sick,test"]
    write_series(folder / "series", n=6)
    middle = np.random.default_rng(0).permutation(6)[2]  # the third slice's name number
    next((folder / "series").glob(f"IM{middle:04d}_*")).unlink()
    with pytest.raises(
        DataError, match=r"labels.csv line 4: .*unevenly spaced .* a slice is missing"
    ):
        load_folder(spec3d(labelled(folder, rows)), seed=0, root=tmp_path)


def test_an_empty_series_folder_is_a_data_error_naming_its_line(tmp_path: Path) -> None:
    folder = _mkdir(tmp_path / "data")
    rows = [*_good_rows(folder), "empty,sick,test"]
    _mkdir(folder / "empty")
    with pytest.raises(DataError, match=r"labels.csv line 4: the series folder holds no files"):
        load_folder(spec3d(labelled(folder, rows)), seed=0, root=tmp_path)


def test_a_nifti_with_nan_voxels_is_a_data_error_naming_its_line(tmp_path: Path) -> None:
    folder = _mkdir(tmp_path / "data")
    voxels = np.ones((6, 6, 6), np.float32)
    voxels[2, 3, 1] = np.nan
    nib.save(nib.Nifti1Image(voxels, np.eye(4)), folder / "Doe_John.nii")
    rows = [*_good_rows(folder), "Doe_John.nii,sick,test"]
    with pytest.raises(DataError, match=r"^labels.csv line 4: the volume holds NaN"):
        load_folder(spec3d(labelled(folder, rows)), seed=0, root=tmp_path)


@pytest.mark.parametrize("cell", ["", ".", "sub/.."])
def test_a_file_cell_naming_the_image_folder_itself_is_refused(tmp_path: Path, cell: str) -> None:
    folder = _mkdir(tmp_path / "data")
    _mkdir(folder / "sub")
    with pytest.raises(DataError, match=r"labels.csv line 2: the file cell names the image folder"):
        load_folder(spec3d(labelled(folder, [f"{cell},sick,train"])), seed=0, root=tmp_path)


def test_a_series_folder_in_a_2d_dataset_says_spatial_dims(tmp_path: Path) -> None:
    folder = _mkdir(tmp_path / "data")
    write_series(folder / "series")
    spec = spec3d(labelled(folder, ["series,sick,train"]))
    spec.spatial_dims = 2
    with pytest.raises(DataError, match=r"labels.csv line 2: names a folder .*spatial_dims=3"):
        load_folder(spec, seed=0, root=tmp_path)


def test_the_same_series_in_two_splits_is_leakage_whatever_its_file_names(
    tmp_path: Path,
) -> None:
    folder = _mkdir(tmp_path / "data")
    write_series(folder / "a")
    shutil.copytree(folder / "a", folder / "b")
    for path in (folder / "b").iterdir():
        path.rename(path.with_name("copy_" + path.name))
    rows = ["a,sick,train", "b,sick,test"]
    with pytest.raises(
        DataError,
        match=r"identical files in more than one split.*line 2 \(train\) = line 3 \(test\)",
    ):
        load_folder(spec3d(labelled(folder, rows)), seed=0, root=tmp_path)


FOLDER3D = (
    "data/image=folder3d",
    "data.image.class_names=[healthy,sick]",
    "data.image.task=binary",
    "data.image.size=8",
    "data.image.standardise.spacing=[2.0,2.0,2.0]",
)


def test_the_same_volume_in_two_files_across_splits_fails_the_stage(
    make_cfg, tmp_path: Path
) -> None:
    folder = _mkdir(tmp_path / "data")
    voxels = np.random.default_rng(0).normal(0, 100, size=(8, 8, 8)).astype(np.float32)
    nib.save(nib.Nifti1Image(voxels, np.eye(4)), folder / "a.nii")
    nib.save(nib.Nifti1Image(voxels, np.eye(4)), folder / "b.nii.gz")  # other bytes, same voxels
    rows = [*_good_rows(folder), "a.nii,sick,train", "b.nii.gz,sick,test"]
    cfg = make_cfg(*FOLDER3D, f"data.image.folder.path={labelled(folder, rows)}")
    with pytest.raises(
        DataError, match=r"appear in more than one split \(leakage\): train\[1\] = test\[0\]"
    ):
        acquire_images.run(cfg)


def test_a_folder_of_nifti_and_dicom_series_becomes_standardised_volumes(
    make_cfg, tmp_path: Path
) -> None:
    folder = _mkdir(tmp_path / "my_scans")
    rows = _good_rows(folder)
    for i, split in enumerate(["train", "train", "val", "test"]):
        write_series(folder / f"Doe_John_{i}", seed=i)
        rows.append(f"Doe_John_{i},{['healthy', 'sick'][i % 2]},{split}")
    nib.save(
        nib.Nifti1Image(np.full((10, 10, 10), 40.0, np.float32), np.diag([1.5, 1.5, 3.0, 1])),
        folder / "mid_window.nii.gz",
    )
    rows.append("mid_window.nii.gz,sick,test")
    cfg = make_cfg(*FOLDER3D, f"data.image.folder.path={labelled(folder, rows)}")
    acquired = acquire_images.run(cfg)
    assert (acquired["n_train"], acquired["n_val"], acquired["n_test"]) == (3, 2, 2)
    layout = Layout.of(cfg)
    raw = load_npz(layout.raw_images)
    assert raw["train_images"].shape == (3, 8, 8, 8) and raw["train_images"].dtype == np.uint8
    assert np.all(raw["test_images"][1] == 128)  # 40 HU everywhere: the middle of the window
    preprocess_images.run(cfg)
    facts = json.loads(layout.processed_images_meta.read_text())
    assert facts["spatial_dims"] == 3 and facts["size"] == 8
    assert facts["standardise"] == {
        "modality": "ct",
        "size": 8,
        "spacing": [2.0, 2.0, 2.0],
        "resize": "resize",
        "window": [-160.0, 240.0],
        "mri_norm": None,
        "percentiles": [0.5, 99.5],
    }
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment).experiment_id
    runs = client.search_runs([experiment])
    assert len(runs) == 2
    logged = " ".join(
        f"{k}={v}" for run in runs for k, v in {**run.data.params, **run.data.tags}.items()
    )
    assert "data.image.standardise.window" in logged
    tags = next(run for run in runs if "data.volumes.modalities" in run.data.tags).data.tags
    assert tags["data.volumes.modalities"] == "CT: 4, unstated: 3"  # NIfTI does not say
    assert tags["data.volumes.spacing_min_mm"] == "1 x 0.8 x 0.6"
    assert tags["data.volumes.spacing_max_mm"] == "3 x 1.5 x 1.5"
    assert "Doe" not in logged and "MRN-12345" not in logged
    assert pydicom.dcmread(next((folder / "Doe_John_0").iterdir())).PatientName == "Doe^John"
