"""The image classifier's training: what the `train_cnn` stage runs and each HPO trial optimises.

It lives below both (rather than in the stage) so that `tune` can hand it to `meddx.hpo`
without one stage importing another. `STAGE` names its outputs (`reports/metrics/train_cnn.json`,
`models/cnn/`, `runs/train_cnn/`), which a trial writes below its own scratch root; `SECTIONS`
are the config sections it reads, logged as params of every run that trains it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback

from meddx.data import image_spec
from meddx.data.augment import BatchAugment
from meddx.data.npz import load_npz
from meddx.paths import Layout, require
from meddx.training.classifier_training import ClassifierData, train_classifier
from meddx.training.run_log import RunLog

STAGE = "train_cnn"
SECTIONS = ("seed", "data.image", "cnn", "trainer")


def load_data(cfg: DictConfig) -> tuple[ClassifierData, list[Path], dict[str, Any]]:
    """The preprocessed splits, the input files (for provenance) and the dataset facts.

    Images and volumes alike: the networks are sized by the channel-first arrays' shape,
    `(N, C, *spatial)`, so `spatial_dims` (2 or 3) is read from the data, not configured twice.
    """
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
            "spatial_dims": arrays["train_images"].ndim - 2,
        },
        info={"image": image_spec.facts(facts, cfg.data.image)},  # what `predict` reads
    )
    return data, [images, meta_path], facts


def train(
    cfg: DictConfig,
    data: ClassifierData,
    inputs: list[Path],
    run: RunLog,
    extra_callbacks: list[Callback] | None = None,
) -> dict[str, Any]:
    augment = BatchAugment(
        **cfg.data.image.augment, spatial_dims=data.net_kwargs.get("spatial_dims", 2)
    )
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
