"""Stage `evaluate`: score the exported CNN once on the test split.

The test split is touched here and nowhere else; model selection happened on validation in
`train_cnn`. Headline figures with bootstrap CIs go to `dvc metrics`, curves, calibration and
the confusion matrix to `dvc plots` (data files and PNGs), Grad-CAM explanations to a PNG grid,
everything to MLflow, and the model to the MLflow registry. The validation split serves one
purpose here: the task's calibration (a temperature) is fitted on it, and the registered model
carries it, so `predict` and the served model report calibrated confidences. The model card
(`meddx.evaluation.model_card`) goes to reports/model_cards/, the run and the registered
version's description.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from meddx.data.npz import load_npz
from meddx.evaluation import model_card, tasks
from meddx.io import write_json, write_text
from meddx.models import export
from meddx.paths import Layout, require
from meddx.provenance import git_state
from meddx.tracking import DatasetRead, stage_run

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
    arrays = load_npz(images, keys=("val_images", "val_labels", "test_images", "test_labels"))
    title = f"{STAGE} {MODEL} on {dataset}"
    test = DatasetRead(images, facts, ("test",), "evaluation")
    with stage_run(
        cfg, STAGE, [model_path, images], run_name=title, sections=SECTIONS, dataset=test
    ) as tracked:
        x, y_true = arrays["test_images"], arrays["test_labels"]
        export.check_inputs(info["dataset_kwargs"], x, f"{model_path} on {images}")
        scores = task.predict(net, (x,))
        evaluation = task.score(names, y_true, scores, cfg.evaluate, cfg.seed, facts)
        validation = ((arrays["val_images"],), arrays["val_labels"])
        calibrated = task.calibrate(net, validation, ((x,), y_true), cfg.evaluate)
        plots = layout.plots(STAGE)
        task.write_plots(evaluation, plots)
        task.explain(net, (x,), evaluation, cfg.evaluate, cfg.seed, plots)
        result = evaluation.metrics | calibrated.metrics
        info = info | {"calibration": calibrated.stored}
        write_json(layout.metrics(STAGE), result)
        task.log(tracked, result, layout.metrics(STAGE), plots, title)
        name = f"meddx-{MODEL}-{dataset}"
        card = _card(cfg, layout, name, facts, result, info)
        tracked.log_text(card, "model_card.md")
        if cfg.evaluate.register:
            from meddx.evaluation.registry import register

            key = task.headline
            val_score = float(info.get("best", {}).get(f"best_val_{key}", float("nan")))
            version, _ = register(
                tracked,
                model_path,
                net,
                x,
                info,
                name,
                val_score,
                {"dataset": dataset, f"test_{key}": f"{result[f'test_{key}']:.4f}"},
            )
            model_card.describe(tracked, name, version, card)
    return result


def _card(
    cfg: DictConfig,
    layout: Layout,
    name: str,
    facts: dict[str, Any],
    result: dict[str, Any],
    info: dict[str, Any],
) -> str:
    """The model card, written to reports/model_cards/<stage>.md (linked from the report)."""
    path = model_card.card_path(layout, layout.stage(STAGE))
    config = {section: OmegaConf.select(cfg, section) for section in SECTIONS}
    provenance = git_state(Path(__file__).resolve().parent)
    preprocessed = (
        layout.stage("preprocess_images"),
        layout.processed_images_meta.relative_to(layout.root).as_posix(),
    )
    card = model_card.build(
        name, facts, result, info, provenance, config, path.parent, preprocessed
    )
    write_text(path, card)
    return card
