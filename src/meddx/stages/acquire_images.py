"""Stage `acquire_images`: bring the configured image dataset into `data/raw/images.npz`.

Every source ends in the same MedMNIST layout and passes the same validation, so nothing
downstream knows or cares where the images came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from omegaconf import DictConfig

from meddx.data import synthetic_images
from meddx.data.npz import SPLITS, save_npz
from meddx.data.validate import check_image_splits
from meddx.errors import ConfigError
from meddx.paths import Layout
from meddx.tracking import stage_run

STAGE = "acquire_images"
SECTIONS = ("seed", "data.image")


def _acquire(spec: DictConfig, seed: int) -> dict[str, np.ndarray]:
    if spec.source == "synthetic":
        return synthetic_images.generate(
            num_classes=len(spec.class_names),
            sizes={split: spec.synthetic[split] for split in SPLITS},
            image_size=spec.size,
            channels=spec.channels,
            noise=spec.synthetic.noise,
            seed=seed,
        )
    raise ConfigError(f"data.image.source={spec.source!r} is not known; known: ['synthetic']")


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    spec = cfg.data.image
    with stage_run(cfg, STAGE, run_name=f"{STAGE} {spec.name}", sections=SECTIONS) as tracked:
        arrays = _acquire(spec, cfg.seed)
        check_image_splits(arrays, len(spec.class_names), spec.task, spec.channels)
        save_npz(layout.raw_images, arrays)
        counts = {f"n_{split}": int(len(arrays[f"{split}_labels"])) for split in SPLITS}
        tracked.log_metrics(counts)
    return counts
