"""Stage `evaluate_rnn`: score the exported beat classifier once on the test split (DS2).

Reports what the inter-patient literature reports: overall accuracy and, per AAMI class,
sensitivity (Se), positive predictive value (+P) and F1, through the same evaluation task as
the CNN (`meddx.evaluation.tasks`), and the temperature that task fits on the validation
records (DS1's held-out records, never DS2); the model with that temperature is the run's
artifact `model/model.pt`, what `predict.model=<run id>` reads. Refuses a model whose
training or validation records include a test record, so a leaky model cannot produce a
headline figure.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from meddx.data.ecg_beat_file import check_records_disjoint, load_beats
from meddx.evaluation import tasks
from meddx.io import write_json
from meddx.models import export
from meddx.paths import Layout, require
from meddx.tracking import DatasetRead, stage_run

STAGE = "evaluate_rnn"
MODEL = "rnn"
SECTIONS = ("seed", "trainer.num_threads", "trainer.numerics", "evaluate")


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    model_path = require(layout.model_dir(MODEL) / "model.pt", layout.root)
    ecg = require(layout.processed_ecg, layout.root)
    facts = json.loads(require(layout.processed_ecg_meta, layout.root).read_text())
    dataset = facts["name"]
    torch.set_num_threads(cfg.trainer.num_threads)
    net, info = export.load(model_path)
    names = list(info["class_names"])
    arrays = load_beats(ecg, ("val", "test"))
    columns = info.get("rr_columns", slice(None))  # the RR features the model was fed
    rr = arrays["test_rr"][:, columns]
    seen = {
        split: np.asarray(recs, dtype=np.int64) for split, recs in info.get("records", {}).items()
    }
    check_records_disjoint(
        {**seen, "test": arrays["test_records"]},
        model_path,
        fix="retrain it with `dvc repro train_rnn` on the current ecg.npz",
    )
    title = f"{STAGE} {MODEL} on {dataset}"
    test = DatasetRead(ecg, facts, ("test",), "evaluation")
    with stage_run(
        cfg, STAGE, [model_path, ecg], run_name=title, sections=SECTIONS, dataset=test
    ) as tracked:
        task, inputs = tasks.of(info["task"]), (arrays["test_beats"], rr)
        evaluation = task.score(
            names, arrays["test_labels"], task.predict(net, inputs), cfg.evaluate, cfg.seed
        )
        validation = ((arrays["val_beats"], arrays["val_rr"][:, columns]), arrays["val_labels"])
        calibrated = task.calibrate(net, validation, (inputs, arrays["test_labels"]), cfg.evaluate)
        plots = layout.plots(STAGE)
        task.write_plots(evaluation, plots)
        task.explain(net, inputs, evaluation, cfg.evaluate, cfg.seed, plots)
        result = (
            evaluation.metrics
            | calibrated.metrics
            | {"test_records": len(np.unique(arrays["test_records"]))}
        )
        write_json(layout.metrics(STAGE), result)
        task.log(tracked, result, layout.metrics(STAGE), plots, title)
        if calibrated.stored is not None:  # `predict.model=<this run>` reads model/model.pt
            with tempfile.TemporaryDirectory() as tmp:
                stored = Path(tmp) / model_path.name
                export.save_with_info(model_path, stored, calibration=calibrated.stored)
                tracked.log_artifact(stored, "model")
    return result
