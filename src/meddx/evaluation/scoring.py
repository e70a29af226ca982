"""Score one classifier's test predictions: headline figures with bootstrap intervals, per-class
figures, curves and calibration bins.

Pure (labels and probabilities in, numbers and curves out), so the CNN and RNN evaluation
stages, a benchmark or a notebook get the same figures from the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig

from meddx import metrics
from meddx.evaluation import stats

HEADLINE = ("auc", "acc", "balanced_acc", "ece")


@dataclass
class Evaluation:
    """Everything computed from one model's test scores."""

    metrics: dict[str, Any]
    roc: dict[str, list[dict[str, float]]]
    pr: dict[str, list[dict[str, float]]]
    calibration: list[dict[str, float]]
    matrix: np.ndarray | None
    y_true: np.ndarray
    y_pred: np.ndarray
    names: list[str]


def score(
    task: str,
    names: list[str],
    y_true: np.ndarray,
    y_score: np.ndarray,
    settings: DictConfig,
    seed: int,
) -> Evaluation:
    """Headline figures with bootstrap CIs, per-class figures, curves and calibration bins."""
    n, bins = len(y_true), settings.calibration_bins
    point = stats.headline(task, y_true, y_score, bins)
    intervals = stats.configured_ci(
        lambda idx: stats.headline(task, y_true[idx], y_score[idx], bins), n, settings, seed
    )
    result: dict[str, Any] = {}
    for key in HEADLINE:
        if key in point:
            result[f"test_{key}"] = point[key]
            if key in intervals:
                result[f"test_{key}_ci_low"], result[f"test_{key}_ci_high"] = intervals[key]
    curves = stats.one_vs_rest(task, y_true, y_score, names)
    pooled = stats.micro(curves) if len(curves) > 1 else next(iter(curves.values()))
    result |= {
        "test_ap": stats.average_precision(*pooled),
        "n_test": n,
        "bootstrap": settings.bootstrap,
    }
    y_pred = metrics.predictions(task, y_score)
    per_class = metrics.per_class_report(task, y_true, y_score, names)
    result["test_macro_f1"] = float(np.nanmean([row["f1"] for row in per_class.values()]))
    matrix = None if task == "multi-label" else metrics.confusion_matrix(y_true, y_pred, len(names))
    for name, (is_class, class_score) in stats.one_vs_rest(
        task, y_true, y_score, names, every_class=True
    ).items():
        per_class[name] |= {
            "auc": metrics.binary_auc(is_class, class_score),
            "ap": stats.average_precision(is_class, class_score),
        }
    result["per_class"] = per_class
    roc = {name: stats.roc_points(*pair) for name, pair in curves.items()}
    pr = {name: stats.pr_points(*pair) for name, pair in curves.items()}
    if len(curves) > 1:
        roc["micro-average"] = stats.roc_points(*pooled)
        pr["micro-average"] = stats.pr_points(*pooled)
    calibration = stats.calibration_bins(*stats.top_label(task, y_true, y_score), bins)
    return Evaluation(result, roc, pr, calibration, matrix, np.asarray(y_true), y_pred, names)
