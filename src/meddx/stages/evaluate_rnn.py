"""Stage `evaluate_rnn`: score the exported beat classifier once on the test split (DS2).

Reports what the inter-patient literature reports: overall accuracy and, per AAMI class,
sensitivity (Se), positive predictive value (+P) and F1. Refuses a model whose training or
validation records include a test record, so a leaky model cannot produce a headline figure.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from meddx.data.beats import check_records_disjoint, load_beats
from meddx.io import write_json, write_text
from meddx.paths import Layout, require
from meddx.tracking import stage_run
from meddx.training import export
from meddx.training.evaluation import confusion_csv, flat_metrics, single_label_report
from meddx.training.predict import probabilities

STAGE = "evaluate_rnn"
SECTIONS = ("seed", "trainer.num_threads")


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    model_path = require(layout.model_dir("rnn") / "model.pt", layout.root)
    ecg = require(layout.processed_ecg, layout.root)
    torch.set_num_threads(cfg.trainer.num_threads)
    net, info = export.load(model_path)
    names = list(info["class_names"])
    arrays = load_beats(ecg, ("test",))
    seen = {split: np.asarray(recs, dtype=np.int64)
            for split, recs in info.get("records", {}).items()}
    check_records_disjoint({**seen, "test": arrays["test_records"]}, model_path,
                           fix="retrain it with `dvc repro train_rnn` on the current ecg.npz")
    with stage_run(cfg, STAGE, inputs=[model_path, ecg], run_name=f"{STAGE} rnn",
                   sections=SECTIONS) as tracked:
        y_true = arrays["test_labels"]
        scores = probabilities(net, (arrays["test_beats"], arrays["test_rr"]), info["task"])
        result, y_pred, matrix = single_label_report(info["task"], y_true, scores, names)
        result["test_beats"] = len(y_true)
        result["test_records"] = len(np.unique(arrays["test_records"]))
        plots = layout.plots(STAGE)
        write_text(plots / "confusion.csv", confusion_csv(y_true, y_pred, names))
        write_json(plots / "confusion_matrix.json",
                   {"labels": names, "rows": "actual", "columns": "predicted",
                    "matrix": matrix.tolist()})
        write_json(layout.metrics(STAGE), result)
        tracked.log_metrics(flat_metrics(result))
        tracked.log_artifact(layout.metrics(STAGE), "metrics")
        tracked.log_artifact(plots, "plots")
    return result
