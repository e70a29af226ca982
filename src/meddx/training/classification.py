"""Train a classifier from arrays: the one path the CNN and RNN stages (and HPO trials) share."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback
from torch import nn

from meddx.io import write_json, write_text
from meddx.paths import Layout
from meddx.provenance import path_digest
from meddx.tracking import StageRun
from meddx.training import batches, export, imbalance
from meddx.training.classifier import Classifier
from meddx.training.fit import discard, fit, run_key, seed_everything


@dataclass
class ClassifierData:
    """Training and validation arrays plus the facts the network is sized by."""

    train: tuple[np.ndarray, ...]
    val: tuple[np.ndarray, ...]
    task: str
    class_names: list[str]
    net_kwargs: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)  # extra facts stored in model.pt


def _tensors(arrays: tuple[np.ndarray, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)


def history_csv(history: list[dict[str, float]]) -> str:
    keys = sorted({k for row in history for k in row if k != "epoch"})
    lines = [",".join(["epoch", *keys])]
    for row in history:
        lines.append(
            ",".join([str(int(row["epoch"]))] + [f"{row.get(k, float('nan')):.6g}" for k in keys])
        )
    return "\n".join(lines) + "\n"


def train_classifier(
    cfg: DictConfig,
    stage: str,
    model_name: str,
    model_cfg: DictConfig,
    data: ClassifierData,
    inputs: list[Path],
    run: StageRun,
    augment: nn.Module | None = None,
    extra_callbacks: list[Callback] | None = None,
) -> dict[str, Any]:
    """Fit, export the best-validation weights to `models/<model_name>/model.pt`, write metrics."""
    layout = Layout.of(cfg)
    started = time.perf_counter()
    seed_everything(cfg.seed, cfg.trainer.num_threads)
    net = export.build_net(model_cfg.net, **data.net_kwargs)
    train_labels, num_classes = data.train[-1], len(data.class_names)
    module = Classifier(
        net=net,
        task=data.task,
        optimizer=instantiate(model_cfg.optimizer),
        scheduler=instantiate(model_cfg.scheduler) if model_cfg.scheduler else None,
        scheduler_interval=model_cfg.get("scheduler_interval", "epoch"),
        augment=augment,
        loss=imbalance.build_loss(
            data.task,
            model_cfg.get("loss"),
            train_labels,
            num_classes,
            label_smoothing=model_cfg.get("label_smoothing", 0.0),
        ),
        channels_last=bool(cfg.trainer.get("channels_last", False)),
    )
    # Oversampling reweights the training split only; validation keeps its true distribution.
    draw = imbalance.sample_weights(data.task, train_labels, num_classes, model_cfg.get("sampling"))
    train_sampler = batches.EpochBatchSampler(
        len(data.train[0]) if draw is None else draw,
        model_cfg.batch_size,
        shuffle=True,
        seed=cfg.seed,
    )
    val_sampler = batches.EpochBatchSampler(
        len(data.val[0]), model_cfg.eval_batch_size, shuffle=False, seed=cfg.seed
    )
    key = run_key(cfg.seed, model_cfg, cfg.trainer, [path_digest(p) for p in inputs])
    resume_dir = layout.resume_dir(stage, key)
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
    )
    if not result.is_global_zero:
        return {}
    state = torch.load(result.best_path, map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"])
    best_row = max(
        (row for row in result.history if model_cfg.monitor in row),
        key=lambda row: row[model_cfg.monitor],
        default={},
    )
    metrics = {f"best_{k}": v for k, v in best_row.items() if k.startswith("val_")} | {
        "best_epoch": int(best_row.get("epoch", -1)),
        "epochs": result.epochs_run,
    }
    model_path = layout.model_dir(model_name) / "model.pt"
    export.save(
        model_path,
        module.net,
        model_cfg.net,
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
    write_text(layout.plots(stage) / "history.csv", history_csv(result.history))
    run.log_metrics(metrics)
    run.log_metrics({"wall_s": time.perf_counter() - started})
    if result.resumed_from_epoch is not None:
        run.set_tags({"meddx.resumed_from_epoch": result.resumed_from_epoch})
    run.log_artifact(layout.metrics(stage), "metrics")
    run.log_artifact(layout.plots(stage) / "history.csv", "plots")
    run.log_artifact(model_path, "model")
    discard(resume_dir)
    return metrics
