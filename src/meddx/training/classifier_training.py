"""Train a classifier from arrays: the one path the CNN and RNN stages (and HPO trials) share."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback
from torch import nn

from meddx.data.augment import BatchAugment
from meddx.errors import ConfigError
from meddx.io import write_json, write_text
from meddx.models import export
from meddx.models.ensemble import Ensemble
from meddx.models.ensemble import config as ensemble_config
from meddx.paths import Layout
from meddx.provenance import path_digest, run_key
from meddx.training import batches, tasks
from meddx.training.classifier_module import Classifier
from meddx.training.fit import FitResult, discard, fit, seed_everything
from meddx.training.history import history_csv
from meddx.training.run_log import RunLog

# Member k of an ensemble trains from seed + k * stride: far from the seeds a user sweeps.
MEMBER_SEED_STRIDE = 1000


@dataclass
class ClassifierData:
    """Training and validation arrays plus the facts the network is sized by."""

    train: tuple[np.ndarray, ...]
    val: tuple[np.ndarray, ...]
    task: str  # the data facts' task key, resolved by `meddx.training.tasks`
    class_names: list[str]
    net_kwargs: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)  # extra facts stored in model.pt


def _tensors(arrays: tuple[np.ndarray, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)


def ensemble_size(model_cfg: DictConfig) -> int:
    size = model_cfg.get("ensemble", 1)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(f"Invalid ensemble={size!r}: the number of members, an integer >= 1")
    return size


def member_seed(seed: int, member: int) -> int:
    """Member 0 keeps the run's seed, so `ensemble: 1` is the single model of that seed."""
    return seed + MEMBER_SEED_STRIDE * member


def _fit_member(
    cfg: DictConfig,
    stage: str,
    model_cfg: DictConfig,
    data: ClassifierData,
    digests: list[str],
    run: RunLog,
    member: int,
    prefix: str,
    augment: nn.Module | None,
    extra_callbacks: list[Callback] | None,
) -> tuple[Classifier, FitResult, Path]:
    """Train one network from its own seed; each member resumes from its own checkpoints."""
    seed = member_seed(cfg.seed, member)
    seed_everything(seed, cfg.trainer.num_threads)
    train_labels, num_classes = data.train[-1], len(data.class_names)
    task = tasks.of(data.task)
    module = Classifier(
        net=export.build_net(model_cfg.net, **data.net_kwargs),
        task=data.task,
        optimizer=instantiate(model_cfg.optimizer),
        scheduler=instantiate(model_cfg.scheduler) if model_cfg.scheduler else None,
        scheduler_interval=model_cfg.get("scheduler_interval", "epoch"),
        augment=augment,
        loss=task.loss(model_cfg, train_labels, num_classes),
        mixup_alpha=model_cfg.get("mixup_alpha", 0.0),
        channels_last=bool(cfg.trainer.get("channels_last", False)),
    )
    # Oversampling reweights the training split only; validation keeps its true distribution.
    draw = task.sample_weights(model_cfg, train_labels, num_classes)
    train_sampler = batches.EpochBatchSampler(
        len(data.train[0]) if draw is None else draw,
        model_cfg.batch_size,
        shuffle=True,
        seed=seed,
    )
    val_sampler = batches.EpochBatchSampler(
        len(data.val[0]), model_cfg.eval_batch_size, shuffle=False, seed=seed
    )
    augmented = augment.settings() if isinstance(augment, BatchAugment) else None
    key = run_key(seed, model_cfg, cfg.trainer, digests, augmented)
    resume_dir = Layout.of(cfg).resume_dir(stage, key)
    result = fit(
        module,
        batches.loader(_tensors(data.train), train_sampler),
        batches.loader(_tensors(data.val), val_sampler),
        cfg.trainer,
        max_epochs=model_cfg.max_epochs,
        monitor=model_cfg.monitor,
        mode="max",
        resume_dir=resume_dir,
        run=run,
        patience=model_cfg.patience,
        extra_callbacks=extra_callbacks,
        metric_prefix=prefix,
    )
    if result.is_global_zero:
        state = torch.load(result.best_path, map_location="cpu", weights_only=False)
        module.load_state_dict(state["state_dict"])
    return module, result, resume_dir


def _best_row(history: list[dict[str, float]], monitor: str) -> dict[str, float]:
    return max((row for row in history if monitor in row), key=lambda row: row[monitor], default={})


def train_classifier(
    cfg: DictConfig,
    stage: str,
    model_name: str,
    model_cfg: DictConfig,
    data: ClassifierData,
    inputs: list[Path],
    run: RunLog,
    augment: nn.Module | None = None,
    extra_callbacks: list[Callback] | None = None,
) -> dict[str, Any]:
    """Fit, export the best-validation weights to `models/<model_name>/model.pt`, write metrics.

    With `ensemble: k > 1`, k members are fitted one after another and exported as one
    `Ensemble`; its `best_val_*` figures are the ensemble's own on the validation split.
    """
    layout = Layout.of(cfg)
    started = time.perf_counter()
    size = ensemble_size(model_cfg)
    digests = [path_digest(p) for p in inputs]
    fitted = [
        _fit_member(
            cfg,
            stage,
            model_cfg,
            data,
            digests,
            run,
            member,
            f"member{member}_" if size > 1 else "",
            augment,
            extra_callbacks,
        )
        for member in range(size)
    ]
    if not fitted[-1][1].is_global_zero:
        return {}
    monitor = model_cfg.monitor
    history = [
        row | ({"member": member} if size > 1 else {})
        for member, (_, result, _) in enumerate(fitted)
        for row in result.history
    ]
    if size == 1:
        module, result, _ = fitted[0]
        net, net_cfg = module.net, model_cfg.net
        best_row = _best_row(result.history, monitor)
        metrics = {f"best_{k}": v for k, v in best_row.items() if k.startswith("val_")} | {
            "best_epoch": int(best_row.get("epoch", -1)),
            "epochs": result.epochs_run,
        }
    else:
        net = Ensemble(members=[module.net for module, _, _ in fitted])
        net_cfg = OmegaConf.create(ensemble_config(model_cfg.net, size))
        task = tasks.of(data.task)
        found = task.summary(
            data.val[-1], task.predict(net, data.val[:-1], model_cfg.eval_batch_size)
        )
        metrics = {f"best_val_{k}": float(v) for k, v in found.items()} | {
            "epochs": sum(result.epochs_run for _, result, _ in fitted),
        }
        for member, (_, result, _) in enumerate(fitted):
            row = _best_row(result.history, monitor)
            metrics[f"member{member}_best_epoch"] = int(row.get("epoch", -1))
            metrics[f"member{member}_best_{monitor}"] = float(row.get(monitor, float("nan")))
    model_path = layout.model_dir(model_name) / "model.pt"
    export.save(
        model_path,
        net,
        net_cfg,
        data.net_kwargs,
        info={
            "task": data.task,
            "class_names": data.class_names,
            "stage": stage,
            "best": metrics,
            **data.info,
        },
    )
    write_json(layout.metrics(stage), metrics)
    write_text(layout.plots(stage) / "history.csv", history_csv(history))
    run.log_metrics(metrics)
    run.log_metrics({"wall_s": time.perf_counter() - started})
    resumed = [r.resumed_from_epoch for _, r, _ in fitted if r.resumed_from_epoch is not None]
    if resumed:
        run.set_tags({"meddx.resumed_from_epoch": resumed[0]})
    run.log_artifact(layout.metrics(stage), "metrics")
    run.log_artifact(layout.plots(stage) / "history.csv", "plots")
    run.log_artifact(model_path, "model")
    for _, _, resume_dir in fitted:
        discard(resume_dir)
    return metrics
