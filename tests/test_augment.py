"""Training-only batch augmentation: every operation is off unless configured, and does what
its name says."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from meddx.config import compose
from meddx.data.augment import BatchAugment
from meddx.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"


def _batch(n: int = 16, size: int = 12) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(n, 1, size, size)


def test_every_image_dataset_config_sets_every_augmentation_option() -> None:
    options = set(inspect.signature(BatchAugment).parameters) - {"spatial_dims"}  # the data's
    for dataset in sorted(p.stem for p in (CONF / "data" / "image").glob("*.yaml")):
        augment = compose([f"data/image={dataset}"], conf_dir=CONF).data.image.augment
        assert set(augment) == options, dataset


def test_nothing_configured_leaves_the_batch_untouched() -> None:
    x = _batch()
    assert torch.equal(BatchAugment()(x), x)


def test_flips_give_each_image_either_itself_or_its_mirror() -> None:
    x = _batch()
    out = BatchAugment(hflip=True)(x)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and mirrored.any() and same.any()


def test_shifts_move_whole_pixels_within_the_configured_range() -> None:
    x = _batch(n=8)
    out = BatchAugment(shift=2)(x)
    for image, moved in zip(x[:, 0], out[:, 0], strict=True):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(moved[2:-2, 2:-2], torch.roll(image, (dy, dx), (0, 1))[2:-2, 2:-2])
        ]
        assert matches  # the interior is the input rolled by at most 2 pixels


def test_rotations_and_zooms_resample_about_the_centre() -> None:
    columns = torch.arange(15).expand(15, 15)
    bar = ((columns - 7).abs() <= 1).float()[None, None].repeat(32, 1, 1, 1)  # a vertical bar
    out = BatchAugment(rotate=45.0, scale=0.1)(bar)
    assert out.shape == bar.shape
    assert not torch.allclose(out, bar)  # images changed
    assert (out[:, 0, 7, 7] > 0.9).all()  # the centre stays on the bar
    top = out[:, 0, 0, 6:9].mean(1)
    assert top.std() > 0  # each image got its own angle


def test_cutout_blanks_one_square_of_at_most_the_configured_side_per_image() -> None:
    x = _batch(n=64) + 1  # no pixel is 0 before the cutout
    out = BatchAugment(cutout=4)(x)
    blank = out[:, 0] == 0
    assert torch.equal(out[~blank[:, None]], x[~blank[:, None]])  # the rest is untouched
    for square in blank:
        rows, cols = square.any(1).nonzero(), square.any(0).nonzero()
        height, width = len(rows), len(cols)
        assert 1 <= height <= 4 and 1 <= width <= 4
        assert square.sum() == height * width  # one filled rectangle
        assert rows.max() - rows.min() + 1 == height and cols.max() - cols.min() + 1 == width
    assert (blank.flatten(1).sum(1) == 16).any()  # whole squares where the border allows
    assert len({tuple(s.nonzero()[0].tolist()) for s in blank}) > 1  # placed per image


@pytest.mark.parametrize(
    ("option", "value"),
    [("shift", -1), ("cutout", -4), ("cutout", 2.5), ("rotate", float("nan")), ("scale", 1.0)],
)
def test_an_impossible_setting_is_a_config_error_naming_it(option: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"augment.{option}="):
        BatchAugment(**{option: value})


def test_other_augmentation_gives_another_resume_key() -> None:
    """A training resumes only its own checkpoints: augmentation is part of what defines it."""
    from meddx.provenance import run_key

    plain, shifted = BatchAugment(), BatchAugment(shift=2)
    assert run_key(0, plain.settings()) != run_key(0, shifted.settings())
    assert run_key(0, plain.settings()) == run_key(0, BatchAugment().settings())
