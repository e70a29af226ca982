"""Per-case spacing: HC18 images differ in mm per pixel, so distances are scored per case."""

from __future__ import annotations

import numpy as np
import pytest

from meddx.errors import DataError
from meddx.evaluation.seg_scoring import spacing_of, surface_distances


def test_the_per_case_spacing_wins_over_the_dataset_spacing() -> None:
    facts = {"spacing": [1.0, 1.0], "case_spacing": [[0.5, 0.5], [0.2, 0.3]]}
    spacing, source = spacing_of(facts, 2, 2)
    assert spacing == [[0.5, 0.5], [0.2, 0.3]] and source.startswith("per case")


def test_a_per_case_spacing_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(DataError, match="2 rows for 3 test cases"):
        spacing_of({"case_spacing": [[1.0, 1.0], [1.0, 1.0]]}, 2, 3)


def test_the_same_masks_at_twice_the_spacing_are_twice_as_far_apart() -> None:
    truth = np.zeros((2, 32, 32), np.uint8)
    truth[:, 8:20, 8:20] = 1
    predicted = np.zeros_like(truth)
    predicted[:, 10:22, 8:20] = 1  # shifted by 2 rows
    found = surface_distances(predicted, truth, 2, [[1.0, 1.0], [2.0, 2.0]])
    assert found["hd95_mm"][1, 0] == pytest.approx(2 * found["hd95_mm"][0, 0])
