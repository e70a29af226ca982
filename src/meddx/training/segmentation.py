"""The training figures of segmentation: the Dice + cross-entropy loss and the Dice score.

MONAI's own (`DiceCELoss`, `DiceMetric`), on masks stored as class indices `(N, *spatial)`:
one-hot encoded here, once, so that the loss, the validation Dice that picks the best epoch
and the test Dice of `meddx.evaluation` are the same computation. MONAI is imported inside
the functions: the classification stages never pay its import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from meddx.errors import ConfigError

LOSS = "dice_ce"


class DiceCE(nn.Module):
    """MONAI's DiceCELoss (softmax Dice + cross-entropy, equal weights) on index masks."""

    def __init__(self) -> None:
        super().__init__()
        from monai.losses import DiceCELoss

        self.loss = DiceCELoss(to_onehot_y=True, softmax=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(logits, target[:, None].long())


def check_recipe(model_cfg: Mapping[str, Any]) -> None:
    """A ConfigError for the classifier options segmentation does not train with."""
    loss = (model_cfg.get("loss") or {}).get("name", LOSS)
    if loss != LOSS:
        raise ConfigError(
            f"cnn.loss.name={loss!r}: a segmentation dataset trains with {LOSS!r} (MONAI "
            "DiceCELoss); use a segmentation recipe (cnn=unet, cnn=segresnet) or set "
            f"cnn.loss.name={LOSS}"
        )
    weights = (model_cfg.get("loss") or {}).get("class_weights", "none")
    if weights != "none":
        raise ConfigError(
            f"cnn.loss.class_weights={weights!r}: the Dice term already weighs each structure "
            "alike; segmentation takes cnn.loss.class_weights=none"
        )
    if model_cfg.get("sampling", "shuffle") != "shuffle":
        raise ConfigError(
            f"cnn.sampling={model_cfg.get('sampling')!r}: balanced sampling draws cases by "
            "class, which a mask has many of; segmentation shuffles (cnn.sampling=shuffle)"
        )


def one_hot(masks: np.ndarray | torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, *spatial) class indices -> (N, C, *spatial) float one-hot."""
    index = torch.as_tensor(np.asarray(masks), dtype=torch.long)
    return nn.functional.one_hot(index, num_classes).movedim(-1, 1).float()


def dice_per_case(predicted: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, C - 1) Dice of every structure in every case (MONAI DiceMetric, background left
    out); NaN where a case's ground truth lacks the structure (nothing to overlap)."""
    from monai.metrics import DiceMetric

    metric = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
    return metric(one_hot(predicted, num_classes), one_hot(target, num_classes)).numpy()


def mean_dice(targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The validation figure: Dice over every structure and case that has it."""
    per_case = dice_per_case(scores.argmax(axis=1), targets, scores.shape[1])
    return {"dice": float(np.nanmean(per_case)) if np.isfinite(per_case).any() else 0.0}
