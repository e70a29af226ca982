"""Evaluate one classifier's test scores: the layout every evaluation stage writes.

`score` is pure (labels and probabilities in, numbers and curves out); `write_plots` turns the
result into DVC plot data (`dvc plots show/diff`) and PNG figures (MLflow, the report);
`explain` draws the Grad-CAM grid of a CNN; `log` sends it all to the stage's MLflow run.
An RNN evaluation calls the same functions with its own scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from torch import nn

from meddx import metrics
from meddx.evaluation import figures, stats
from meddx.io import write_json, write_text
from meddx.tracking import StageRun

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
    intervals = (
        stats.bootstrap_ci(
            lambda idx: stats.headline(task, y_true[idx], y_score[idx], bins),
            n,
            settings.bootstrap,
            seed,
            settings.confidence,
        )
        if settings.bootstrap
        else {}
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


def _dvc_curve(curves: dict[str, list[dict[str, float]]]) -> list[dict[str, float]]:
    """The one curve DVC draws: the positive class (binary) or the micro-average."""
    return curves.get("micro-average") or next(iter(curves.values()))


def confusion_csv(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> str:
    rows = ["actual,predicted"] + [
        f"{names[a]},{names[p]}" for a, p in zip(y_true, y_pred, strict=True)
    ]
    return "\n".join(rows) + "\n"


def write_plots(evaluation: Evaluation, plots: Path) -> list[Path]:
    """DVC plot data (roc.json, pr.json, calibration.json, confusion.csv) and their PNGs."""
    write_json(plots / "roc.json", {"roc": _dvc_curve(evaluation.roc)})
    write_json(plots / "pr.json", {"pr": _dvc_curve(evaluation.pr)})
    write_json(plots / "calibration.json", {"calibration": evaluation.calibration})
    auc = evaluation.metrics.get("test_auc", math.nan)
    pngs = [
        figures.curves(
            plots / "roc.png",
            evaluation.roc,
            "fpr",
            "tpr",
            f"ROC (test AUC {auc:.3f})",
            diagonal=True,
        ),
        figures.curves(
            plots / "pr.png",
            evaluation.pr,
            "recall",
            "precision",
            f"Precision-recall (AP {evaluation.metrics['test_ap']:.3f})",
            diagonal=False,
        ),
        figures.reliability(
            plots / "reliability.png", evaluation.calibration, evaluation.metrics["test_ece"]
        ),
    ]
    if evaluation.matrix is not None:
        flat_true = evaluation.y_true.reshape(-1)
        write_text(
            plots / "confusion.csv", confusion_csv(flat_true, evaluation.y_pred, evaluation.names)
        )
        pngs.append(figures.confusion(plots / "confusion.png", evaluation.matrix, evaluation.names))
    return pngs


def _picks(
    evaluation: Evaluation, task: str, per_outcome: int, seed: int
) -> tuple[list[list[tuple[int, bool]]], list[int], list[int]]:
    """Per class, a seeded sample of correct then wrong test cases, and the class to explain.

    Single-label cases are explained for the predicted class (why the model said what it
    said); multi-label rows for the row's label on cases that carry it.
    """
    from meddx.evaluation import explain as cam

    y_true, y_pred = evaluation.y_true, evaluation.y_pred
    rows, picks, targets = [], [], []
    for k in range(len(evaluation.names)):
        if task == "multi-label":
            member, correct = y_true[:, k] == 1, y_pred[:, k] == 1
            target = np.full(len(y_true), k)
        else:
            flat = y_true.reshape(-1)
            member, correct, target = flat == k, y_pred == flat, y_pred
        chosen = cam.sample(member, correct, per_outcome, seed + k)
        rows.append([(i, bool(correct[i])) for i in chosen])
        picks += chosen
        targets += [int(target[i]) for i in chosen]
    return rows, picks, targets


def _cells(
    rows: list[list[tuple[int, bool]]],
    per_outcome: int,
    evaluation: Evaluation,
    task: str,
    content: Callable[[int], dict[str, Any]],
) -> list[list[dict[str, Any] | None]]:
    """Grid rows: correct cases, padding, then wrong ones, each cell `content(i)` + its label."""
    names, y_pred = evaluation.names, evaluation.y_pred
    grid = []
    for k, row in enumerate(rows):
        right = [i for i, ok in row if ok]
        wrong = [i for i, ok in row if not ok]
        padded = right + [None] * (per_outcome - len(right)) + wrong
        grid.append(
            [
                None
                if i is None
                else content(i)
                | {
                    "correct": i in right,
                    "label": (
                        f"pred {names[int(y_pred[i])]}"
                        if task != "multi-label"
                        else f"{names[k]}: {'yes' if y_pred[i, k] else 'no'}"
                    ),
                }
                for i in padded
            ]
        )
    return grid


def explain(
    net: nn.Module,
    images: np.ndarray,
    evaluation: Evaluation,
    task: str,
    per_outcome: int,
    seed: int,
    path: Path,
) -> Path | None:
    """Grad-CAM grid: per class, correct then wrong test predictions; None for non-CNNs."""
    from meddx.evaluation import explain as cam

    layer = cam.target_layer(net)
    if layer is None or images.ndim != 4:
        return None
    rows, picks, targets = _picks(evaluation, task, per_outcome, seed)
    if not picks:
        return None
    heat = dict(zip(picks, cam.gradcam(net, images[picks], np.array(targets), layer), strict=True))
    cells = _cells(
        rows, per_outcome, evaluation, task, lambda i: {"image": images[i], "heat": heat[i]}
    )
    return figures.heatmap_grid(
        path,
        cells,
        evaluation.names,
        f"Grad-CAM ({layer}): {per_outcome} correct | wrong per class",
    )


def explain_beats(
    net: nn.Module,
    beats: np.ndarray,
    rr: np.ndarray,
    evaluation: Evaluation,
    per_outcome: int,
    seed: int,
    path: Path,
) -> Path | None:
    """Input-gradient saliency over a few test beats per class, correct then wrong."""
    from meddx.evaluation import explain as cam

    rows, picks, targets = _picks(evaluation, "multi-class", per_outcome, seed)
    if not picks:
        return None
    heat = cam.beat_saliency(net, beats[picks], rr[picks], np.array(targets))
    saliency = dict(zip(picks, heat, strict=True))
    cells = _cells(
        rows,
        per_outcome,
        evaluation,
        "multi-class",
        lambda i: {"beat": beats[i][0], "heat": saliency[i].max(axis=0)},
    )
    return figures.saliency_grid(
        path,
        cells,
        evaluation.names,
        f"Saliency |d logit / d beat|: {per_outcome} correct | wrong per class",
    )


def flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """Metrics JSON as MLflow metric names: headline keys as is, `<class>.<figure>` per class."""
    flat = {k: float(v) for k, v in result.items() if isinstance(v, int | float)}
    flat |= {
        f"{name}.{k}": float(v)
        for name, row in result.get("per_class", {}).items()
        for k, v in row.items()
    }
    return {k: v for k, v in flat.items() if math.isfinite(v)}


def _cell(result: dict[str, Any], key: str) -> str:
    value = result[f"test_{key}"]
    low, high = result.get(f"test_{key}_ci_low"), result.get(f"test_{key}_ci_high")
    return f"{value:.4f} [{low:.4f}, {high:.4f}]" if low is not None else f"{value:.4f}"


def note(result: dict[str, Any], title: str) -> str:
    """The run description MLflow shows first on the run page: the headline figures with CIs."""
    level = "95% CI" if result.get("bootstrap") else "no CI"
    lines = [f"**{title}**", "", f"| metric | test value [{level}] |", "|---|---|"]
    lines += [f"| {key} | {_cell(result, key)} |" for key in HEADLINE if f"test_{key}" in result]
    tail = f"{result['n_test']} test samples, {result['bootstrap']} resamples."
    return "\n".join([*lines, "", tail]) + "\n"


def log(run: StageRun, result: dict[str, Any], metrics_path: Path, plots: Path, title: str) -> None:
    run.log_metrics(flat_metrics(result))
    run.set_tags({"mlflow.note.content": note(result, title)})
    run.log_artifact(metrics_path, "metrics")
    for path in sorted(plots.iterdir()):
        run.log_artifact(path, "plots")
