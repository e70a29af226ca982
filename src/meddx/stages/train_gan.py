"""Stage `train_gan`: fit the class-conditional GAN (gan=<name>) on the real training split.

The GAN learns in [-1, 1] units mapped from the dataset's own scale, so any `intensity`
setting works. There is no validation metric that picks a best GAN epoch, so the last
epoch is exported (`models/gan/generator.pt`, loadable without Lightning); its quality is
judged downstream by `evaluate_gan`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from meddx.data.intensity import processed_to_unit
from meddx.data.npz import load_npz
from meddx.errors import ConfigError
from meddx.io import write_json, write_text
from meddx.models import export
from meddx.models.gan import dataset_kwargs
from meddx.paths import Layout, require
from meddx.provenance import path_digest, run_key
from meddx.tracking import DatasetRead, stage_run
from meddx.training import batches
from meddx.training.fit import discard, fit, seed_everything
from meddx.training.gan import ConditionalGAN, SampleGrids
from meddx.training.history import history_csv

STAGE = "train_gan"
SECTIONS = ("seed", "gan", "trainer")
# Keys of `gan` that do not change training (and so must not change the resume key).
NOT_TRAINING = ("generate", "evaluate")


def generator_path(layout: Layout) -> Path:
    return layout.model_dir("gan") / "generator.pt"


def _check(gan: DictConfig) -> None:
    if gan.loss == "wgan_gp" and gan.discriminator.get("norm") == "batch":
        raise ConfigError(
            "gan.loss=wgan_gp with gan.discriminator.norm=batch: batch norm mixes samples and "
            "breaks the per-sample gradient penalty; use norm=layer or norm=none"
        )


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    images = require(layout.processed_images, layout.root)
    meta_path = require(layout.processed_images_meta, layout.root)
    facts = json.loads(meta_path.read_text())
    sizes = dataset_kwargs(facts)
    gan = cfg.gan
    _check(gan)
    arrays = load_npz(images, keys=("train_images", "train_labels"))
    real = processed_to_unit(arrays["train_images"], facts["normalization"]) * 2 - 1
    labels = arrays["train_labels"].reshape(-1).astype(np.int64)

    started = time.perf_counter()
    seed_everything(cfg.seed, cfg.trainer.num_threads)
    generator = export.build_net(gan.generator, **sizes)
    module = ConditionalGAN(
        generator=generator,
        discriminator=export.build_net(gan.discriminator, **sizes),
        loss=gan.loss,
        optimizer_g=instantiate(gan.optimizer_g),
        optimizer_d=instantiate(gan.optimizer_d),
        n_critic=gan.n_critic,
        gp_weight=gan.gp_weight,
        grid_per_class=gan.grid_per_class,
        seed=cfg.seed,
    )
    sampler = batches.EpochBatchSampler(len(real), gan.batch_size, shuffle=True, seed=cfg.seed)
    training = {
        k: v for k, v in OmegaConf.to_container(gan, resolve=True).items() if k not in NOT_TRAINING
    }
    key = run_key(cfg.seed, training, cfg.trainer, [path_digest(p) for p in (images, meta_path)])
    resume_dir = layout.resume_dir(STAGE, key)
    plots = layout.plots(STAGE)
    run_name = f"{STAGE} {gan.name} on {facts['name']}"
    dataset = DatasetRead(images, facts, ("train",), "training")
    with stage_run(
        cfg, STAGE, [images, meta_path], run_name=run_name, sections=SECTIONS, dataset=dataset
    ) as tracked:
        result = fit(
            module,
            batches.loader((torch.from_numpy(real), torch.from_numpy(labels)), sampler),
            None,
            cfg.trainer,
            max_epochs=gan.max_epochs,
            monitor=None,
            mode="min",
            resume_dir=resume_dir,
            run=tracked,
            extra_callbacks=[SampleGrids(tracked, plots / "samples.png")],
        )
        state = torch.load(result.best_path, map_location="cpu", weights_only=False)
        module.load_state_dict(state["state_dict"])
        last = result.history[-1] if result.history else {}
        metrics: dict[str, Any] = {
            f"final_{k}": v for k, v in last.items() if k not in ("epoch", "lr")
        }
        # Wall time goes to MLflow only: the DVC metrics file must reproduce exactly.
        metrics["epochs"] = result.epochs_run
        model_path = generator_path(layout)
        export.save(
            model_path,
            module.generator,
            gan.generator,
            sizes,
            info={
                "gan": gan.name,
                "task": facts["task"],
                "dataset": facts["name"],
                "class_names": facts["class_names"],
                "epochs": result.epochs_run,
            },
        )
        write_json(layout.metrics(STAGE), metrics)
        write_text(plots / "history.csv", history_csv(result.history))
        tracked.log_metrics(metrics | {"wall_s": time.perf_counter() - started})
        if result.resumed_from_epoch is not None:
            tracked.set_tags({"meddx.resumed_from_epoch": result.resumed_from_epoch})
        tracked.log_artifact(layout.metrics(STAGE), "metrics")
        tracked.log_artifact(plots, "plots")
        tracked.log_artifact(model_path, "model")
    discard(resume_dir)
    return metrics
