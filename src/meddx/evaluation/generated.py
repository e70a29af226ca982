"""What generated images are worth to a classifier, and whether the generator copies patients.

The four evaluations of the `evaluate_gan` stage, each a function from arrays (and trained
models) to the figures it reports:

1. `training_sets` + `usefulness`: TSTR (train on synthetic, test on real; the Classification
   Accuracy Score of Ravuri & Vinyals 2019), a CNN trained on the synthetic train split only,
   selected on the synthetic val split, scored on the REAL test split beside the real-trained
   CNN.
2. The augmentation gain, in the same two functions: the same CNN trained on real + synthetic
   training images (selected on the real val split) against the real-trained CNN, on the real
   test split. `aug_share` sets how many synthetic images join per real one (a seeded draw);
   `aug_delta_val_auc`, the same gain on the real val split, is what a choice of that share
   may look at.
3. `fidelity`: Frechet distance and k-NN precision/recall in the penultimate-layer features of
   the real-trained CNN (domain-specific: not comparable with ImageNet FID). `fd_real_test`,
   the distance between the real training and real test features, is the floor that a
   perfect generator would reach at these sample sizes.
4. `copies_of_training_images` (see `meddx.training.generative.memorisation`), reported by
   `memorisation_figures`, failing the stage with `memorisation_failure`.

Training the two CNNs is the stage's: they are MLflow runs of their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from meddx.data.intensity import processed_to_unit
from meddx.errors import ConfigError, DataError
from meddx.models import export
from meddx.training import tasks
from meddx.training.classifier_training import ClassifierData
from meddx.training.generative import (
    Memorisation,
    frechet_distance,
    image_grid,
    memorisation,
    penultimate_features,
    precision_recall,
)

Split = tuple[np.ndarray, np.ndarray]  # (images, labels)


def with_synthetic(real: Split, synthetic: Split, share: float, seed: int) -> Split:
    """The real training split plus `share` x its size of synthetic images (seeded draw)."""
    if share < 0:
        raise ConfigError(f"gan.evaluate.aug_share={share} must be >= 0")
    n = min(len(synthetic[0]), round(share * len(real[0])))
    pick = np.sort(np.random.default_rng(seed).choice(len(synthetic[0]), n, replace=False))
    return (
        np.concatenate([real[0], synthetic[0][pick]]),
        np.concatenate([real[1], synthetic[1][pick]]),
    )


def training_sets(
    real: dict[str, np.ndarray],
    synthetic: dict[str, Split],
    facts: dict[str, Any],
    share: float,
    seed: int,
) -> dict[str, ClassifierData]:
    """What the `tstr` and the `augmented` CNN train and select on."""
    task, names = facts["task"], facts["class_names"]
    net_kwargs = {
        "in_channels": facts["channels"],
        "num_classes": facts["num_classes"],
        "image_size": facts["size"],
    }
    return {
        "tstr": ClassifierData(
            train=synthetic["train"],
            val=synthetic["val"],
            task=task,
            class_names=names,
            net_kwargs=net_kwargs,
        ),
        "augmented": ClassifierData(
            train=with_synthetic(
                (real["train_images"], real["train_labels"]), synthetic["train"], share, seed
            ),
            val=(real["val_images"], real["val_labels"]),
            task=task,
            class_names=names,
            net_kwargs=net_kwargs,
        ),
    }


def summary_on_test(model_path: Path, test: Split, task: str) -> dict[str, float]:
    """The task's test summary (classification: AUC, ACC, balanced ACC) of an exported
    classifier on the real test split."""
    net, _ = export.load(model_path)
    scorer = tasks.of(task)
    return scorer.summary(test[1], scorer.predict(net, (test[0],)))


def usefulness(
    scores: dict[str, dict[str, float]], val_auc: dict[str, float], real_val_auc: float
) -> dict[str, float]:
    """TSTR and augmentation figures from the test summaries of `real`, `tstr`, `augmented`."""
    real, tstr, augmented = scores["real"], scores["tstr"], scores["augmented"]
    return {
        "real_acc": real["acc"],
        "real_auc": real["auc"],
        "tstr_acc": tstr["acc"],
        "tstr_auc": tstr["auc"],
        "tstr_gap_acc": real["acc"] - tstr["acc"],
        "aug_acc": augmented["acc"],
        "aug_auc": augmented["auc"],
        "aug_delta_auc": augmented["auc"] - real["auc"],
        "aug_delta_val_auc": val_auc["augmented"] - real_val_auc,
    }


def _subsample(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(x) <= n:
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))]


def fidelity(
    cnn: nn.Module,
    real_train: np.ndarray,
    generated: np.ndarray,
    real_test: np.ndarray,
    max_samples: int,
    k: int,
    seed: int,
) -> dict[str, float]:
    """Frechet distance and k-NN precision/recall of `generated` in `cnn`'s features.

    At most `max_samples` images of each set (seeded subsamples); as many generated images as
    real training images, so the two feature clouds are compared at equal size.
    """
    train = _subsample(real_train, max_samples, seed)
    features_real = penultimate_features(cnn, train)
    features_gen = penultimate_features(cnn, _subsample(generated, len(train), seed))
    features_test = penultimate_features(cnn, _subsample(real_test, max_samples, seed))
    precision, recall = precision_recall(features_real, features_gen, k)
    return {
        "fd": frechet_distance(features_real, features_gen),
        "fd_real_test": frechet_distance(features_real, features_test),
        "precision": precision,
        "recall": recall,
    }


def copies_of_training_images(
    real_train: np.ndarray,
    generated: np.ndarray,
    real_val: np.ndarray,
    normalization: dict[str, Any],
    ratio: float,
    tolerance: float,
) -> tuple[Memorisation, np.ndarray]:
    """The memorisation check in [0, 1] pixel units, and the grid of its closest pairs."""
    train_unit = processed_to_unit(real_train, normalization)
    generated_unit = processed_to_unit(generated, normalization)
    copies = memorisation(
        train_unit,
        generated_unit,
        processed_to_unit(real_val, normalization),
        ratio=ratio,
        tolerance=tolerance,
    )
    grid = nearest_pairs_grid(generated_unit, train_unit, copies.distances, copies.nearest_index)
    return copies, grid


def memorisation_figures(copies: Memorisation) -> dict[str, Any]:
    return {
        "near_copy_share": copies.share,
        "near_copy_reference_share": copies.reference_share,
        "near_copy_limit": copies.limit,
        "near_copy_threshold": copies.threshold,
        "real_nn_distance_median": copies.typical_distance,
        "memorisation_passed": copies.passed,
    }


def nearest_pairs_grid(
    generated: np.ndarray, train: np.ndarray, distances: np.ndarray, index: np.ndarray, n: int = 8
) -> np.ndarray:
    """Top row: the n generated images closest to a training image; bottom row: those images."""
    order = np.argsort(distances)[:n]
    return image_grid(np.concatenate([generated[order], train[index[order]]]), rows=2)


def memorisation_failure(copies: Memorisation, grid: Path) -> DataError:
    """The error that fails the stage when the near-copy share is above its limit."""
    return DataError(
        f"memorisation check failed: {copies.share:.1%} of generated images lie closer "
        f"than {copies.threshold:.3g} to a training image (held-out real images: "
        f"{copies.reference_share:.1%}; limit {copies.limit:.1%}). The generator copies "
        f"training images; see {grid}. Train fewer epochs, "
        "regularise the discriminator, or raise gan.evaluate.near_copy_tolerance "
        "knowingly"
    )
