"""`python -m meddx predict` with segmentation models: PNG copies of the test images get
`evaluate`'s masks with their areas in mm, a NIfTI volume gets a NIfTI mask in its own voxel
order with its own affine and the structure volumes in mm^3, and an HC18 model measures the
head circumference by evaluation's ellipse fit.

The models are tiny MONAI UNets trained for one epoch on the synthetic masks, each in a
project of its own.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from conftest import CONF
from image_files import raw_test_images, write_png
from meddx.config import compose
from meddx.data.npz import load_npz
from meddx.evaluation import seg_output, tasks
from meddx.evaluation.image_predict import image_id
from meddx.evaluation.measurements import head_circumference
from meddx.evaluation.volume_predict import volume_id
from meddx.models import export
from meddx.paths import Layout
from meddx.stages import acquire_images, predict, preprocess_images, train_cnn

N_PNG = 8


def _trained(root: Path, tracking_db: str, *overrides: str):
    cfg = compose(
        [
            f"paths.root={root}",
            f"tracking.uri={tracking_db}",
            "cnn=unet",
            "cnn.max_epochs=1",
            "cnn.optimizer.lr=0.01",
            *overrides,
        ],
        conf_dir=CONF,
    )
    for stage in (acquire_images, preprocess_images, train_cnn):
        stage.run(cfg)
    return cfg


def evaluate_masks(cfg, n: int) -> np.ndarray:
    """The masks `evaluate` scores for the first `n` test cases (argmax of task.predict)."""
    net, info = export.load(Layout.of(cfg).model_dir("cnn") / "model.pt")
    x = load_npz(Layout.of(cfg).processed_images, keys=("test_images",))["test_images"][:n]
    return tasks.of(info["task"]).predict(net, (x,)).argmax(axis=1)


def run_predict(cfg, source: Path, out: Path, *overrides: str) -> dict:
    model = Layout.of(cfg).model_dir("cnn") / "model.pt"
    given = [f"predict.input={source}", f"predict.model={model}", f"predict.output={out}"]
    return predict.run(compose([f"paths.root={cfg.paths.root}", *given, *overrides], conf_dir=CONF))


@pytest.fixture(scope="module")
def seg2d(tmp_path_factory, tracking_db):
    return _trained(
        tmp_path_factory.mktemp("seg2d"),
        tracking_db,
        "data/image=synthetic_seg",
        "data.image.synthetic.train=40",
        "data.image.synthetic.val=10",
        "data.image.synthetic.test=10",
    )


@pytest.mark.slow
def test_png_copies_of_the_test_images_get_evaluates_masks_and_their_areas(seg2d, tmp_path):
    images = raw_test_images(seg2d)[:N_PNG]
    files = [write_png(tmp_path / "in" / f"case{i}.png", im) for i, im in enumerate(images)]
    out = tmp_path / "out"
    run_predict(seg2d, tmp_path / "in", out, "predict.image.pixel_size_mm=0.5")
    expected = evaluate_masks(seg2d, N_PNG)
    assert expected[:, :, :].any()  # the model segments something: the comparison can fail
    for file, mask in zip(files, expected, strict=True):
        name = image_id(file)
        with Image.open(out / f"{name}.mask.png") as written:
            np.testing.assert_array_equal(np.asarray(written), mask)
        summary = json.loads((out / f"{name}.json").read_text())
        areas = {row["measurement"]: row["value"] for row in summary["measurements"]}
        assert areas["disc.area"] == pytest.approx((mask == 1).sum() * 0.25)
        assert summary["spacing_source"] == "predict.image.pixel_size_mm"
        assert (out / f"{name}.csv").read_text().count("\n") == 3  # header, disc, square


@pytest.mark.slow
def test_a_larger_png_gets_a_mask_of_its_own_size_and_1mm_assumed(seg2d, tmp_path):
    image = np.kron(raw_test_images(seg2d)[0], np.ones((2, 2), dtype=np.uint8))  # 64 px
    image = np.pad(image, ((0, 0), (4, 4)))  # 64 x 72: the square crop is padded back
    file = write_png(tmp_path / "big.png", image)
    out = tmp_path / "out"
    run_predict(seg2d, file, out)
    with Image.open(out / f"{image_id(file)}.mask.png") as written:
        mask = np.asarray(written)
    assert mask.shape == (64, 72) and not mask[:, :4].any() and not mask[:, -4:].any()
    summary = json.loads((out / f"{image_id(file)}.json").read_text())
    assert summary["spacing_source"] == seg_output.ASSUMED and summary["spacing_mm"] == [1.0, 1.0]


@pytest.mark.slow
def test_a_nifti_volume_gets_a_nifti_mask_with_its_affine_and_volumes_in_mm3(
    tmp_path_factory, tracking_db, tmp_path
):
    cfg = _trained(
        tmp_path_factory.mktemp("seg3d"),
        tracking_db,
        "data/image=synthetic_seg3d",
        "data.image.synthetic.train=20",
        "data.image.synthetic.val=6",
        "data.image.synthetic.test=6",
    )
    volume = raw_test_images(cfg)[0]  # (D, H, W)
    # Stored (H, D, W): i runs to anterior (0.9 mm), j to superior (2 mm), k to the left.
    affine = np.array([[0, 0, -0.7, 10.0], [0.9, 0, 0, 5.0], [0, 2.0, 0, -3.0], [0, 0, 0, 1]])
    data = volume.transpose(1, 0, 2)[::-1]  # H flipped: i runs anterior, meddx's H posterior
    file = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), file)
    out = tmp_path / "out"
    run_predict(cfg, file, out)
    name = volume_id(file)
    mask = nib.load(out / f"{name}.mask.nii.gz")
    np.testing.assert_array_equal(mask.affine, nib.load(file).affine)  # as stored (float32)
    expected = evaluate_masks(cfg, 1)[0]  # (D, H, W) on the stored grid
    np.testing.assert_array_equal(np.asarray(mask.dataobj), expected.transpose(1, 0, 2)[::-1])
    summary = json.loads((out / f"{name}.json").read_text())
    volumes = {row["measurement"]: row["value"] for row in summary["measurements"]}
    assert volumes["ball.volume"] == pytest.approx((expected == 1).sum() * 2.0 * 0.9 * 0.7)


def test_an_hc18_model_measures_the_head_circumference_by_the_ellipse_fit():
    rows, cols = np.mgrid[:120, :160]
    head = (((rows - 60) / 40.0) ** 2 + ((cols - 80) / 60.0) ** 2 <= 1).astype(np.uint8)
    found = seg_output.measurements(head, (0.2, 0.1), ["background", "head"], "hc18")
    hc = {row["measurement"]: row["value"] for row in found}["head_circumference"]
    assert hc == head_circumference(head, (0.2, 0.1))
    a, b = 40 * 0.2, 60 * 0.1  # the ellipse drawn, in mm
    assert hc == pytest.approx(
        math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b))), rel=0.02
    )
    other = seg_output.measurements(head, (0.2, 0.1), ["background", "head"], "synthetic_seg")
    assert [row["measurement"] for row in other] == ["head.area"]
