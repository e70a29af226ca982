"""Confidence intervals, calibration and curves for classifier scores.

The bootstrap path (`headline`, run once per resample) is numpy and no torch, small and
vectorised; the curves, drawn once per evaluation, are scikit-learn's, imported when drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from meddx import metrics


def bootstrap_ci(
    statistic: Callable[[np.ndarray], Mapping[str, float]],
    n: int,
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap interval of every value `statistic(indices)` returns.

    `statistic` receives the indices of one resample (n draws with replacement from n
    samples). Resamples where a value is undefined (an AUC of a resample holding one class)
    are left out of that value's interval rather than failing the whole evaluation.
    """
    rng = np.random.default_rng(seed)
    draws = [statistic(rng.integers(0, n, size=n)) for _ in range(n_boot)]
    tails = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    intervals = {}
    for key in draws[0] if draws else ():
        values = np.array([d[key] for d in draws], dtype=np.float64)
        values = values[np.isfinite(values)]
        low, high = np.percentile(values, tails) if len(values) else (np.nan, np.nan)
        intervals[key] = (float(low), float(high))
    return intervals


def configured_ci(
    statistic: Callable[[np.ndarray], Mapping[str, float]], n: int, settings: Any, seed: int
) -> dict[str, tuple[float, float]]:
    """`bootstrap_ci` with the `evaluate` settings' resamples and level; none for 0 resamples."""
    if not settings.bootstrap:
        return {}
    return bootstrap_ci(statistic, n, settings.bootstrap, seed, settings.confidence)


def top_label(task: str, y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) of every decision the model makes.

    Single-label tasks: the probability of the predicted class and whether it is right.
    Multi-label: every (sample, label) decision, with the probability of the side chosen.
    """
    pred = metrics.predictions(task, y_score)
    if task == "multi-label":
        p = np.asarray(y_score, dtype=np.float64).ravel()
        return np.where(p > 0.5, p, 1 - p), (pred.ravel() == np.asarray(y_true).ravel())
    confidence = np.asarray(y_score, dtype=np.float64)[np.arange(len(pred)), pred]
    return confidence, pred == np.asarray(y_true).reshape(-1)


def calibration_bins(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int
) -> list[dict[str, float]]:
    """Equal-width confidence bins (lo, hi]; one row per non-empty bin."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.digitize(confidence, edges[1:-1], right=True)
    rows = []
    for b in range(n_bins):
        mask = which == b
        if mask.any():
            rows.append(
                {
                    "bin_low": float(edges[b]),
                    "bin_high": float(edges[b + 1]),
                    "confidence": float(confidence[mask].mean()),
                    "accuracy": float(np.mean(correct[mask])),
                    "count": int(mask.sum()),
                }
            )
    return rows


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    """ECE (Guo et al. 2017): sum over bins of |accuracy - confidence| weighted by bin size."""
    n = len(confidence)
    return float(
        sum(
            row["count"] / n * abs(row["accuracy"] - row["confidence"])
            for row in calibration_bins(confidence, correct, n_bins)
        )
    )


def headline(task: str, y_true: np.ndarray, y_score: np.ndarray, n_bins: int) -> dict[str, float]:
    """The figures that get confidence intervals: AUC, ACC, balanced ACC, ECE."""
    result = metrics.summary(task, y_true, y_score)
    result["ece"] = expected_calibration_error(*top_label(task, y_true, y_score), n_bins)
    return result


def roc_points(y_true: np.ndarray, score: np.ndarray) -> list[dict[str, float]]:
    """ROC curve of one binary problem (scikit-learn's), one point per distinct threshold.

    Every point is kept (`drop_intermediate=False`), as the committed plot data hold them. The
    (0, 0) start carries threshold 1.0, where scikit-learn puts infinity, which JSON lacks.
    """
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(y_true, score, drop_intermediate=False)
    thresholds[0] = 1.0
    return [
        {"fpr": float(f), "tpr": float(t), "threshold": float(s)}
        for f, t, s in zip(fpr, tpr, thresholds, strict=True)
    ]


def _precision_recall(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    """scikit-learn's precision-recall curve in rising recall, from (recall 0, precision 1)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y_true, score)
    return precision[::-1], recall[::-1], np.r_[1.0, thresholds[::-1]]


def pr_points(y_true: np.ndarray, score: np.ndarray) -> list[dict[str, float]]:
    """Precision-recall curve of one binary problem, starting at recall 0, precision 1."""
    return [
        {"recall": float(r), "precision": float(p), "threshold": float(t)}
        for p, r, t in zip(*_precision_recall(y_true, score), strict=True)
    ]


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """scikit-learn's average precision: precision times the recall gained, summed over the curve.

    Summed in rising recall rather than by `average_precision_score`, which adds the same
    terms in falling recall: that order differs in the last bits (up to 4.4e-16, in 1357 of
    2994 random problems) and would change the committed AP figures for no gain. NaN without
    positives, where scikit-learn warns and returns a meaningless value.
    """
    if not np.asarray(y_true, dtype=bool).any():
        return float("nan")
    precision, recall, _ = _precision_recall(y_true, score)
    return float(np.sum(np.diff(recall) * precision[1:]))


def one_vs_rest(
    task: str, y_true: np.ndarray, y_score: np.ndarray, names: list[str], every_class: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(is this class, score of this class) per class that has a curve of its own.

    Binary tasks have one, the positive class (the other's curve mirrors it), unless
    `every_class`; multi-class and multi-label tasks have one per class.
    """
    if task == "multi-label":
        labels = np.asarray(y_true, dtype=bool)
        return {name: (labels[:, k], y_score[:, k]) for k, name in enumerate(names)}
    flat = np.asarray(y_true).reshape(-1)
    classes = [len(names) - 1] if len(names) == 2 and not every_class else range(len(names))
    return {names[k]: (flat == k, y_score[:, k]) for k in classes}


def micro(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """All one-vs-rest decisions pooled: the single curve DVC plots for a multi-class task."""
    return (
        np.concatenate([y for y, _ in curves.values()]),
        np.concatenate([s for _, s in curves.values()]),
    )
