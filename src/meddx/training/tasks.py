"""What a task decides in training: the loss, the draw of training examples, the network's
outputs as probabilities, and the validation figures that pick the best epoch.

Keyed by the task the data facts name (`facts["task"]`, stored again in model.pt): the four
label kinds of classification all resolve to `Classification`, `segmentation` to
`Segmentation`; a new task registers its own implementation under its key, and `Classifier`
and `train_classifier` serve it unchanged. Its evaluation half (scoring, figures, the run
summary) is `meddx.evaluation.tasks`, one layer up, keyed alike.

The data choose the task, not a `_target_` config (as lightning-hydra-template's `model`
config or a MONAI bundle's train.json pair loss and metrics with a network): labels make a
dataset a classification or a segmentation one, so a configured task could only disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from meddx import metrics
from meddx.data.tasks import SEGMENTATION
from meddx.errors import ConfigError
from meddx.models import predict, segment
from meddx.training import imbalance, segmentation


class TrainingTask(Protocol):
    """The training decisions of one task; `kind` is its key in the data facts."""

    kind: str

    def loss(
        self, model_cfg: Mapping[str, Any], train_labels: np.ndarray, num_classes: int
    ) -> nn.Module: ...

    def plain_loss(
        self, class_weights: torch.Tensor | None, label_smoothing: float
    ) -> nn.Module: ...

    def sample_weights(
        self, model_cfg: Mapping[str, Any], train_labels: np.ndarray, num_classes: int
    ) -> torch.Tensor | None: ...

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor: ...

    def augmented(
        self, augment: nn.Module, inputs: tuple[torch.Tensor, ...], target: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """A training batch through `augment` (`meddx.data.augment.BatchAugment`)."""
        ...

    def predict(
        self, net: nn.Module, inputs: tuple[np.ndarray, ...], batch_size: int = 512
    ) -> np.ndarray: ...

    def summary(self, targets: np.ndarray, scores: np.ndarray) -> dict[str, float]: ...


@dataclass(frozen=True)
class Classification:
    """One label per sample (binary, multi-class, ordinal) or a yes/no per label (multi-label).

    `kind` is the label kind; MedMNIST's own task names, so the figures are computed the way
    MedMNIST computes them (`meddx.metrics`).
    """

    kind: str

    def loss(
        self, model_cfg: Mapping[str, Any], train_labels: np.ndarray, num_classes: int
    ) -> nn.Module:
        """The configured loss (`imbalance`), weighted from the training labels."""
        return imbalance.build_loss(
            self.kind,
            model_cfg.get("loss"),
            train_labels,
            num_classes,
            label_smoothing=model_cfg.get("label_smoothing", 0.0),
        )

    def plain_loss(self, class_weights: torch.Tensor | None, label_smoothing: float) -> nn.Module:
        """The loss of a module built without a configured one (tests, notebooks)."""
        if self.kind == "multi-label":
            return nn.BCEWithLogitsLoss(pos_weight=class_weights)
        return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)

    def sample_weights(
        self, model_cfg: Mapping[str, Any], train_labels: np.ndarray, num_classes: int
    ) -> torch.Tensor | None:
        return imbalance.sample_weights(
            self.kind, train_labels, num_classes, model_cfg.get("sampling")
        )

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.kind == "multi-label" else logits.softmax(dim=1)

    def augmented(
        self, augment: nn.Module, inputs: tuple[torch.Tensor, ...], target: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """The image moves, its label does not."""
        return (augment(inputs[0]), *inputs[1:]), target

    def predict(
        self, net: nn.Module, inputs: tuple[np.ndarray, ...], batch_size: int = 512
    ) -> np.ndarray:
        return predict.probabilities(net, inputs, self.kind, batch_size)

    def summary(self, targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        return metrics.summary(self.kind, targets, scores)


@dataclass(frozen=True)
class Segmentation:
    """A class per pixel (voxel): MONAI's Dice + cross-entropy on softmax outputs, and the
    validation mean Dice over the structures (`val_dice`) to pick the best epoch."""

    kind: str

    def loss(
        self, model_cfg: Mapping[str, Any], train_labels: np.ndarray, num_classes: int
    ) -> nn.Module:
        segmentation.check_recipe(model_cfg)
        return segmentation.DiceCE()

    def plain_loss(self, class_weights: torch.Tensor | None, label_smoothing: float) -> nn.Module:
        return segmentation.DiceCE()

    def sample_weights(
        self, model_cfg: Mapping[str, Any], train_labels: np.ndarray, num_classes: int
    ) -> None:
        return None  # `check_recipe` refuses anything but shuffled cases

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=1)

    def augmented(
        self, augment: nn.Module, inputs: tuple[torch.Tensor, ...], target: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Image and mask move together (`BatchAugment.pair`)."""
        image, mask = augment.pair(inputs[0], target)
        return (image, *inputs[1:]), mask

    def predict(
        self, net: nn.Module, inputs: tuple[np.ndarray, ...], batch_size: int = 16
    ) -> np.ndarray:
        return segment.probabilities(net, inputs[0], batch_size)

    def summary(self, targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        return segmentation.mean_dice(targets, scores)


# What `facts["task"]` names -> the task; a new task adds its entry here (a test may add its own).
REGISTRY: dict[str, Callable[[str], TrainingTask]] = {
    **dict.fromkeys(metrics.TASKS, Classification),
    SEGMENTATION: Segmentation,
}


def of(kind: str) -> TrainingTask:
    """The training half of the task the data facts name."""
    if kind not in REGISTRY:
        raise ConfigError(f"unknown task {kind!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[kind](kind)
