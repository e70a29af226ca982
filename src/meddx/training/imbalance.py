"""Class-imbalance handling for any classifier, chosen by the model config.

    loss:
      name: ce | focal        # cross-entropy, or focal loss (Lin et al. 2017)
      gamma: 2.0              # focal only: how strongly easy examples are down-weighted
      class_weights: none | balanced | sqrt
      count_floor: 0          # weights: a class rarer than this counts as having this many
    sampling: shuffle | balanced

Weights and sampling probabilities come from the TRAINING split's label counts only, so the
validation and test distributions never leak into training. `balanced` class weights are
n / (k * count_c) (scikit-learn's convention), `sqrt` their square root (a milder push for
very rare classes such as MIT-BIH's F and Q). `count_floor` bounds the weight of a class
with a handful of examples (MIT-BIH's DS1 has 8 Q beats: `balanced` gives each thousands of
times a normal beat's weight, a fifth of the loss spent on 8 beats) and leaves commoner
classes' weights as they are. `sampling: balanced` draws every class equally
often (with replacement) in each epoch, through `EpochBatchSampler`'s per-sample weights.
Missing keys keep plain cross-entropy and shuffling, i.e. the behaviour before this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from meddx.errors import ConfigError

LOSSES = ("ce", "focal")
CLASS_WEIGHTS = ("none", "balanced", "sqrt")
SAMPLING = ("shuffle", "balanced")


def _choice(value: Any, allowed: tuple[str, ...], key: str) -> str:
    value = "none" if value is None else str(value)
    if value not in allowed:
        raise ConfigError(f"Invalid {key}: {value!r}; choose one of {', '.join(allowed)}")
    return value


def class_counts(task: str, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Examples per class; for multi-label tasks, positives per label."""
    labels = np.asarray(labels)
    if task == "multi-label":
        return labels.reshape(len(labels), -1).sum(axis=0).astype(np.float64)
    flat = labels.reshape(-1).astype(np.int64)
    return np.bincount(flat, minlength=num_classes).astype(np.float64)


def class_weights(counts: np.ndarray, mode: str, count_floor: float = 0.0) -> torch.Tensor | None:
    """Per-class loss weights; a class absent from training gets weight 0 (it has no examples)."""
    mode = _choice(mode, CLASS_WEIGHTS, "loss.class_weights")
    if count_floor < 0:
        raise ConfigError(f"Invalid loss.count_floor {count_floor}: must be >= 0")
    if mode == "none":
        return None
    present = counts > 0
    weights = np.zeros_like(counts)
    floored = np.maximum(counts[present], count_floor)
    weights[present] = counts.sum() / (present.sum() * floored)
    if mode == "sqrt":
        weights = np.sqrt(weights)
    return torch.tensor(weights, dtype=torch.float32)


class FocalLoss(nn.Module):
    """Focal loss: cross-entropy scaled by (1 - p_true)^gamma, optionally class-weighted.

    gamma = 0 is (weighted) cross-entropy. For multi-label tasks the binary form is applied
    per label, with `weight` acting as the positive-class weight like BCE's `pos_weight`.
    """

    def __init__(
        self, gamma: float, weight: torch.Tensor | None = None, multi_label: bool = False
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise ConfigError(f"Invalid loss.gamma {gamma}: must be >= 0")
        self.gamma = gamma
        self.multi_label = multi_label
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            target = target.float()
            log_p = F.logsigmoid(logits) * target + F.logsigmoid(-logits) * (1 - target)
            scale = 1.0 if self.weight is None else 1 + (self.weight - 1) * target
        else:
            log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
            scale = 1.0 if self.weight is None else self.weight[target]
        loss = -scale * (1 - log_p.exp()) ** self.gamma * log_p
        if self.weight is None or self.multi_label:
            return loss.mean()
        # Normalise like nn.CrossEntropyLoss(weight=...): by the summed weights of the batch.
        return loss.sum() / self.weight[target].sum().clamp_min(1e-12)


def build_loss(
    task: str,
    loss_cfg: DictConfig | dict[str, Any] | None,
    train_labels: np.ndarray,
    num_classes: int,
    label_smoothing: float = 0.0,
) -> nn.Module:
    """The training loss named by `loss_cfg`, weighted from the training labels."""
    loss_cfg = loss_cfg or {}
    name = _choice(loss_cfg.get("name", "ce"), LOSSES, "loss.name")
    counts = class_counts(task, train_labels, num_classes)
    mode = loss_cfg.get("class_weights", "none")
    if task == "multi-label":
        negatives = len(train_labels) - counts
        weight = (
            None
            if _choice(mode, CLASS_WEIGHTS, "loss.class_weights") == "none"
            else torch.tensor(negatives / np.maximum(counts, 1), dtype=torch.float32)
        )
        if mode == "sqrt" and weight is not None:
            weight = weight.sqrt()
        if name == "focal":
            return FocalLoss(float(loss_cfg.get("gamma", 2.0)), weight, multi_label=True)
        return nn.BCEWithLogitsLoss(pos_weight=weight)
    weight = class_weights(counts, mode, float(loss_cfg.get("count_floor", 0)))
    if name == "focal":
        return FocalLoss(float(loss_cfg.get("gamma", 2.0)), weight)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)


def sample_weights(
    task: str, train_labels: np.ndarray, num_classes: int, sampling: str | None
) -> torch.Tensor | None:
    """Per-example draw weights for `sampling: balanced` (None = plain shuffling)."""
    sampling = _choice(sampling or "shuffle", SAMPLING, "sampling")
    if sampling == "shuffle":
        return None
    if task == "multi-label":
        raise ConfigError(
            "sampling: balanced needs single-label classes; use "
            "loss.class_weights for a multi-label task"
        )
    labels = np.asarray(train_labels).reshape(-1).astype(np.int64)
    counts = class_counts(task, labels, num_classes)
    return torch.tensor(1.0 / counts[labels], dtype=torch.float64)
