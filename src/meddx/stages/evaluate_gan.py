"""Stage `evaluate_gan`: what the generated images are worth to a classifier, and whether
the generator copies patients.

1. TSTR (train on synthetic, test on real; the Classification Accuracy Score of Ravuri &
   Vinyals 2019): the CNN of `cnn=<name>`, trained by the same `train_classifier` path as
   `train_cnn` (same config, epochs and seed) on the synthetic train split only, selected
   on the synthetic val split, scored on the REAL test split beside the real-trained CNN
   (`models/cnn/model.pt`).
2. Augmentation gain: the same CNN trained on real + synthetic training images (selected on
   the real val split) against the real-trained CNN, on the real test split. One seed here
   (`seed`); `make bench-gan` repeats it over several. `gan.evaluate.aug_share` sets how many
   synthetic images join per real one (a seeded draw); `aug_delta_val_auc`, the same gain on
   the real val split, is what a choice of that share may look at.
3. Frechet distance and k-NN precision/recall in the penultimate-layer features of the
   real-trained CNN (domain-specific: not comparable with ImageNet FID). `fd_real_test`,
   the distance between the real training and real test features, is the floor that a
   perfect generator would reach at these sample sizes.
4. Memorisation: see `meddx.training.generative.memorisation`. The stage writes its
   metrics, then FAILS (DataError) when the near-copy share is above the limit.

The test split is only scored here and in `evaluate`; all model selection uses val splits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from meddx import metrics
from meddx.data.augment import BatchAugment
from meddx.data.intensity import processed_to_unit, stored_to_processed
from meddx.data.npz import load_npz
from meddx.data.validate import check_image_splits
from meddx.errors import ConfigError, DataError
from meddx.io import write_json
from meddx.models import export
from meddx.models.predict import probabilities
from meddx.paths import Layout, require
from meddx.tracking import StageRun, stage_run
from meddx.training.classifier_training import ClassifierData, train_classifier
from meddx.training.generative import (
    frechet_distance,
    image_grid,
    memorisation,
    penultimate_features,
    precision_recall,
    save_png,
)

STAGE = "evaluate_gan"
SECTIONS = ("seed", "data.image.augment", "cnn", "trainer", "gan.evaluate")
ROLES = ("tstr", "augmented")


def _subsample(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(x) <= n:
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))]


def _test_scores(
    model_path: Path, test: tuple[np.ndarray, np.ndarray], task: str
) -> dict[str, float]:
    net, _ = export.load(model_path)
    return metrics.summary(task, test[1], probabilities(net, (test[0],), task))


def _with_synthetic(
    real: tuple[np.ndarray, np.ndarray],
    synthetic: tuple[np.ndarray, np.ndarray],
    share: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The real training split plus `share` x its size of synthetic images (seeded draw)."""
    if share < 0:
        raise ConfigError(f"gan.evaluate.aug_share={share} must be >= 0")
    n = min(len(synthetic[0]), round(share * len(real[0])))
    pick = np.sort(np.random.default_rng(seed).choice(len(synthetic[0]), n, replace=False))
    return (
        np.concatenate([real[0], synthetic[0][pick]]),
        np.concatenate([real[1], synthetic[1][pick]]),
    )


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


def nearest_pairs_grid(
    generated: np.ndarray, train: np.ndarray, distances: np.ndarray, index: np.ndarray, n: int = 8
) -> np.ndarray:
    """Top row: the n generated images closest to a training image; bottom row: those images."""
    order = np.argsort(distances)[:n]
    return image_grid(np.concatenate([generated[order], train[index[order]]]), rows=2)


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    images = require(layout.processed_images, layout.root)
    meta_path = require(layout.processed_images_meta, layout.root)
    synthetic_path = require(layout.synthetic_images, layout.root)
    cnn_path = require(layout.model_dir("cnn") / "model.pt", layout.root)
    facts = json.loads(meta_path.read_text())
    task, norm, spec = facts["task"], facts["normalization"], cfg.gan.evaluate
    real = load_npz(images)
    stored = load_npz(synthetic_path)
    check_image_splits(stored, facts["num_classes"], task, facts["channels"])
    synth = {
        split: (
            stored_to_processed(stored[f"{split}_images"], norm),
            stored[f"{split}_labels"].reshape(-1).astype(np.int64),
        )
        for split in ("train", "val")
    }
    test = (real["test_images"], real["test_labels"])
    net_kwargs = {
        "in_channels": facts["channels"],
        "num_classes": facts["num_classes"],
        "image_size": facts["size"],
    }
    datasets = {
        "tstr": ClassifierData(
            train=synth["train"],
            val=synth["val"],
            task=task,
            class_names=facts["class_names"],
            net_kwargs=net_kwargs,
        ),
        "augmented": ClassifierData(
            train=_with_synthetic(
                (real["train_images"], real["train_labels"]),
                synth["train"],
                spec.aug_share,
                cfg.seed,
            ),
            val=(real["val_images"], real["val_labels"]),
            task=task,
            class_names=facts["class_names"],
            net_kwargs=net_kwargs,
        ),
    }
    inputs = [images, meta_path, synthetic_path, cnn_path]
    with stage_run(
        cfg, STAGE, inputs=inputs, run_name=f"{STAGE} on {facts['name']}", sections=SECTIONS
    ) as tracked:
        scores = {"real": _test_scores(cnn_path, test, task)}
        val_auc = {}
        for role in ROLES:
            model, val_auc[role] = _train_on(cfg, role, datasets[role], inputs[:3], tracked)
            scores[role] = _test_scores(model, test, task)
        torch.set_num_threads(cfg.trainer.num_threads)

        cnn, cnn_info = export.load(cnn_path)
        real_val_auc = float(cnn_info.get("best", {}).get("best_val_auc", float("nan")))
        n = spec.max_samples
        real_train = _subsample(real["train_images"], n, cfg.seed)
        features_real = penultimate_features(cnn, real_train)
        features_gen = penultimate_features(
            cnn, _subsample(synth["train"][0], len(real_train), cfg.seed)
        )
        features_test = penultimate_features(cnn, _subsample(real["test_images"], n, cfg.seed))
        precision, recall = precision_recall(features_real, features_gen, spec.k)

        train_unit = processed_to_unit(real["train_images"], norm)
        gen_unit = processed_to_unit(synth["train"][0], norm)
        copies = memorisation(
            train_unit,
            gen_unit,
            processed_to_unit(real["val_images"], norm),
            ratio=spec.near_copy_ratio,
            tolerance=spec.near_copy_tolerance,
        )
        result: dict[str, Any] = {
            "real_acc": scores["real"]["acc"],
            "real_auc": scores["real"]["auc"],
            "tstr_acc": scores["tstr"]["acc"],
            "tstr_auc": scores["tstr"]["auc"],
            "tstr_gap_acc": scores["real"]["acc"] - scores["tstr"]["acc"],
            "aug_acc": scores["augmented"]["acc"],
            "aug_auc": scores["augmented"]["auc"],
            "aug_delta_auc": scores["augmented"]["auc"] - scores["real"]["auc"],
            "aug_delta_val_auc": val_auc["augmented"] - real_val_auc,
            "fd": frechet_distance(features_real, features_gen),
            "fd_real_test": frechet_distance(features_real, features_test),
            "precision": precision,
            "recall": recall,
            "near_copy_share": copies.share,
            "near_copy_reference_share": copies.reference_share,
            "near_copy_limit": copies.limit,
            "near_copy_threshold": copies.threshold,
            "real_nn_distance_median": copies.typical_distance,
            "memorisation_passed": copies.passed,
        }
        plots = layout.plots(STAGE)
        save_png(
            plots / "nearest_copies.png",
            nearest_pairs_grid(gen_unit, train_unit, copies.distances, copies.nearest_index),
        )
        write_json(layout.metrics(STAGE), result)
        tracked.log_metrics({k: float(v) for k, v in result.items()})
        tracked.log_artifact(layout.metrics(STAGE), "metrics")
        tracked.log_artifact(plots / "nearest_copies.png", "plots")
        if not copies.passed:
            raise DataError(
                f"memorisation check failed: {copies.share:.1%} of generated images lie closer "
                f"than {copies.threshold:.3g} to a training image (held-out real images: "
                f"{copies.reference_share:.1%}; limit {copies.limit:.1%}). The generator copies "
                f"training images; see {plots / 'nearest_copies.png'}. Train fewer epochs, "
                "regularise the discriminator, or raise gan.evaluate.near_copy_tolerance "
                "knowingly"
            )
    return result
