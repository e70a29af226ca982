"""Fitting any LightningModule the same way: seeded, resumable, tracked once per epoch.

Checkpoints of a run in progress live in `runs/<stage>/<key>/` (not a DVC out, since DVC
deletes outs before rerunning a stage), keyed by a hash of everything that defines the run,
so a killed `dvc repro` picks up from its `last.ckpt` and a changed config starts afresh.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader

from meddx.training.batches import EpochBatchSampler
from meddx.training.run_log import RunLog


def seed_everything(seed: int, num_threads: int | None = None) -> None:
    if num_threads:
        torch.set_num_threads(num_threads)
    pl.seed_everything(seed, workers=True, verbose=False)


class EpochMetrics(Callback):
    """Collects `trainer.callback_metrics` each epoch; one batch per epoch to `run`, rank 0 only."""

    def __init__(self, run: RunLog | None, prefix: str = "") -> None:
        self.run = run
        self.prefix = prefix  # metric keys of one ensemble member, e.g. "member1_"
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        row = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        row["epoch"] = trainer.current_epoch
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        if lr is not None:
            row["lr"] = float(lr)
        self.history.append(row)
        if self.run is not None:
            self.run.log_metrics(
                {self.prefix + k: v for k, v in row.items() if k != "epoch"},
                step=trainer.current_epoch,
            )
            self.run.flush()

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))


class ShardBatches(Callback):
    """Give each process of a distributed run its share of the batches.

    Ranks are known only once the strategy has launched its processes (Lightning's DDP
    launcher re-runs the command line for ranks > 0), so the samplers built beforehand learn
    them here; a single process keeps the whole epoch.
    """

    def __init__(self, *loaders: DataLoader) -> None:
        self.samplers = [ld.sampler for ld in loaders if isinstance(ld.sampler, EpochBatchSampler)]

    def setup(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        for sampler in self.samplers:
            sampler.num_replicas, sampler.rank = trainer.world_size, trainer.global_rank


@dataclass
class FitResult:
    best_path: Path
    best_score: float
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from_epoch: int | None = None
    is_global_zero: bool = True  # only rank 0 of a distributed run exports and writes results


def fit(
    module: pl.LightningModule,
    train: DataLoader,
    val: DataLoader | None,
    trainer_cfg: DictConfig,
    max_epochs: int,
    monitor: str | None,
    mode: str,
    resume_dir: Path,
    run: RunLog | None,
    patience: int = 0,
    extra_callbacks: list[Callback] | None = None,
    metric_prefix: str = "",
) -> FitResult:
    """`monitor=None` (GANs: no validation metric says which epoch is best) keeps the latest
    epoch as `best` and turns early stopping off; `val` may then be None."""
    resume_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = ModelCheckpoint(
        dirpath=resume_dir,
        filename="best",
        monitor=monitor,
        mode=mode,
        save_last=True,
        save_top_k=1,
        enable_version_counter=False,
    )
    tracker = EpochMetrics(run, metric_prefix)
    callbacks: list[Callback] = [
        checkpoint,
        tracker,
        ShardBatches(*(ld for ld in (train, val) if ld)),
        *(extra_callbacks or []),
    ]
    if patience and monitor:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    trainer = pl.Trainer(
        accelerator=trainer_cfg.accelerator,
        devices=trainer_cfg.devices,
        num_nodes=trainer_cfg.get("num_nodes", 1),
        strategy=trainer_cfg.strategy,
        precision=trainer_cfg.precision,
        deterministic=trainer_cfg.deterministic,
        max_epochs=max_epochs,
        logger=False,
        callbacks=callbacks,
        enable_progress_bar=trainer_cfg.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        default_root_dir=resume_dir,
    )
    last = resume_dir / "last.ckpt"
    resumed_from = None
    if last.is_file():
        resumed_from = int(torch.load(last, map_location="cpu", weights_only=False)["epoch"])
    trainer.fit(
        module,
        train_dataloaders=train,
        val_dataloaders=val,
        ckpt_path=str(last) if last.is_file() else None,
    )
    best = Path(checkpoint.best_model_path)
    score = checkpoint.best_model_score
    return FitResult(
        best_path=best,
        best_score=float(score) if score is not None else float("nan"),
        epochs_run=trainer.current_epoch,
        history=tracker.history,
        resumed_from_epoch=resumed_from,
        is_global_zero=trainer.is_global_zero,
    )


def discard(resume_dir: Path) -> None:
    """Drop the checkpoints of a run once its model is exported."""
    shutil.rmtree(resume_dir, ignore_errors=True)
