"""Clinical measurements: head circumference from an ellipse mask, volumes, agreement."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from meddx.evaluation.measurements import (
    agreement,
    bland_altman,
    head_circumference,
    ramanujan_perimeter,
    structure_volumes,
    volume_agreement,
)


def _ellipse(shape: tuple[int, int], a_px: float, b_px: float, angle: float) -> np.ndarray:
    """A filled ellipse with semi-axes a (along the rotated rows) and b, centred."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    y, x = yy - shape[0] / 2, xx - shape[1] / 2
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * y + s * x, -s * y + c * x
    return ((u / a_px) ** 2 + (v / b_px) ** 2 <= 1).astype(np.uint8)


def test_ramanujan_perimeter_of_a_circle_is_2_pi_r() -> None:
    assert ramanujan_perimeter(3.0, 3.0) == pytest.approx(2 * math.pi * 3.0)


@pytest.mark.parametrize("angle", [0.0, 0.7])
def test_head_circumference_of_a_drawn_ellipse_within_1_percent(angle: float) -> None:
    mask = _ellipse((200, 260), 60, 90, angle)
    truth = ramanujan_perimeter(60 * 0.2, 90 * 0.2)
    assert head_circumference(mask, (0.2, 0.2)) == pytest.approx(truth, rel=0.01)


def test_head_circumference_respects_non_square_pixels() -> None:
    # 40 rows x 0.5 mm and 40 columns x 0.25 mm: semi-axes 20 mm and 10 mm
    mask = _ellipse((120, 120), 40, 40, 0.0)
    truth = ramanujan_perimeter(20.0, 10.0)
    assert head_circumference(mask, (0.5, 0.25)) == pytest.approx(truth, rel=0.01)


def test_a_stray_blob_does_not_change_the_head() -> None:
    mask = _ellipse((200, 260), 60, 90, 0.3)
    clean = head_circumference(mask, (0.2, 0.2))
    mask[2:8, 2:8] = 1
    assert head_circumference(mask, (0.2, 0.2)) == pytest.approx(clean)


def test_an_empty_mask_has_no_circumference() -> None:
    assert math.isnan(head_circumference(np.zeros((20, 20), np.uint8), (1.0, 1.0)))


def test_volumes_of_boxes_are_exact_in_mm3() -> None:
    mask = np.zeros((10, 12, 14), np.uint8)
    mask[1:4, 1:5, 1:6] = 1  # 3*4*5 voxels
    mask[5:7, 5:8, 5:9] = 2  # 2*3*4 voxels
    volumes = structure_volumes(mask, (1.0, 0.5, 2.0), labels=(1, 2))
    assert volumes == {1: 60.0, 2: 24.0}


def test_agreement_gives_bias_mad_and_limits() -> None:
    stats = agreement([11.0, 9.0, 12.0, math.nan], [10.0, 10.0, 10.0, 10.0])
    assert stats["n"] == 3 and stats["n_unmeasured"] == 1
    assert stats["mean_difference"] == pytest.approx(2 / 3)
    assert stats["mad"] == pytest.approx(4 / 3)
    sd = np.std([1.0, -1.0, 2.0], ddof=1)
    assert stats["loa_high"] == pytest.approx(2 / 3 + 1.96 * sd)


def test_bland_altman_writes_a_png(tmp_path: Path) -> None:
    path = bland_altman(tmp_path / "ba.png", [1.0, 2.0, 3.5], [1.1, 2.2, 3.0], "HC", "mm")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_volume_agreement_is_per_structure_without_the_background() -> None:
    truth = np.zeros((2, 6, 6, 6), np.uint8)
    truth[:, 1:3, 1:3, 1:3] = 1  # 8 voxels
    truth[:, 4:6, 4:6, 4:6] = 2  # 8 voxels
    predicted = truth.copy()
    predicted[0, 0, 0, 0] = 1  # one voxel too many in case 0
    stats, volumes = volume_agreement(predicted, truth, np.full((2, 3), 2.0), ["bg", "a", "p"])
    assert set(stats) == {"a", "p"}
    assert volumes["a"][:, 0].tolist() == [72.0, 64.0]  # 9 and 8 voxels of 8 mm^3
    assert stats["a"]["mean_difference"] == pytest.approx(4.0)
    assert stats["p"]["mad"] == 0.0
