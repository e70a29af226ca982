"""Classification metrics computed the way MedMNIST computes them, in numpy.

AUC: binary uses the score of the positive class; multi-class averages one-vs-rest AUCs;
multi-label averages per-label AUCs. ACC: argmax for multi-class, threshold 0.5 on the
positive-class score for binary and on every label for multi-label. The AUC is the
Mann-Whitney statistic with average ranks for ties, which equals scikit-learn's
`roc_auc_score` without importing it into training processes.

One definition serves training (the validation figures that pick the best epoch and score an
ensemble) and evaluation (test figures, bootstrap intervals, TSTR), so `best_val_auc` and
`test_auc` are the same statistic. It depends on numpy alone and sits in the ground layer,
below both: in `meddx.training` it would make evaluation depend on training code, in
`meddx.evaluation` training would import the layer above it.
"""

from __future__ import annotations

import numpy as np

TASKS = ("binary", "multi-class", "multi-label", "ordinal")


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank: `scipy.stats.rankdata(values)`, bit for bit.

    Kept by hand for the bootstrap, whose 1000 resamples rank every class's scores: with
    rankdata (scipy 1.17; two runs on the shared 2-core AMD EPYC) they took 1.5-1.9x as long
    at 300 samples x 4 classes (the `evaluate` stage: 1.17 s -> 2.21 s) and 1.2-2.4x at
    1276 x 5 (`evaluate_rnn`); one call on 300 scores, 3-4.7x (27 us -> 90 us).
    """
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def binary_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y_true = np.asarray(y_true).astype(bool).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    n_pos = int(y_true.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(score)
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc(task: str, y_true: np.ndarray, y_score: np.ndarray) -> float:
    y_score = np.asarray(y_score, dtype=np.float64)
    if task == "multi-label":
        return float(
            np.nanmean([binary_auc(y_true[:, i], y_score[:, i]) for i in range(y_score.shape[1])])
        )
    labels = np.asarray(y_true).reshape(-1)
    if task == "binary" or y_score.shape[1] == 2:
        return binary_auc(labels == y_score.shape[1] - 1, y_score[:, -1])
    return float(
        np.nanmean([binary_auc(labels == i, y_score[:, i]) for i in range(y_score.shape[1])])
    )


def predictions(task: str, y_score: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    if task == "multi-label":
        return (y_score > threshold).astype(np.int64)
    if task == "binary" or y_score.shape[1] == 2:
        return (y_score[:, -1] > threshold).astype(np.int64)
    return y_score.argmax(axis=1)


def accuracy(task: str, y_true: np.ndarray, y_score: np.ndarray) -> float:
    pred = predictions(task, y_score)
    if task == "multi-label":
        return float((pred == np.asarray(y_true)).mean())
    return float((pred == np.asarray(y_true).reshape(-1)).mean())


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)), 1)
    return matrix


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def per_class(matrix: np.ndarray) -> list[dict[str, float]]:
    """Sensitivity (recall), specificity, PPV (precision) and F1 per class, one-vs-rest."""
    total = matrix.sum()
    rows = []
    for k in range(matrix.shape[0]):
        tp = matrix[k, k]
        fn = matrix[k].sum() - tp
        fp = matrix[:, k].sum() - tp
        tn = total - tp - fn - fp
        se, ppv = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
        rows.append(
            {
                "sensitivity": se,
                "specificity": _ratio(tn, tn + fp),
                "ppv": ppv,
                "f1": _ratio(2 * tp, 2 * tp + fp + fn),
                "support": int(tp + fn),
            }
        )
    return rows


def summary(task: str, y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
    """Headline figures: AUC, ACC, and (single-label tasks) balanced accuracy."""
    result = {"auc": auc(task, y_true, y_score), "acc": accuracy(task, y_true, y_score)}
    if task != "multi-label":
        matrix = confusion_matrix(y_true, predictions(task, y_score), y_score.shape[1])
        recalls = [row["sensitivity"] for row in per_class(matrix) if row["support"]]
        result["balanced_acc"] = float(np.mean(recalls))
    return result


def per_class_report(
    task: str, y_true: np.ndarray, y_score: np.ndarray, names: list[str]
) -> dict[str, dict[str, float]]:
    """`per_class` rows by class name; for multi-label, each label as its own yes/no problem."""
    if task != "multi-label":
        matrix = confusion_matrix(y_true, predictions(task, y_score), len(names))
        return dict(zip(names, per_class(matrix), strict=True))
    pred = predictions(task, y_score)
    truth = np.asarray(y_true).astype(np.int64)
    return {
        name: per_class(confusion_matrix(truth[:, i], pred[:, i], 2))[1]
        for i, name in enumerate(names)
    }
