"""Stage `generate_images`: sample the trained GAN into `data/synthetic/images.npz`.

The file has the stored MedMNIST layout (uint8 images, `{train,val,test}_{images,labels}`)
and passes the same validation as a downloaded dataset, so it can feed anything that reads
one: `evaluate_gan` trains on it, and a stage or a user can use it as an extra training set.
Each split draws its own seeded noise, so the splits never share an image.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from meddx.data.intensity import unit_to_stored
from meddx.data.npz import SPLITS, save_npz
from meddx.data.stats import class_key
from meddx.data.validate import check_image_splits
from meddx.errors import ConfigError
from meddx.models import export
from meddx.models.gan import Generator
from meddx.paths import Layout, require
from meddx.tracking import stage_run

STAGE = "generate_images"
SECTIONS = ("seed", "gan.generate", "trainer.num_threads", "trainer.numerics")


def class_counts(per_class: int | None, facts: dict[str, Any]) -> dict[str, list[int]]:
    """Images per class for each split: the real dataset's counts, or N (train) and N//4."""
    names = facts["class_names"]
    if per_class is None:
        return {
            split: [int(facts["splits"][split][class_key(name)]) for name in names]
            for split in SPLITS
        }
    if per_class < 1:
        raise ConfigError(f"gan.generate.per_class must be >= 1 or null, got {per_class}")
    small = max(1, per_class // 4)
    return {
        "train": [per_class] * len(names),
        "val": [small] * len(names),
        "test": [small] * len(names),
    }


def generate(net: Generator, counts: dict[str, list[int]], seed: int) -> dict[str, np.ndarray]:
    """Stored-layout arrays with exactly `counts[split][c]` images of class c."""
    arrays: dict[str, np.ndarray] = {}
    for offset, split in enumerate(SPLITS):
        labels = torch.repeat_interleave(
            torch.arange(len(counts[split])), torch.tensor(counts[split])
        )
        images = net.sample(labels, seed=seed * 1000 + offset)
        arrays[f"{split}_images"] = unit_to_stored(((images + 1) / 2).numpy())
        arrays[f"{split}_labels"] = labels.numpy().astype(np.uint8).reshape(-1, 1)
    return arrays


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    model_path = require(layout.model_dir("gan") / "generator.pt", layout.root)
    meta_path = require(layout.processed_images_meta, layout.root)
    facts = json.loads(meta_path.read_text())
    torch.set_num_threads(cfg.trainer.num_threads)
    net, info = export.load(model_path)
    if info["class_names"] != facts["class_names"]:
        raise ConfigError(
            f"{model_path} was trained on classes {info['class_names']} but the dataset has "
            f"{facts['class_names']}; rerun `dvc repro train_gan`"
        )
    counts = class_counts(cfg.gan.generate.per_class, facts)
    with stage_run(
        cfg,
        STAGE,
        inputs=[model_path, meta_path],
        run_name=f"{STAGE} {info['gan']} on {facts['name']}",
        sections=SECTIONS,
    ) as tracked:
        arrays = generate(net, counts, cfg.seed)
        check_image_splits(arrays, len(facts["class_names"]), facts["task"], facts["channels"])
        save_npz(layout.synthetic_images, arrays)
        result = {f"n_{split}": int(sum(counts[split])) for split in SPLITS}
        tracked.log_metrics(result)
    return result
