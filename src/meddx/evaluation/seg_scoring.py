"""Score a segmentation model's test predictions: per-structure Dice, 95% Hausdorff distance
and mean surface distance in mm, with percentile-bootstrap intervals over cases.

MONAI's metrics (`DiceMetric` through `meddx.training.segmentation`, the one Dice that also
picks the best epoch; `HausdorffDistanceMetric`, `SurfaceDistanceMetric`), with the voxel
spacing of the data facts, so the distances are millimetres: per test case when the dataset
has them (`facts["case_spacing"]["test"]`, from the npz's optional `test_spacing`: an
ultrasound's pixel size differs between images), else the dataset's (`facts["spacing"]`, mm
per axis in the arrays' axis order). A dataset that states none is scored at 1.0 per axis
and says so (`spacing_source`): its distances are pixels, not mm.

A distance needs both surfaces: a case whose prediction misses a structure its ground truth
holds has no HD95 (MONAI gives NaN); it is counted as `missed` per structure, and it shows
in the Dice (0) and the worst cases, rather than being filled with an invented distance.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig

from meddx.evaluation.stats import configured_ci
from meddx.training.segmentation import dice_per_case, one_hot

FIGURES = ("dice", "hd95_mm", "msd_mm")
WORST = 5  # worst cases (lowest mean Dice) listed in the metrics and shown in the overlays


@dataclass
class SegEvaluation:
    """Everything computed from one model's test masks."""

    metrics: dict[str, Any]
    per_case: dict[str, np.ndarray]  # figure -> (N, structures)
    y_true: np.ndarray  # (N, *spatial) class indices
    y_pred: np.ndarray
    names: list[str]  # background first
    spacing: list[list[float]]  # mm per axis of each case
    dataset: str  # the data facts' name, which every figure states


def spacing_of(
    facts: Mapping[str, Any] | None, n: int, spatial_dims: int
) -> tuple[list[list[float]], str]:
    """(mm per axis of each of the `n` test cases, where it came from)."""
    facts = facts or {}
    per_case = facts.get("case_spacing", {}).get("test")
    if per_case is not None:
        return [[float(s) for s in row] for row in per_case], "per case (test_spacing)"
    stated = facts.get("spacing")
    if stated is None:
        return [[1.0] * spatial_dims] * n, "none stated: 1.0 per axis assumed (pixels, not mm)"
    return [[float(s) for s in stated]] * n, "data facts (data.image.spacing)"


def surface_distances(
    predicted: np.ndarray, target: np.ndarray, num_classes: int, spacing: list[list[float]]
) -> dict[str, np.ndarray]:
    """(N, structures) HD95 and symmetric mean surface distance, in the units of `spacing`."""
    from monai.metrics import HausdorffDistanceMetric, SurfaceDistanceMetric

    pred, true = one_hot(predicted, num_classes), one_hot(target, num_classes)
    hd95 = HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")
    msd = SurfaceDistanceMetric(include_background=False, symmetric=True, reduction="none")
    with warnings.catch_warnings():  # an empty surface is a NaN here, counted as `missed`
        warnings.filterwarnings("ignore", message=".* is all 0, this may result in nan/inf")
        return {
            "hd95_mm": hd95(pred, true, spacing=spacing).numpy(),
            "msd_mm": msd(pred, true, spacing=spacing).numpy(),
        }


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def _figures(per_case: Mapping[str, np.ndarray], names: list[str]) -> dict[str, float]:
    """Means over cases: per structure (`<name>.<figure>`) and over structures (`<figure>`)."""
    found = {figure: _mean(values) for figure, values in per_case.items()}
    for k, name in enumerate(names[1:]):
        found |= {f"{name}.{figure}": _mean(values[:, k]) for figure, values in per_case.items()}
    return found


def case_dice(per_case: Mapping[str, np.ndarray]) -> np.ndarray:
    """Each case's mean Dice over the structures it holds (NaN for an empty ground truth)."""
    dice = per_case["dice"]
    held = np.isfinite(dice)
    return np.where(held.any(axis=1), np.nansum(dice, axis=1) / held.sum(axis=1).clip(1), np.nan)


def score(
    names: list[str],
    y_true: np.ndarray,
    y_score: np.ndarray,
    settings: DictConfig,
    seed: int,
    facts: Mapping[str, Any] | None,
) -> SegEvaluation:
    """Test figures with bootstrap CIs over cases, per structure, and the worst cases."""
    num_classes, n = len(names), len(y_true)
    y_pred = y_score.argmax(axis=1).astype(np.uint8)
    spacing, source = spacing_of(facts, n, y_true.ndim - 1)
    per_case = {"dice": dice_per_case(y_pred, y_true, num_classes)}
    per_case |= surface_distances(y_pred, y_true, num_classes, spacing)
    point = _figures(per_case, names)
    intervals = configured_ci(
        lambda idx: _figures({k: v[idx] for k, v in per_case.items()}, names), n, settings, seed
    )
    result: dict[str, Any] = {}
    for key in FIGURES:
        result[f"test_{key}"] = point[key]
        if key in intervals:
            result[f"test_{key}_ci_low"], result[f"test_{key}_ci_high"] = intervals[key]
    per_class: dict[str, dict[str, float]] = {}
    for k, name in enumerate(names[1:], start=1):
        row: dict[str, float] = {}
        for figure in FIGURES:
            row[figure] = point[f"{name}.{figure}"]
            if f"{name}.{figure}" in intervals:
                row[f"{figure}_ci_low"], row[f"{figure}_ci_high"] = intervals[f"{name}.{figure}"]
        held = (y_true == k).reshape(n, -1).any(axis=1)
        found = (y_pred == k).reshape(n, -1).any(axis=1)
        row |= {"n_cases": int(held.sum()), "missed": int((held & ~found).sum())}
        per_class[name] = row
    dice = case_dice(per_case)
    order = [int(i) for i in np.argsort(np.where(np.isfinite(dice), dice, np.inf))]
    result |= {
        "per_class": per_class,
        "worst_cases": [{"index": i, "dice": float(dice[i])} for i in order[:WORST]],
        "empty_masks": int((~np.isfinite(dice)).sum()),
        "n_test": n,
        "bootstrap": settings.bootstrap,
        "spacing_mm": spacing[0] if all(row == spacing[0] for row in spacing) else "per case",
        "spacing_source": source,
    }
    dataset = str((facts or {}).get("name", "unnamed dataset"))
    return SegEvaluation(result, per_case, np.asarray(y_true), y_pred, names, spacing, dataset)
