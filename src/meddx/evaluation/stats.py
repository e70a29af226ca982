"""Confidence intervals, calibration and curves for classifier scores, in numpy.

No scikit-learn and no torch: these run once per bootstrap resample, so they stay small and
vectorised, and every stage can afford to import them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

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


def _ranked(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct threshold, highest score first."""
    order = np.argsort(-score, kind="mergesort")
    y = np.asarray(y_true, dtype=bool)[order]
    s = np.asarray(score, dtype=np.float64)[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[distinct]
    return tps, (distinct + 1) - tps, s[distinct]


def roc_points(y_true: np.ndarray, score: np.ndarray) -> list[dict[str, float]]:
    """ROC curve of one binary problem, one point per distinct threshold."""
    tps, fps, thresholds = _ranked(y_true, score)
    pos, neg = max(int(tps[-1]), 1), max(int(fps[-1]), 1)
    points = [{"fpr": 0.0, "tpr": 0.0, "threshold": 1.0}]
    points += [
        {"fpr": float(f / neg), "tpr": float(t / pos), "threshold": float(s)}
        for f, t, s in zip(fps, tps, thresholds, strict=True)
    ]
    return points


def pr_points(y_true: np.ndarray, score: np.ndarray) -> list[dict[str, float]]:
    """Precision-recall curve of one binary problem, starting at recall 0, precision 1."""
    tps, fps, thresholds = _ranked(y_true, score)
    pos = max(int(tps[-1]), 1)
    points = [{"recall": 0.0, "precision": 1.0, "threshold": 1.0}]
    points += [
        {"recall": float(t / pos), "precision": float(t / (t + f)), "threshold": float(s)}
        for t, f, s in zip(tps, fps, thresholds, strict=True)
    ]
    return points


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """Sum of precision times the recall gained at each threshold (scikit-learn's definition)."""
    if not np.asarray(y_true, dtype=bool).any():
        return float("nan")
    points = pr_points(y_true, score)
    recall = np.array([p["recall"] for p in points])
    precision = np.array([p["precision"] for p in points])
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
