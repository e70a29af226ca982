"""Stage `acquire_images`: bring the configured image dataset into `data/raw/images.npz`.

Every source ends in the same MedMNIST layout and passes the same validation, so nothing
downstream knows or cares where the images came from. Sources (`data.image.source`):
- `synthetic`: the seeded offline generator (images, or volumes for `spatial_dims: 3`), used
  only when configured;
- `synthetic_masks`: its segmentation sibling, images or volumes with a mask each
  (meddx.data.synthetic_masks);
- `medmnist`: an official MedMNIST file (2D images or 3D volumes), from the cache, a mirror
  or Zenodo, always MD5-verified (meddx.data.fetch), copied byte for byte;
- `folder`: the user's own PNG/JPEG, DICOM or NIfTI files, or (`spatial_dims: 3`) NIfTI
  volumes and DICOM series (meddx.data.folder), DICOM de-identified as it is read;
- `hc18`, `msd_hippocampus`: the segmentation datasets, read from the mirror and checked
  against its manifests (meddx.data.hc18, meddx.data.msd_hippocampus); besides images and
  masks they carry each case's spacing (and HC18's reference head circumference).
A missing real dataset is an error, never a silent fall-back to synthetic data.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from meddx.data import medmnist, synthetic_images, synthetic_masks, synthetic_volumes
from meddx.data.fetch import Checksum, fetch
from meddx.data.image_facts import ImageFacts, image_facts
from meddx.data.medmnist import tolerated_duplicates
from meddx.data.npz import SPLITS, load_npz, save_npz
from meddx.data.stats import split_counts
from meddx.data.validate import check_image_splits
from meddx.errors import ConfigError
from meddx.io import atomic_path
from meddx.paths import Layout
from meddx.tracking import stage_run

STAGE = "acquire_images"
SECTIONS = ("seed", "data.image")
SOURCES = ("synthetic", "synthetic_masks", "medmnist", "folder", "hc18", "msd_hippocampus")


def _fetch_medmnist(cfg: DictConfig) -> tuple[Path, dict[str, str]]:
    """The verified official file and what to record about it."""
    spec = cfg.data.image
    subset = medmnist.subset(spec.name)
    size = int(spec.size)
    name = subset.file_name(size)
    layout = Layout.of(cfg)
    got = fetch(
        name,
        Checksum("md5", subset.checksum(size)),
        subset.url(size),
        layout.cache,
        layout.mirror,
        subdir="medmnist",
    )
    return got.path, {
        "data.file": name,
        "data.md5": subset.checksum(size),
        "data.origin": got.origin,
        "data.license": subset.license,
    }


def _segmentation_source(cfg: DictConfig) -> tuple[dict[str, np.ndarray], dict[str, str], None]:
    """HC18 or MSD Hippocampus from the mirror, with the split rule they were drawn by."""
    spec = cfg.data.image
    if spec.source == "hc18":
        from meddx.data.hc18 import load_hc18 as load
    else:
        from meddx.data.msd_hippocampus import load_hippocampus as load
    arrays = load(spec, Layout.of(cfg).mirror)
    return arrays, {"data.origin": "mirror", "data.split_rule": str(arrays["split_rule"])}, None


def acquire(
    cfg: DictConfig, dataset: ImageFacts
) -> tuple[dict[str, np.ndarray], dict[str, str], Path | None]:
    """The configured dataset's arrays, facts to record, and the file they came from (if any)."""
    spec = cfg.data.image
    if spec.source == "medmnist":
        path, facts = _fetch_medmnist(cfg)
        return load_npz(path), facts, path
    if spec.source == "synthetic" and dataset.spatial_dims == 3:
        if dataset.channels != 1:
            raise ConfigError(f"data.image.channels={dataset.channels}: synthetic volumes have 1")
        arrays = synthetic_volumes.generate(
            num_classes=len(dataset.class_names),
            sizes={split: spec.synthetic[split] for split in SPLITS},
            volume_size=spec.size,
            noise=spec.synthetic.noise,
            seed=cfg.seed,
        )
    elif spec.source == "synthetic":
        arrays = synthetic_images.generate(
            num_classes=len(dataset.class_names),
            sizes={split: spec.synthetic[split] for split in SPLITS},
            image_size=spec.size,
            channels=dataset.channels,
            noise=spec.synthetic.noise,
            seed=cfg.seed,
        )
    elif spec.source == "synthetic_masks":
        if dataset.channels != 1:
            raise ConfigError(f"data.image.channels={dataset.channels}: synthetic masks have 1")
        arrays = synthetic_masks.generate(
            num_classes=len(dataset.class_names),
            sizes={split: spec.synthetic[split] for split in SPLITS},
            size=spec.size,
            spatial_dims=dataset.spatial_dims,
            noise=spec.synthetic.noise,
            seed=cfg.seed,
        )
    elif spec.source == "folder":
        from meddx.data.folder import load_folder

        arrays, described = load_folder(spec, cfg.seed, Layout.of(cfg).root)
        return arrays, {"data.origin": spec.source, **described}, None
    elif spec.source in ("hc18", "msd_hippocampus"):
        return _segmentation_source(cfg)
    else:
        raise ConfigError(f"data.image.source={spec.source!r} is not known; known: {list(SOURCES)}")
    return arrays, {"data.origin": spec.source}, None


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    spec = cfg.data.image
    dataset = image_facts(spec)  # a bad name or size fails before an MLflow run opens
    if spec.source == "medmnist":
        medmnist.subset(spec.name).file_name(int(spec.size))
    with stage_run(cfg, STAGE, run_name=f"{STAGE} {spec.name}", sections=SECTIONS) as tracked:
        arrays, facts, source = acquire(cfg, dataset)
        known = check_image_splits(
            arrays,
            len(dataset.class_names),
            dataset.task,
            dataset.channels,
            tolerated_duplicates(spec.source, spec.name, spec.size),
            spatial_dims=dataset.spatial_dims,
        )
        if source is None:
            save_npz(layout.raw_images, arrays)
        else:  # byte for byte: the raw file keeps its official MD5
            with atomic_path(layout.raw_images) as tmp:
                shutil.copyfile(source, tmp)
        splits = split_counts(arrays, dataset.task, list(dataset.class_names))
        tracked.set_tags({**facts, "data.known_duplicates": len(known)})
        if known:
            tracked.log_text("\n".join(known) + "\n", "known_duplicates.txt")
        counts = {f"n_{split}": splits[split]["n"] for split in SPLITS}
        tracked.log_metrics(
            {
                **counts,
                **{
                    f"{split}.{key}": value
                    for split, row in splits.items()
                    for key, value in row.items()
                    if key != "n"
                },
            }
        )
    return {**counts, "splits": splits, "known_duplicates": known, **facts}
