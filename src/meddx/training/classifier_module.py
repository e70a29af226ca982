"""The LightningModule shared by every classifier (CNN on images, RNN on ECG beats).

The network is passed in, built elsewhere from its `_target_` config; this module owns the
loss, the optimisation, the MedMNIST-style validation metrics, and the RNG state that must
travel inside checkpoints for a resumed run to match an uninterrupted one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from meddx.errors import ConfigError
from meddx.training import tasks
from meddx.training.rng import RngInCheckpoints

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


def mixup_pairs(size: int, alpha: float, device: torch.device) -> tuple[float, torch.Tensor]:
    """The mixing weight and each sample's partner, drawn from the global torch RNG so that
    seeds and checkpoints (RngInCheckpoints) make mixed batches reproducible."""
    weight = float(torch.distributions.Beta(alpha, alpha).sample())
    return weight, torch.randperm(size).to(device)


class Classifier(RngInCheckpoints, pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        task: str,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        class_weights: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        augment: nn.Module | None = None,
        loss: nn.Module | None = None,
        channels_last: bool = False,
    ) -> None:
        """`task` is the data facts' task key; `meddx.training.tasks` resolves it to the object
        that turns logits into probabilities and scores validation. `loss` (the task's
        configured loss) replaces its plain one.

        `mixup_alpha` > 0 trains on mixup pairs (Zhang et al., 2018): a regulariser for small
        training sets that, unlike label smoothing, also smooths the inputs between classes.
        """
        super().__init__()
        if not mixup_alpha >= 0:
            raise ConfigError(f"Invalid mixup_alpha={mixup_alpha!r}: Beta parameter >= 0, 0 = off")
        self.mixup_alpha = float(mixup_alpha)
        self.net = net
        self.task = tasks.of(task)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.augment = augment
        # NHWC kernels are faster for convolutions on GPUs with tensor cores; on CPU they are
        # not, so `trainer=cpu` leaves it off.
        self.channels_last = channels_last
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.loss = (
            loss if loss is not None else self.task.plain_loss(class_weights, label_smoothing)
        )
        self._val_scores: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.channels_last and inputs[0].dim() == 4:
            inputs = (inputs[0].contiguous(memory_format=torch.channels_last), *inputs[1:])
        return self.net(*inputs)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return self.task.probabilities(logits)

    def _split(
        self, batch: tuple[torch.Tensor, ...]
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        *inputs, target = batch
        return tuple(inputs), target

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        inputs, target = self._split(batch)
        if self.augment is not None:
            inputs, target = self.task.augmented(self.augment, inputs, target)
        if self.mixup_alpha > 0:
            weight, partner = mixup_pairs(len(target), self.mixup_alpha, target.device)
            inputs = tuple(
                weight * x + (1 - weight) * x[partner] if x.is_floating_point() else x
                for x in inputs
            )
            logits = self(*inputs)
            loss = weight * self.loss(logits, target) + (1 - weight) * self.loss(
                logits, target[partner]
            )
        else:
            loss = self.loss(self(*inputs), target)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(target))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        inputs, target = self._split(batch)
        logits = self(*inputs)
        self.log(
            "val_loss",
            self.loss(logits, target),
            on_step=False,
            on_epoch=True,
            batch_size=len(target),
            sync_dist=True,
        )
        self._val_scores.append(self.probabilities(logits).detach())
        self._val_targets.append(target.detach())

    def on_validation_epoch_end(self) -> None:
        scores = self.all_gather(torch.cat(self._val_scores))
        scores = scores.reshape(-1, *self._val_scores[0].shape[1:])  # ranks (DDP) stacked
        targets = self.all_gather(torch.cat(self._val_targets))
        targets = targets.reshape(-1, *self._val_targets[0].shape[1:])
        self._val_scores.clear()
        self._val_targets.clear()
        found = self.task.summary(targets.cpu().numpy(), scores.float().cpu().numpy())
        for name, value in found.items():
            self.log(f"val_{name}", float(value), sync_dist=False, rank_zero_only=False)

    def predict_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        inputs, _ = self._split(batch)
        return self.probabilities(self(*inputs))

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        kwargs = {}
        accepts = inspect.signature(self.scheduler_factory).parameters
        if "total_steps" in accepts and self.scheduler_interval == "step":
            kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
        if "max_epochs" in accepts:
            kwargs["max_epochs"] = int(self.trainer.max_epochs)
        scheduler = self.scheduler_factory(optimizer, **kwargs)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval},
        }
