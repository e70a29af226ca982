"""An `Evaluation` as files: DVC plot data (`dvc plots show/diff`) and PNG figures (MLflow, the
report), under the same names for every evaluation stage."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from meddx.evaluation import figures
from meddx.evaluation.scoring import Evaluation
from meddx.io import write_json, write_text


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
