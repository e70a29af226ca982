"""`python -m meddx predict` on image files: the pneumonia test images written out as PNG and
DICOM files get `evaluate`'s probabilities; outputs never name the patient.

The model is the `pneumonia` fixture's (conftest: one real PneumoniaMNIST epoch, registered).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import CONF
from image_files import PATIENT, raw_test_images, write_dicom, write_png
from meddx import cli
from meddx.config import compose
from meddx.data.npz import load_npz
from meddx.errors import DataError
from meddx.evaluation import tasks
from meddx.models import export
from meddx.paths import Layout
from meddx.stages import predict

N_PNG, N_DICOM = 24, 6
MODEL = "meddx-cnn-pneumoniamnist@best"


def evaluate_scores(cfg, n: int) -> np.ndarray:
    """What `evaluate` computes on the first `n` test images: task.predict on the arrays."""
    layout = Layout.of(cfg)
    net, info = export.load(layout.model_dir("cnn") / "model.pt")
    x = load_npz(layout.processed_images, keys=("test_images",))["test_images"][:n]
    return tasks.of(info["task"]).predict(net, (x,))


def run_predict(cfg, *overrides: str) -> int:
    return cli.main(
        ["predict", f"paths.root={cfg.paths.root}", f"tracking.uri={cfg.tracking.uri}", *overrides]
    )


def scores_by_file(out: Path, names: list[str], files: list[Path]) -> np.ndarray:
    """Rows of the per-input JSONs in the order of `files` (each JSON names its image id)."""
    from meddx.evaluation.image_predict import image_id

    rows = []
    for file in files:
        found = json.loads((out / f"{image_id(file)}.json").read_text())
        rows.append([found["probabilities"][name] for name in names])
    return np.array(rows)


@pytest.mark.slow
@pytest.mark.mirror
def test_png_copies_of_the_test_images_get_evaluates_probabilities(pneumonia, tmp_path):
    images = raw_test_images(pneumonia)[:N_PNG]
    files = [write_png(tmp_path / "in" / f"case{i:03d}.png", im) for i, im in enumerate(images)]
    out = tmp_path / "out"
    overrides = [f"predict.input={tmp_path / 'in'}", f"predict.model={MODEL}"]
    assert run_predict(pneumonia, *overrides, f"predict.output={out}") == 0
    names = ["normal", "pneumonia"]
    got = scores_by_file(out, names, files)
    assert np.abs(got - evaluate_scores(pneumonia, N_PNG)).max() <= 1e-5
    assert len(np.unique(got.round(3))) > N_PNG // 2  # the images get their own answers


@pytest.mark.slow
@pytest.mark.mirror
def test_dicom_copies_get_evaluates_probabilities_and_outputs_never_name_the_patient(
    pneumonia, tmp_path
):
    images = raw_test_images(pneumonia)[:N_DICOM]
    files = [write_dicom(tmp_path / "in" / f"{PATIENT}_{i}.dcm", im) for i, im in enumerate(images)]
    out = tmp_path / "out"
    overrides = [f"predict.input={tmp_path / 'in'}", f"predict.model={MODEL}"]
    # 8-bit pixels in modality units: the window [0, 255] is the PNG's bit-depth scale.
    assert (
        run_predict(pneumonia, *overrides, "predict.image.window=[0,255]", f"predict.output={out}")
        == 0
    )
    got = scores_by_file(out, ["normal", "pneumonia"], files)
    assert np.abs(got - evaluate_scores(pneumonia, N_DICOM)).max() <= 1e-5
    written = sorted(out.iterdir())
    assert len(written) == 2 * N_DICOM
    for path in written:
        assert "Doe" not in path.name and "Doe" not in path.read_text()


@pytest.mark.slow
@pytest.mark.mirror
def test_a_csv_row_holds_the_label_the_calibrated_confidence_and_a_gradcam_on_request(
    pneumonia, tmp_path
):
    (image,) = raw_test_images(pneumonia)[:1]
    file = write_png(tmp_path / "case.png", image)
    out = tmp_path / "out"
    overrides = [f"predict.input={file}", f"predict.model={MODEL}", "predict.image.gradcam=true"]
    assert run_predict(pneumonia, *overrides, f"predict.output={out}") == 0
    (csv_file,) = out.glob("*.csv")
    header, row = (line.split(",") for line in csv_file.read_text().splitlines())
    assert header == ["image", "label", "confidence", "p_normal", "p_pneumonia"]
    p = [float(v) for v in row[3:]]
    assert row[1] == ["normal", "pneumonia"][int(p[1] > 0.5)]
    summary = json.loads(csv_file.with_suffix(".json").read_text())
    calibrated = summary["calibrated_probabilities"]
    assert float(row[2]) == pytest.approx(calibrated[row[1]], abs=1e-6) == max(calibrated.values())
    assert "temperature-scaled on the validation split" in summary["confidence_kind"]
    with Image.open(csv_file.with_suffix(".gradcam.png")) as overlay:
        assert overlay.size[0] > 100


@pytest.mark.slow
@pytest.mark.mirror
def test_a_bad_file_in_a_folder_is_reported_and_the_others_are_predicted(pneumonia, tmp_path):
    good = write_png(tmp_path / "in" / "good.png", raw_test_images(pneumonia)[0])
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    cfg = compose(
        [
            f"paths.root={pneumonia.paths.root}",
            f"tracking.uri={pneumonia.tracking.uri}",
            f"predict.input={tmp_path / 'in'}",
            f"predict.model={Layout.of(pneumonia).model_dir('cnn')}",
            f"predict.output={out}",
        ],
        conf_dir=CONF,
    )
    with pytest.raises(DataError, match=r"1 of 2 inputs could not be predicted.*broken\.png"):
        predict.run(cfg)
    assert len(list(out.glob("*.json"))) == 1 and good.is_file()


def test_a_volume_model_is_refused_for_an_image_by_name(tmp_path):
    cfg = compose([], conf_dir=CONF)
    sizes = {"in_channels": 1, "num_classes": 2, "image_size": 16, "spatial_dims": 3}
    image = {"name": "synthetic3d", "size": 16, "channels": 1, "spatial_dims": 3, "window": None}
    info = {
        "task": "binary",
        "class_names": ["a", "b"],
        "stage": "train_cnn",
        "image": image | {"normalization": {"mean": [0.0], "std": [1.0]}},
    }
    export.save(
        tmp_path / "model.pt", export.build_net(cfg.cnn.net, **sizes), cfg.cnn.net, sizes, info
    )
    file = write_png(tmp_path / "x.png", np.zeros((16, 16), dtype=np.uint8))
    cfg = compose(
        [f"predict.input={file}", f"predict.model={tmp_path / 'model.pt'}"], conf_dir=CONF
    )
    with pytest.raises(DataError, match=r"takes 3-D volumes; give it NIfTI volumes"):
        predict.run(cfg)
