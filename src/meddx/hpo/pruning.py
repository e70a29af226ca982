"""Optuna pruning from inside a `pytorch_lightning` Trainer.

optuna-integration's PyTorchLightningPruningCallback is written against the `lightning`
package and fails with a `pytorch_lightning` Trainer, hence this small one. It stops the
Trainer (rather than raising from inside it) so the trial's run still closes cleanly with
its per-epoch metrics; the objective raises `optuna.TrialPruned` once fitting has returned.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

if TYPE_CHECKING:
    import optuna


class OptunaPruning(Callback):
    """Report `monitor` after each validation epoch; stop fitting when the pruner says so."""

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.pruned_at is not None:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return  # a NaN epoch is judged by the objective's final value instead
        epoch = trainer.current_epoch
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            trainer.should_stop = True
