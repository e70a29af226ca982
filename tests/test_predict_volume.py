"""`python -m meddx predict` on volumes: NIfTI copies of a volume model's test volumes get
`evaluate`'s probabilities, a DICOM series folder is one input, and inputs of the wrong
dimension are refused naming the file.

The model is a tiny 3-D ConvNet trained for one epoch on the synthetic solids (the offline
volume pipeline's data), in a project of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from omegaconf import OmegaConf
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from conftest import CONF
from image_files import raw_test_images, write_png
from meddx.config import compose
from meddx.data import image_spec
from meddx.data.image_spec import ImageSpec
from meddx.data.npz import load_npz
from meddx.errors import DataError
from meddx.evaluation import tasks
from meddx.evaluation.volume_predict import volume_id
from meddx.models import export
from meddx.paths import Layout
from meddx.stages import acquire_images, predict, preprocess_images, train_cnn

N_NIFTI = 6
PATIENT = "Roe^Richard"
SPACING = (2.0, 0.8, 0.8)  # mm: slice gap, rows, columns


@pytest.fixture(scope="module")
def volumes(tmp_path_factory, tracking_db):
    """A project whose train_cnn trained a 3-D ConvNet on synthetic3d (one epoch)."""
    root = tmp_path_factory.mktemp("volumes")
    cfg = compose(
        [
            f"paths.root={root}",
            f"tracking.uri={tracking_db}",
            "data/image=synthetic3d",
            "cnn=convnet",
            "cnn.net.channels=[4,8]",
            "cnn.max_epochs=1",
            "data.image.synthetic.train=60",
            "data.image.synthetic.val=20",
            "data.image.synthetic.test=20",
        ],
        conf_dir=CONF,
    )
    for stage in (acquire_images, preprocess_images, train_cnn):
        stage.run(cfg)
    return cfg


def evaluate_scores(cfg, n: int) -> np.ndarray:
    """What `evaluate` computes on the first `n` test volumes: task.predict on the arrays."""
    net, info = export.load(Layout.of(cfg).model_dir("cnn") / "model.pt")
    x = load_npz(Layout.of(cfg).processed_images, keys=("test_images",))["test_images"][:n]
    return tasks.of(info["task"]).predict(net, (x,))


def run_predict(cfg, source: Path, out: Path, model: Path | None = None, *more: str) -> dict:
    model = model or Layout.of(cfg).model_dir("cnn") / "model.pt"
    overrides = [f"predict.input={source}", f"predict.model={model}", f"predict.output={out}"]
    overrides += list(more)
    return predict.run(compose([f"paths.root={cfg.paths.root}", *overrides], conf_dir=CONF))


def write_nifti(path: Path, volume: np.ndarray) -> Path:
    """`volume` (D, H, W) as NIfTI stored (W, H, D) in L, P, S axes: what meddx reads back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([-SPACING[2], -SPACING[1], SPACING[0], 1.0])
    nib.save(nib.Nifti1Image(volume.transpose(2, 1, 0), affine), path)
    return path


def write_series(folder: Path, volume: np.ndarray) -> Path:
    """`volume` (D, H, W) as an axial CT series naming the patient, slices under shuffled
    names, stored as (value - 1000) with RescaleIntercept 1000: the series' values are the
    volume's only through the rescale tags."""
    folder.mkdir(parents=True)
    series, study = generate_uid(), generate_uid()
    names = np.random.default_rng(0).permutation(len(volume))
    for k, plane in enumerate(volume):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientName, ds.PatientID = "CT", PATIENT, "MRN-777"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.InstanceNumber = int(names[k]) + 1
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 1000
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, k * SPACING[0]]
        ds.PixelSpacing = [SPACING[1], SPACING[2]]
        ds.PixelData = (plane.astype(np.int16) - 1000).tobytes()
        ds.save_as(
            folder / f"{PATIENT.replace('^', '_')}_{names[k]:03d}.dcm", enforce_file_format=True
        )
    return folder


def probabilities_of(out: Path, name: str, classes: list[str]) -> list[float]:
    found = json.loads((out / f"{name}.json").read_text())
    return [found["probabilities"][c] for c in classes]


@pytest.mark.slow
def test_nifti_copies_of_the_test_volumes_get_evaluates_probabilities(volumes, tmp_path):
    files = [
        write_nifti(tmp_path / "in" / f"case{i}.nii.gz", v)
        for i, v in enumerate(raw_test_images(volumes)[:N_NIFTI])
    ]
    out = tmp_path / "out"
    run_predict(volumes, tmp_path / "in", out)
    classes = list(volumes.data.image.class_names)
    got = np.array([probabilities_of(out, volume_id(f), classes) for f in files])
    assert np.abs(got - evaluate_scores(volumes, N_NIFTI)).max() <= 1e-5
    assert len(np.unique(got.round(4), axis=0)) > 1  # the volumes get their own answers


def test_a_gradcam_on_request_shows_the_slices_through_the_peak_of_the_predicted_class(
    volumes, tmp_path
):
    source = write_nifti(tmp_path / "in" / "case.nii.gz", raw_test_images(volumes)[0])
    result = run_predict(volumes, source, tmp_path / "out", None, "predict.volume.gradcam=true")
    (summary,) = result["predicted"].values()
    drawn = Path(summary["files"]["gradcam"])
    assert drawn.name == f"{volume_id(source)}.gradcam.png"
    assert drawn.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_dicom_series_folder_is_one_volume_and_no_output_names_the_patient(volumes, tmp_path):
    volume = raw_test_images(volumes)[0]
    series = write_series(tmp_path / "in" / PATIENT.replace("^", "_"), volume)
    out = tmp_path / "out"
    result = run_predict(volumes, tmp_path / "in", out)
    assert list(result["predicted"]) == [str(series)]  # one input, not one per slice
    classes = list(volumes.data.image.class_names)
    got = probabilities_of(out, volume_id(series), classes)
    assert np.abs(np.array(got) - evaluate_scores(volumes, 1)[0]).max() <= 1e-5
    written = sorted(out.iterdir())
    assert [p.suffix for p in written] == [".csv", ".json"]
    for path in written:
        for part in ("Roe", "Richard", "MRN-777"):
            assert part not in path.name and part not in path.read_text()


def _model(path: Path, spatial_dims: int) -> Path:
    """An untrained exported model of 16-px images or 16^3 volumes (for refusals)."""
    cfg = compose([], conf_dir=CONF)
    sizes = {"in_channels": 1, "num_classes": 2, "image_size": 16, "spatial_dims": spatial_dims}
    image = {"name": "x", "size": 16, "channels": 1, "spatial_dims": spatial_dims}
    image |= {"window": None, "normalization": {"mean": [0.0], "std": [1.0]}}
    info = {"task": "binary", "class_names": ["a", "b"], "stage": "train_cnn", "image": image}
    net = export.build_net(cfg.cnn.net, **sizes)
    export.save(path, net, cfg.cnn.net, sizes, info)
    return path


def test_a_2d_image_given_to_a_volume_model_is_refused_naming_the_file(tmp_path):
    model = _model(tmp_path / "model.pt", 3)
    image = write_png(tmp_path / "slice.png", np.zeros((16, 16), dtype=np.uint8))
    with pytest.raises(DataError, match=r"slice\.png: .*takes 3-D volumes; give it NIfTI"):
        run_predict(compose([], conf_dir=CONF), image, tmp_path / "out", model)


def test_a_volume_given_to_an_image_model_is_refused_naming_the_file(tmp_path):
    model = _model(tmp_path / "model.pt", 2)
    volume = write_nifti(tmp_path / "head.nii.gz", np.zeros((8, 16, 16), dtype=np.uint8))
    with pytest.raises(DataError, match=r"head\.nii\.gz: .*3-D NIfTI volume.*takes 2-D images"):
        run_predict(compose([], conf_dir=CONF), volume, tmp_path / "out", model)


def test_a_model_of_volumes_padded_by_their_source_is_refused_for_new_volumes_by_name():
    """MSD Hippocampus pads each case into a box by its own rule: no cube resize stands in."""
    meta = {"name": "msd_hippocampus", "size": 48, "channels": 1, "spatial_dims": 3}
    meta["normalization"] = {"mean": [0.0], "std": [1.0]}
    spec = OmegaConf.create({"source": "msd_hippocampus", "size": [48, 64, 48]})
    info = {"image": image_spec.facts(meta, spec)}
    with pytest.raises(DataError, match=r"model hippo\.pt carries no volume standardisation"):
        ImageSpec.of_model(info, "hippo.pt").volume_standardisation("hippo.pt")
