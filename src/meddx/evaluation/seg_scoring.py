"""Score a segmentation model's test predictions: per-structure Dice, 95% Hausdorff distance
and mean surface distance in mm, with percentile-bootstrap intervals over cases.

MONAI's metrics (`DiceMetric` through `meddx.training.segmentation`, the one Dice that also
picks the best epoch; `HausdorffDistanceMetric`, `SurfaceDistanceMetric`), with the voxel
spacing of each case (`facts["case_spacing"]`, which a source such as HC18 records per image,
else the dataset's `facts["spacing"]`; mm per axis in the arrays' axis order), so the
distances are millimetres. A dataset that states no spacing is scored at 1.0 per axis and
says so (`spacing_source`): its distances are pixels, not mm.

A distance needs both surfaces: a case whose prediction misses a structure its ground truth
holds has no HD95 (MONAI gives NaN); it is counted as `missed` per structure, and it shows
in the Dice (0) and the worst cases, rather than being filled with an invented distance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig

from meddx.errors import DataError
from meddx.evaluation.stats import bootstrap_ci
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
    facts: Mapping[str, Any] | None, spatial_dims: int, n: int
) -> tuple[list[list[float]], str]:
    """(mm per axis of each of the `n` cases, where it came from): the per-case spacing of the
    data, else the dataset's `spacing`, else 1.0 per axis."""
    facts = facts or {}
    if facts.get("case_spacing") is not None:
        cases = [[float(s) for s in row] for row in facts["case_spacing"]]
        if len(cases) != n or any(len(row) != spatial_dims for row in cases):
            raise DataError(
                f"the per-case spacing holds {len(cases)} rows for {n} test cases of "
                f"{spatial_dims} axes: the processed file's test_spacing does not fit its images"
            )
        return cases, "per case (test_spacing of the processed data)"
    stated = facts.get("spacing")
    if stated is None:
        return [[1.0] * spatial_dims] * n, "none stated: 1.0 per axis assumed (pixels, not mm)"
    return [[float(s) for s in stated]] * n, "data facts (data.image.spacing)"


def _spacing_summary(spacing: list[list[float]]) -> list[float] | dict[str, list[float]]:
    """The one spacing of every case, or the per-axis range when the cases differ."""
    if all(row == spacing[0] for row in spacing):
        return spacing[0]
    array = np.asarray(spacing)
    return {"min": array.min(axis=0).tolist(), "max": array.max(axis=0).tolist()}


def surface_distances(
    predicted: np.ndarray, target: np.ndarray, num_classes: int, spacing: list[list[float]]
) -> dict[str, np.ndarray]:
    """(N, structures) HD95 and symmetric mean surface distance, in the units of `spacing`
    (one row per case)."""
    from monai.metrics import HausdorffDistanceMetric, SurfaceDistanceMetric

    pred, true = one_hot(predicted, num_classes), one_hot(target, num_classes)
    hd95 = HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")
    msd = SurfaceDistanceMetric(include_background=False, symmetric=True, reduction="none")
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
    spacing, source = spacing_of(facts, y_true.ndim - 1, n)
    per_case = {"dice": dice_per_case(y_pred, y_true, num_classes)}
    per_case |= surface_distances(y_pred, y_true, num_classes, spacing)
    point = _figures(per_case, names)
    intervals = (
        bootstrap_ci(
            lambda idx: _figures({k: v[idx] for k, v in per_case.items()}, names),
            n,
            settings.bootstrap,
            seed,
            settings.confidence,
        )
        if settings.bootstrap
        else {}
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
        "spacing_mm": _spacing_summary(spacing),
        "spacing_source": source,
    }
    dataset = str((facts or {}).get("name", "unnamed dataset"))
    return SegEvaluation(result, per_case, np.asarray(y_true), y_pred, names, spacing, dataset)
