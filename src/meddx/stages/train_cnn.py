"""Stage `train_cnn`: fit the configured image classifier on the preprocessed splits."""

from __future__ import annotations

import json
from typing import Any

from omegaconf import DictConfig

from meddx.data.augment import BatchAugment
from meddx.data.npz import load_npz
from meddx.paths import Layout, require
from meddx.tracking import stage_run
from meddx.training.classification import ClassifierData, train_classifier

STAGE = "train_cnn"
SECTIONS = ("seed", "data.image", "cnn", "trainer")


def run(cfg: DictConfig) -> dict[str, Any]:
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
        net_kwargs={"in_channels": facts["channels"], "num_classes": facts["num_classes"],
                    "image_size": facts["size"]},
    )
    augment = BatchAugment(**cfg.data.image.augment)
    run_name = f"{STAGE} {cfg.cnn.name} on {facts['name']}"
    with stage_run(cfg, STAGE, inputs=[images, meta_path], run_name=run_name,
                   sections=SECTIONS) as tracked:
        return train_classifier(cfg, STAGE, "cnn", cfg.cnn, data, [images, meta_path], tracked,
                                augment=augment)
