"""Stage `train_cnn`: fit the configured image classifier on the preprocessed splits.

When the `tune` stage has run, its best overrides (models/tune/best_overrides.yaml) go on
top of params.yaml first, so `dvc repro` trains the final model with the tuned config.
HPO trials call `train` directly with their own config, run and pruning callback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback

from meddx.data.augment import BatchAugment
from meddx.data.npz import load_npz
from meddx.hpo.best import apply_best
from meddx.paths import Layout, require
from meddx.tracking import StageRun, stage_run
from meddx.training.classification import ClassifierData, train_classifier

STAGE = "train_cnn"
SECTIONS = ("seed", "data.image", "cnn", "trainer")


def load_data(cfg: DictConfig) -> tuple[ClassifierData, list[Path], dict[str, Any]]:
    """The preprocessed splits, the input files (for provenance) and the dataset facts."""
    layout = Layout.of(cfg)
    images = require(layout.processed_images, layout.root)
    meta_path = require(layout.processed_images_meta, layout.root)
    facts = json.loads(meta_path.read_text())
    arrays = load_npz(images)
    data = ClassifierData(
        train=(arrays["train_images"], arrays["train_labels"]),
        val=(arrays["val_images"], arrays["val_labels"]),
        task=facts["task"],
        class_names=facts["class_names"],
        net_kwargs={
            "in_channels": facts["channels"],
            "num_classes": facts["num_classes"],
            "image_size": facts["size"],
        },
    )
    return data, [images, meta_path], facts


def train(
    cfg: DictConfig,
    data: ClassifierData,
    inputs: list[Path],
    run: StageRun,
    extra_callbacks: list[Callback] | None = None,
) -> dict[str, Any]:
    augment = BatchAugment(**cfg.data.image.augment)
    return train_classifier(
        cfg,
        STAGE,
        "cnn",
        cfg.cnn,
        data,
        inputs,
        run,
        augment=augment,
        extra_callbacks=extra_callbacks,
    )


def run(cfg: DictConfig) -> dict[str, Any]:
    best = Layout.of(cfg).best_overrides
    cfg, tuned = apply_best(cfg, best)
    data, inputs, facts = load_data(cfg)
    run_name = f"{STAGE} {cfg.cnn.name} on {facts['name']}"
    provenance = [*inputs, best] if best.is_file() else inputs
    with stage_run(cfg, STAGE, inputs=provenance, run_name=run_name, sections=SECTIONS) as tracked:
        if tuned:
            tracked.set_tags({"meddx.tuned_overrides": " ".join(tuned)})
        return train(cfg, data, inputs, tracked)
