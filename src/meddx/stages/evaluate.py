"""Stage `evaluate`: score the exported CNN once on the test split.

The test split is touched here and nowhere else; model selection happened on validation in
`train_cnn`. Headline figures go to `dvc metrics`, curves and the confusion matrix to
`dvc plots`, and everything to MLflow.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from meddx.data.npz import load_npz
from meddx.io import write_json, write_text
from meddx.paths import Layout, require
from meddx.tracking import stage_run
from meddx.training import export, metrics
from meddx.training.predict import probabilities

STAGE = "evaluate"
SECTIONS = ("seed", "trainer.num_threads")
METRIC_UNSAFE = re.compile(r"[^\w\-. :/]")  # what MLflow refuses in a metric name


def roc_points(y_true: np.ndarray, score: np.ndarray) -> list[dict[str, float]]:
    """ROC curve of one binary problem, one point per distinct threshold."""
    order = np.argsort(-score, kind="mergesort")
    y = np.asarray(y_true, dtype=bool)[order]
    s = score[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    pos, neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    points = [{"fpr": 0.0, "tpr": 0.0, "threshold": 1.0}]
    points += [{"fpr": float(f / neg), "tpr": float(t / pos), "threshold": float(s[i])}
               for f, t, i in zip(fps, tps, distinct, strict=True)]
    return points


def confusion_csv(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> str:
    rows = ["actual,predicted"] + [f"{names[a]},{names[p]}" for a, p in zip(y_true, y_pred, strict=True)]
    return "\n".join(rows) + "\n"


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    model_path = require(layout.model_dir("cnn") / "model.pt", layout.root)
    images = require(layout.processed_images, layout.root)
    torch.set_num_threads(cfg.trainer.num_threads)
    net, info = export.load(model_path)
    task, names = info["task"], info["class_names"]
    arrays = load_npz(images, keys=("test_images", "test_labels"))
    with stage_run(cfg, STAGE, inputs=[model_path, images], run_name=f"{STAGE} cnn",
                   sections=SECTIONS) as tracked:
        y_true = arrays["test_labels"]
        scores = probabilities(net, (arrays["test_images"],), task)
        headline = metrics.summary(task, y_true, scores)
        result: dict[str, Any] = {f"test_{k}": v for k, v in headline.items()}
        plots = layout.plots(STAGE)
        per_class = metrics.per_class_report(task, y_true, scores, names)
        result["test_macro_f1"] = float(np.nanmean([row["f1"] for row in per_class.values()]))
        result["per_class"] = per_class
        if task != "multi-label":
            y_pred = metrics.predictions(task, scores)
            write_text(plots / "confusion.csv", confusion_csv(y_true.reshape(-1), y_pred, names))
            onehot = y_true.reshape(-1)[:, None] == np.arange(len(names))
            # Binary: the positive class; otherwise the micro-averaged one-vs-rest curve.
            curve = (roc_points(onehot[:, 1], scores[:, 1]) if len(names) == 2
                     else roc_points(onehot.ravel(), scores.ravel()))
            write_json(plots / "roc.json", {"roc": curve})
        write_json(layout.metrics(STAGE), result)
        flat = {k: v for k, v in result.items() if not isinstance(v, dict)}
        # MLflow refuses commas and the like in metric names ("normal, benign" is a real class).
        flat |= {f"{METRIC_UNSAFE.sub('_', name)}.{k}": v
                 for name, row in result.get("per_class", {}).items() for k, v in row.items()}
        tracked.log_metrics(flat)
        tracked.log_artifact(layout.metrics(STAGE), "metrics")
        if plots.exists():
            tracked.log_artifact(plots, "plots")
    return result
