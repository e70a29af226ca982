"""Stage `evaluate`: score the exported CNN once on the test split.

The test split is touched here and nowhere else; model selection happened on validation in
`train_cnn`. Headline figures with bootstrap CIs go to `dvc metrics`, curves, calibration and
the confusion matrix to `dvc plots` (data files and PNGs), Grad-CAM explanations to a PNG grid,
everything to MLflow, and the model to the MLflow registry.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from meddx.data.npz import load_npz
from meddx.evaluation import tasks
from meddx.io import write_json
from meddx.models import export
from meddx.paths import Layout, require
from meddx.tracking import stage_run

STAGE = "evaluate"
MODEL = "cnn"
SECTIONS = ("seed", "trainer.num_threads", "trainer.numerics", "evaluate")


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    model_path = require(layout.model_dir(MODEL) / "model.pt", layout.root)
    images = require(layout.processed_images, layout.root)
    meta = require(layout.processed_images_meta, layout.root)
    facts = json.loads(meta.read_text())
    dataset = facts["name"]
    torch.set_num_threads(cfg.trainer.num_threads)
    net, info = export.load(model_path)
    task, names = tasks.of(info["task"]), info["class_names"]
    arrays = load_npz(images, keys=("test_images", "test_labels"))
    title = f"{STAGE} {MODEL} on {dataset}"
    with stage_run(
        cfg, STAGE, inputs=[model_path, images], run_name=title, sections=SECTIONS
    ) as tracked:
        x, y_true = arrays["test_images"], arrays["test_labels"]
        export.check_inputs(info["dataset_kwargs"], x, f"{model_path} on {images}")
        scores = task.predict(net, (x,))
        evaluation = task.score(names, y_true, scores, cfg.evaluate, cfg.seed, facts)
        plots = layout.plots(STAGE)
        task.write_plots(evaluation, plots)
        task.explain(net, (x,), evaluation, cfg.evaluate, cfg.seed, plots)
        result = evaluation.metrics
        write_json(layout.metrics(STAGE), result)
        task.log(tracked, result, layout.metrics(STAGE), plots, title)
        if cfg.evaluate.register:
            from meddx.evaluation.registry import register

            key = task.headline
            val_score = float(info.get("best", {}).get(f"best_val_{key}", float("nan")))
            register(
                tracked,
                net,
                np.ascontiguousarray(x[:2], dtype=np.float32),
                f"meddx-{MODEL}-{dataset}",
                val_score,
                {"dataset": dataset, f"test_{key}": f"{result[f'test_{key}']:.4f}"},
            )
    return result
