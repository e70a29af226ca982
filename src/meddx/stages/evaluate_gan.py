"""Stage `evaluate_gan`: what the generated images are worth to a classifier, and whether
the generator copies patients.

The four evaluations (TSTR, augmentation gain, feature-space fidelity, memorisation) are
`meddx.evaluation.generated`'s; this stage trains the two CNNs they need (`cnn=<name>`,
through the same `train_classifier` path as `train_cnn`: same config, epochs and seed), each
in a nested MLflow run, and writes the figures. One seed here (`seed`); `make bench-gan`
repeats it over several. The stage writes its metrics, then FAILS (DataError) when the
near-copy share is above the limit.

The test split is only scored here and in `evaluate`; all model selection uses val splits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from meddx.data.augment import BatchAugment
from meddx.data.intensity import stored_to_processed
from meddx.data.npz import load_npz
from meddx.data.validate import check_image_splits
from meddx.evaluation import generated
from meddx.io import write_json
from meddx.models import export
from meddx.paths import Layout, require
from meddx.tracking import StageRun, stage_run
from meddx.training.classifier_training import ClassifierData, train_classifier
from meddx.training.generative import save_png

STAGE = "evaluate_gan"
SECTIONS = ("seed", "data.image.augment", "cnn", "trainer", "gan.evaluate")
ROLES = ("tstr", "augmented")


def _train_on(
    cfg: DictConfig, role: str, data: ClassifierData, inputs: list[Path], parent: StageRun
) -> tuple[Path, float]:
    """One CNN through the shared training path, in a nested MLflow run: its model path and
    best validation AUC."""
    model_name = f"gan_eval/{role}"
    with stage_run(
        cfg,
        f"{STAGE}.{role}",
        inputs=inputs,
        run_name=f"{STAGE} {role} cnn",
        parent_run_id=parent.run_id,
        sections=("seed", "cnn", "trainer"),
    ) as child:
        trained = train_classifier(
            cfg,
            f"{STAGE}/{role}",
            model_name,
            cfg.cnn,
            data,
            inputs,
            child,
            augment=BatchAugment(**cfg.data.image.augment),
        )
    return Layout.of(cfg).model_dir(model_name) / "model.pt", float(trained["best_val_auc"])


def _train_and_score(
    cfg: DictConfig,
    datasets: dict[str, ClassifierData],
    test: tuple[np.ndarray, np.ndarray],
    cnn_path: Path,
    inputs: list[Path],
    tracked: StageRun,
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Test summaries of the real-trained, TSTR and augmented CNNs; best val AUC of the last two."""
    task = datasets["tstr"].task
    scores = {"real": generated.summary_on_test(cnn_path, test, task)}
    val_auc = {}
    for role in ROLES:
        model, val_auc[role] = _train_on(cfg, role, datasets[role], inputs, tracked)
        scores[role] = generated.summary_on_test(model, test, task)
    return scores, val_auc


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    images = require(layout.processed_images, layout.root)
    meta_path = require(layout.processed_images_meta, layout.root)
    synthetic_path = require(layout.synthetic_images, layout.root)
    cnn_path = require(layout.model_dir("cnn") / "model.pt", layout.root)
    facts = json.loads(meta_path.read_text())
    norm, spec = facts["normalization"], cfg.gan.evaluate
    real = load_npz(images)
    stored = load_npz(synthetic_path)
    check_image_splits(stored, facts["num_classes"], facts["task"], facts["channels"])
    synth = {
        split: (
            stored_to_processed(stored[f"{split}_images"], norm),
            stored[f"{split}_labels"].reshape(-1).astype(np.int64),
        )
        for split in ("train", "val")
    }
    datasets = generated.training_sets(real, synth, facts, spec.aug_share, cfg.seed)
    inputs = [images, meta_path, synthetic_path, cnn_path]
    with stage_run(
        cfg, STAGE, inputs=inputs, run_name=f"{STAGE} on {facts['name']}", sections=SECTIONS
    ) as tracked:
        test = (real["test_images"], real["test_labels"])
        scores, val_auc = _train_and_score(cfg, datasets, test, cnn_path, inputs[:3], tracked)
        torch.set_num_threads(cfg.trainer.num_threads)
        cnn, cnn_info = export.load(cnn_path)
        real_val_auc = float(cnn_info.get("best", {}).get("best_val_auc", float("nan")))
        result: dict[str, Any] = generated.usefulness(scores, val_auc, real_val_auc)
        result |= generated.fidelity(
            cnn,
            real["train_images"],
            synth["train"][0],
            real["test_images"],
            spec.max_samples,
            spec.k,
            cfg.seed,
        )
        copies, pairs = generated.copies_of_training_images(
            real["train_images"],
            synth["train"][0],
            real["val_images"],
            norm,
            spec.near_copy_ratio,
            spec.near_copy_tolerance,
        )
        result |= generated.memorisation_figures(copies)
        grid = layout.plots(STAGE) / "nearest_copies.png"
        save_png(grid, pairs)
        write_json(layout.metrics(STAGE), result)
        tracked.log_metrics({k: float(v) for k, v in result.items()})
        tracked.log_artifact(layout.metrics(STAGE), "metrics")
        tracked.log_artifact(grid, "plots")
        if not copies.passed:
            raise generated.memorisation_failure(copies, grid)
    return result
