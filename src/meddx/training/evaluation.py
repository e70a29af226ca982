"""Scoring a single-label classifier once on its test split: shared by every evaluate stage.

Headline figures (MedMNIST-style AUC/ACC and balanced accuracy) plus per-class
sensitivity, specificity, PPV and F1 from the confusion matrix; the matrix as the
`actual,predicted` CSV that DVC's `confusion` plot template reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meddx.training import metrics


def confusion_csv(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> str:
    pairs = zip(y_true, y_pred, strict=True)
    rows = ["actual,predicted"] + [f"{names[a]},{names[p]}" for a, p in pairs]
    return "\n".join(rows) + "\n"


def single_label_report(task: str, y_true: np.ndarray, scores: np.ndarray,
                        names: list[str]) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """`({test_<headline>..., per_class: {name: {...}}}, predictions, confusion matrix)`."""
    headline = metrics.summary(task, y_true, scores)
    result: dict[str, Any] = {f"test_{k}": v for k, v in headline.items()}
    y_pred = metrics.predictions(task, scores)
    matrix = metrics.confusion_matrix(y_true, y_pred, len(names))
    result["per_class"] = dict(zip(names, metrics.per_class(matrix), strict=True))
    return result, y_pred, matrix


def flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """MLflow metric names for a report: nested per-class figures become `<class>.<metric>`."""
    flat = {k: v for k, v in result.items() if not isinstance(v, dict)}
    flat |= {f"{name}.{k}": v for name, row in result.get("per_class", {}).items()
             for k, v in row.items()}
    return flat
