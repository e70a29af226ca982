"""Segmentation as a task through the seam: masks as labels are checked against their images,
augmentation moves a mask with its image, and the unchanged image stages acquire, preprocess,
train (a MONAI UNet, Dice + cross-entropy) and evaluate (Dice, HD95, mask files) a synthetic
segmentation set."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from meddx.config import compose
from meddx.data import tasks
from meddx.data.augment import BatchAugment
from meddx.data.npz import load_npz
from meddx.data.validate import check_image_splits
from meddx.errors import ConfigError, DataError
from meddx.evaluation import seg_scoring
from meddx.models import export
from meddx.paths import Layout
from meddx.stages import acquire_images, evaluate, preprocess_images, report, train_cnn
from meddx.training import tasks as training_tasks

CONF = Path(__file__).resolve().parents[1] / "conf"
SEG = "segmentation"
CLASSES = 3  # background, two structures


def _splits(n: int = 4, size: int = 8) -> dict[str, np.ndarray]:
    """Valid splits: distinct images, each with a square of class 1 and one pixel of class 2."""
    arrays = {}
    for offset, split in enumerate(("train", "val", "test")):
        images = np.arange(n * size * size, dtype=np.uint8).reshape(n, size, size) + 40 * offset
        masks = np.zeros((n, size, size), dtype=np.uint8)
        masks[:, 2:5, 2:5] = 1
        masks[:, 6, 6] = 2
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, masks
    return arrays


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("model", ["unet", "segresnet"])
def test_a_segmentation_recipe_builds_a_net_with_a_logit_map_per_class(model, spatial_dims) -> None:
    cfg = compose([f"cnn={model}"], conf_dir=CONF).cnn
    net = export.build_net(
        cfg.net, in_channels=1, num_classes=CLASSES, image_size=16, spatial_dims=spatial_dims
    )
    out = net(torch.zeros(2, 1, *(16,) * spatial_dims))
    assert out.shape == (2, CLASSES, *(16,) * spatial_dims)


def test_a_classification_loss_is_refused_for_a_segmentation_dataset_by_key() -> None:
    cfg = compose(["cnn=unet", "cnn.loss.name=ce"], conf_dir=CONF).cnn
    with pytest.raises(ConfigError, match=r"cnn.loss.name='ce'.*dice_ce"):
        training_tasks.of(SEG).loss(cfg, np.zeros((1, 4, 4), np.uint8), CLASSES)


def _check(arrays: dict[str, np.ndarray]) -> None:
    check_image_splits(arrays, CLASSES, SEG, channels=1)


def test_a_mask_of_another_size_than_its_image_is_refused_naming_the_split() -> None:
    arrays = _splits()
    arrays["val_labels"] = arrays["val_labels"][:, :7, :]
    with pytest.raises(DataError, match=r"val_labels has masks of shape \(7, 8\).*\(8, 8\)"):
        _check(arrays)


def test_mask_values_outside_the_declared_classes_are_refused_naming_the_cases() -> None:
    arrays = _splits()
    arrays["test_labels"][3, 0, 0] = 3
    with pytest.raises(
        DataError, match=r"test_labels .*outside the 3 classes.*indices \[3\].*\[3\]"
    ):
        _check(arrays)


def test_empty_masks_are_valid_and_counted_as_background_cases() -> None:
    arrays = _splits()
    arrays["train_labels"][[0, 2]] = 0
    _check(arrays)
    counts = tasks.of(SEG).class_counts(arrays["train_labels"], CLASSES)
    assert counts.tolist() == [2, 2, 2]  # 2 empty masks; structures 1 and 2 in the other two


def test_a_per_case_spacing_of_the_wrong_shape_is_refused_naming_the_split() -> None:
    arrays = _splits()
    arrays["train_spacing"] = np.ones((4, 3))
    with pytest.raises(DataError, match=r"train_spacing has shape \(4, 3\).*expected \(4, 2\)"):
        _check(arrays)


def test_surface_distances_are_measured_with_each_case_s_own_spacing() -> None:
    truth = np.zeros((2, 12, 12), dtype=np.uint8)
    truth[:, 3:8, 3:8] = 1
    scores = np.zeros((2, 2, 12, 12), dtype=np.float32)
    scores[:, 1, 3:8, 3:9] = 1  # one column too wide in both cases
    scores[:, 0] = 1 - scores[:, 1]
    facts = {"name": "toy", "case_spacing": {"test": [[1.0, 0.5], [1.0, 2.0]]}}
    settings = OmegaConf.create({"bootstrap": 0, "confidence": 0.95})

    scored = seg_scoring.score(["background", "square"], truth, scores, settings, 0, facts)

    np.testing.assert_allclose(scored.per_case["hd95_mm"][:, 0], [0.5, 2.0])
    assert scored.metrics["spacing_mm"] == "per case"


def test_augmentation_moves_the_mask_with_the_image_and_leaves_its_classes() -> None:
    torch.manual_seed(0)
    image = torch.zeros(16, 1, 24, 24)
    mask = torch.zeros(16, 24, 24, dtype=torch.uint8)
    image[:, 0, 4:12, 6:16] = 1.0
    mask[:, 4:12, 6:16] = 2
    augment = BatchAugment(shift=3, hflip=True, vflip=True, rotate=30.0, scale=0.1)

    moved_image, moved_mask = augment.pair(image, mask)

    assert moved_mask.dtype == torch.uint8 and set(moved_mask.unique().tolist()) <= {0, 2}
    assert not torch.equal(moved_mask, mask)  # the draw moved the structure
    inside = moved_image[:, 0] > 0.5
    agreement = (inside == (moved_mask == 2)).float().mean()
    assert agreement > 0.97  # the mask follows the image (interpolation blurs only the edge)


def test_intensity_jitter_changes_the_image_but_not_the_mask() -> None:
    image, mask = torch.rand(4, 1, 8, 8), torch.randint(0, 3, (4, 8, 8))
    moved_image, moved_mask = BatchAugment(intensity_scale=0.5, cutout=4).pair(image, mask)
    assert not torch.equal(moved_image, image)
    assert torch.equal(moved_mask, mask)


OVERRIDES = (
    "cnn=unet",
    "cnn.max_epochs=2",
    "cnn.optimizer.lr=0.01",  # two epochs of a small set: larger steps than the recipe's
    "data.image.synthetic.val=30",
    "data.image.synthetic.test=30",
    "evaluate.bootstrap=50",
    "evaluate.register=false",
    "report.models.cnn.benchmark=null",
)


def _pipeline(root: Path, tracking_db: str, *overrides: str) -> tuple[dict, dict, Layout]:
    """acquire -> preprocess -> train (UNet, 2 epochs) -> evaluate -> report, as `dvc repro`
    runs them, in a project of its own."""
    cfg = compose(
        [f"paths.root={root}", f"tracking.uri={tracking_db}", *OVERRIDES, *overrides],
        conf_dir=CONF,
    )
    acquire_images.run(cfg)
    preprocess_images.run(cfg)
    trained, tested = train_cnn.run(cfg), evaluate.run(cfg)
    report.run(cfg)
    return trained, tested, Layout.of(cfg)


@pytest.fixture(scope="module")
def images_2d(tmp_path_factory, tracking_db) -> tuple[dict, dict, Layout]:
    root = tmp_path_factory.mktemp("seg2d")
    return _pipeline(
        root, tracking_db, "data/image=synthetic_seg", "data.image.synthetic.train=120"
    )


@pytest.mark.slow
def test_a_unet_trains_and_scores_well_above_chance_on_the_synthetic_images(images_2d) -> None:
    trained, tested, _ = images_2d

    assert trained["epochs"] == 2 and 0 <= trained["best_epoch"] <= 1
    # chance (a random or all-one-class mask) scores a Dice below 0.2: the structures are small
    assert tested["test_dice"] > 0.4
    assert tested["test_dice_ci_low"] <= tested["test_dice"] <= tested["test_dice_ci_high"]
    assert set(tested["per_class"]) == {"disc", "square"}
    assert np.isfinite(tested["test_hd95_mm"]) and np.isfinite(tested["test_msd_mm"])
    assert tested["spacing_source"].startswith("none stated")


@pytest.mark.slow
def test_evaluation_writes_a_png_mask_per_test_image_and_the_overlays(images_2d) -> None:
    _, tested, layout = images_2d

    assert json.loads(layout.metrics("evaluate").read_text()) == tested
    plots = layout.plots("evaluate")
    masks = sorted((plots / "masks").glob("*.png"))
    assert len(masks) == tested["n_test"]
    stored = load_npz(layout.processed_images)["test_labels"]
    assert np.asarray(Image.open(masks[0])).shape == stored.shape[1:]
    assert (plots / "overlays.png").is_file() and (plots / "per_case.csv").is_file()


@pytest.mark.slow
def test_the_report_shows_the_segmentation_figures_beside_no_published_row(images_2d) -> None:
    _, tested, layout = images_2d

    text = (layout.reports / "report.md").read_text()
    assert "| Dice | HD95 (mm) | MSD (mm) |" in text
    assert f"{tested['test_dice']:.4f} [{tested['test_dice_ci_low']:.4f}" in text
    assert "No published comparison: no published result is for synthetic_seg." in text
    assert "| disc |" in text and "worst test cases" in text and "overlays.png" in text


@pytest.mark.slow
def test_a_3d_unet_writes_nifti_masks_with_the_stated_spacing(tmp_path, tracking_db) -> None:
    _, tested, layout = _pipeline(
        tmp_path,
        tracking_db,
        "data/image=synthetic_seg3d",
        "data.image.spacing=[2.0,1.0,1.0]",
        "data.image.synthetic.train=60",
    )

    assert tested["test_dice"] > 0.25  # chance: about 0.1 (structures fill under 8% of a volume)
    assert tested["spacing_mm"] == [2.0, 1.0, 1.0]
    first = nib.load(sorted((layout.plots("evaluate") / "masks").glob("*.nii.gz"))[0])
    assert first.shape == (16, 16, 16)
    np.testing.assert_array_equal(np.diag(first.affine), [2.0, 1.0, 1.0, 1.0])
