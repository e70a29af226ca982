"""Segmentation as a task through the seam: masks as labels are checked against their images,
augmentation moves a mask with its image, and the unchanged image stages acquire, preprocess,
train (a MONAI UNet, Dice + cross-entropy) and evaluate (Dice, HD95, mask files) a synthetic
segmentation set."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from meddx.data import tasks
from meddx.data.augment import BatchAugment
from meddx.data.npz import load_npz
from meddx.data.validate import check_image_splits
from meddx.errors import DataError
from meddx.paths import Layout
from meddx.stages import acquire_images, evaluate, preprocess_images, train_cnn

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


def _pipeline(make_cfg, *overrides: str) -> tuple[dict, dict, Layout]:
    cfg = make_cfg(
        "cnn=unet",
        "cnn.max_epochs=2",
        "evaluate.bootstrap=50",
        "evaluate.register=false",
        *overrides,
    )
    acquire_images.run(cfg)
    preprocess_images.run(cfg)
    return train_cnn.run(cfg), evaluate.run(cfg), Layout.of(cfg)


@pytest.mark.slow
def test_a_unet_trains_and_scores_on_the_synthetic_images_through_the_stages(make_cfg) -> None:
    trained, tested, layout = _pipeline(make_cfg, "data/image=synthetic_seg")

    assert trained["epochs"] == 2 and 0 <= trained["best_epoch"] <= 1
    # chance (a constant or random mask) scores Dice well below 0.2 on these small structures
    assert tested["test_dice"] > 0.4
    assert tested["test_dice_ci_low"] <= tested["test_dice"] <= tested["test_dice_ci_high"]
    assert set(tested["per_class"]) == {"disc", "square"}
    assert np.isfinite(tested["test_hd95_mm"])
    assert tested["spacing_source"].startswith("none stated")
    assert json.loads(layout.metrics("evaluate").read_text()) == tested
    plots = layout.plots("evaluate")
    masks = sorted((plots / "masks").glob("*.png"))
    assert len(masks) == tested["n_test"] == 60
    stored = load_npz(layout.processed_images)["test_labels"]
    assert np.asarray(Image.open(masks[0])).shape == stored.shape[1:]
    assert (plots / "overlays.png").is_file() and (plots / "per_case.csv").is_file()


@pytest.mark.slow
def test_a_3d_unet_writes_nifti_masks_with_the_stated_spacing(make_cfg) -> None:
    _, tested, layout = _pipeline(
        make_cfg,
        "data/image=synthetic_seg3d",
        "data.image.spacing=[2.0,1.0,1.0]",
        "data.image.synthetic.train=60",
    )

    assert tested["test_dice"] > 0.3
    assert tested["spacing_mm"] == [2.0, 1.0, 1.0]
    first = nib.load(sorted((layout.plots("evaluate") / "masks").glob("*.nii.gz"))[0])
    assert first.shape == (16, 16, 16)
    np.testing.assert_array_equal(np.diag(first.affine), [2.0, 1.0, 1.0, 1.0])
