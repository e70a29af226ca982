"""Stage `preprocess_images`: standardised float tensors, channel-first, plus dataset facts.

Images and volumes go the same way: `(N, *spatial[, C])` uint8 in, `(N, C, *spatial)` float32
out; `data.image.spatial_dims` (2 unless the dataset says 3) tells the stored layouts apart.

Intensity scaling is a config choice because published protocols differ: MedMNIST's
baseline maps to [-1, 1] (`symmetric`), others use [0, 1] (`unit`) or train-split z-scores
(`zscore`, statistics from the training split only, so nothing leaks from val/test).

Numpy rather than MONAI here: these are whole-array operations on data that is already
square, uint8 and of the configured size, and `import monai.transforms` alone costs 7-15 s
on this machine, more than the whole PneumoniaMNIST acquire + preprocess budget. MONAI does
the per-image work where images arrive in arbitrary shapes (meddx.data.folder).
Augmentation is not done here: it is training-only and per dataset (`data.image.augment`,
applied by meddx.data.augment inside the training step).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from omegaconf import DictConfig

from meddx.data import tasks
from meddx.data.image_facts import image_facts
from meddx.data.intensity import channel_first
from meddx.data.medmnist import tolerated_duplicates
from meddx.data.npz import SPLITS, save_npz
from meddx.data.samples import write_class_grids
from meddx.data.stats import pixel_stats, split_counts
from meddx.data.validate import read_image_file
from meddx.errors import ConfigError
from meddx.io import write_json
from meddx.paths import Layout, require
from meddx.tracking import stage_run

STAGE = "preprocess_images"
SECTIONS = ("seed", "data.image")
INTENSITY_MODES = ("unit", "symmetric", "zscore")


def scale_intensity(
    splits: dict[str, np.ndarray], mode: str
) -> tuple[dict[str, np.ndarray], dict[str, list[float]]]:
    if mode == "unit":
        return splits, {"mean": [0.0], "std": [1.0]}
    if mode == "symmetric":
        return {k: (v - 0.5) / 0.5 for k, v in splits.items()}, {"mean": [0.5], "std": [0.5]}
    if mode == "zscore":
        train = splits["train"]
        axes = (0, *range(2, train.ndim))  # every axis but the channel's
        mean = train.mean(axis=axes, keepdims=True)
        std = train.std(axis=axes, keepdims=True) + 1e-6
        scaled = {k: ((v - mean) / std).astype(np.float32) for k, v in splits.items()}
        return scaled, {"mean": mean.ravel().tolist(), "std": std.ravel().tolist()}
    raise ConfigError(f"data.image.intensity={mode!r} is not known; known: {list(INTENSITY_MODES)}")


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    spec = cfg.data.image
    dataset = image_facts(spec)
    source = require(layout.raw_images, layout.root)
    with stage_run(
        cfg, STAGE, inputs=[source], run_name=f"{STAGE} {spec.name}", sections=SECTIONS
    ) as tracked:
        num_classes = len(dataset.class_names)
        spatial_dims = dataset.spatial_dims
        raw, _ = read_image_file(
            source,
            num_classes,
            dataset.task,
            dataset.channels,
            tolerated_duplicates(spec.source, spec.name, spec.size),
            spatial_dims=spatial_dims,
        )
        unit = {s: channel_first(raw[f"{s}_images"], spatial_dims) for s in SPLITS}
        pixels = {s: pixel_stats(unit[s]) for s in SPLITS}  # in [0, 1], before scaling
        images, norm = scale_intensity(unit, spec.intensity)
        label_rules = tasks.of(dataset.task)
        out: dict[str, np.ndarray] = {}
        for split in SPLITS:
            out[f"{split}_images"] = images[split]
            out[f"{split}_labels"] = label_rules.encode(raw[f"{split}_labels"])
        # Per-case facts a source records (spacing, ids, reference measurements) ride along
        # unchanged, in the split's order, so that evaluation can measure in mm.
        case_facts = sorted(key for key in raw if key not in out)
        out.update({key: raw[key] for key in case_facts})
        save_npz(layout.processed_images, out, compress=False)
        stats: dict[str, Any] = split_counts(raw, dataset.task, list(dataset.class_names))
        for split in SPLITS:
            stats[split].update(
                {
                    "pixel_mean": float(np.mean(pixels[split]["mean"])),
                    "pixel_std": float(np.mean(pixels[split]["std"])),
                }
            )
        facts: dict[str, Any] = {
            "name": spec.name,
            "task": dataset.task,
            "class_names": list(dataset.class_names),
            "num_classes": num_classes,
            "channels": int(images["train"].shape[1]),
            "spatial_dims": spatial_dims,
            "size": int(images["train"].shape[-1]),
            "normalization": norm,
            "splits": stats,
            "pixels": pixels,
            "case_facts": case_facts,
        }
        if dataset.standardise is not None:  # the user's own volumes: how they were made
            facts["standardise"] = dataset.standardise.facts()
        if spec.get("spacing") is not None:  # mm per spatial axis, for distances in mm
            if len(spec.spacing) != spatial_dims:
                raise ConfigError(
                    f"data.image.spacing={list(spec.spacing)}: one value (mm) per spatial axis, "
                    f"{spatial_dims} for this dataset"
                )
            facts["spacing"] = [float(s) for s in spec.spacing]
        case_spacing = {s: raw[f"{s}_spacing"].tolist() for s in SPLITS if f"{s}_spacing" in raw}
        if case_spacing:  # per case, as `{split}_spacing` in the raw file (checked there)
            facts["case_spacing"] = case_spacing
        write_json(layout.processed_images_meta, facts)
        write_json(layout.metrics(STAGE), stats)
        grids = layout.plots(STAGE) / "samples"
        write_class_grids(
            raw["train_images"],
            raw["train_labels"],
            dataset.task,
            list(dataset.class_names),
            grids,
            seed=cfg.seed,
            spatial_dims=spatial_dims,
        )
        tracked.log_metrics(
            {f"{split}.{key}": value for split, row in stats.items() for key, value in row.items()}
        )
        tracked.log_artifact(layout.processed_images_meta)
        tracked.log_artifact(grids, "samples")
    return stats
