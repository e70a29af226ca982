"""`make bench-overhead`: what meddx's pipeline costs over a plain PyTorch loop.

The same network, data, batches, augmentation, optimiser, schedule and epochs, trained
(a) by a hand-written loop that validates each epoch and keeps the best-AUC weights and
(b) by the `train_cnn` stage (Lightning, checkpoints for resume, export, MLflow tracking
on), alternating so that load on the machine hits both alike. Writes the medians to
reports/benchmarks/overhead.json as {"raw_s", "meddx_s", "ratio"}. Target: ratio <= 1.05.
Data: PneumoniaMNIST from the mirror (`+experiment=pneumonia`, trained for its own epochs);
REPEATS (default 3) and EPOCHS (default: the recipe's cnn.max_epochs) set the size.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import REPO, project, stage_medmnist
from hydra.utils import instantiate
from omegaconf import DictConfig

from meddx import metrics
from meddx.data.augment import BatchAugment
from meddx.data.npz import load_npz
from meddx.io import write_json
from meddx.models import export
from meddx.paths import Layout
from meddx.stages import preprocess_images, train_cnn
from meddx.training.fit import seed_everything


def raw_loop(cfg: DictConfig) -> float:
    """The baseline: the loop one would write by hand for the same job."""
    started = time.perf_counter()
    layout = Layout.of(cfg)
    facts = json.loads(layout.processed_images_meta.read_text())
    arrays = load_npz(layout.processed_images)
    x, y = (torch.from_numpy(arrays[k]) for k in ("train_images", "train_labels"))
    vx, vy = arrays["val_images"], arrays["val_labels"]
    seed_everything(cfg.seed, cfg.trainer.num_threads)
    net = export.build_net(
        cfg.cnn.net,
        in_channels=facts["channels"],
        num_classes=facts["num_classes"],
        image_size=facts["size"],
    )
    optimizer = instantiate(cfg.cnn.optimizer)(net.parameters())
    batch = cfg.cnn.batch_size
    steps = cfg.cnn.max_epochs * -(-len(x) // batch)
    scheduler = instantiate(cfg.cnn.scheduler)(optimizer, total_steps=steps)
    augment = BatchAugment(**cfg.data.image.augment)
    loss_fn = torch.nn.CrossEntropyLoss()
    best, best_state = -1.0, None
    for epoch in range(cfg.cnn.max_epochs):
        net.train()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(x), batch):
            index = order[start : start + batch]
            optimizer.zero_grad()
            loss = loss_fn(net(augment(x[index])), y[index])
            loss.backward()
            optimizer.step()
            scheduler.step()
        net.eval()
        with torch.no_grad():
            scores = torch.cat(
                [net(torch.from_numpy(vx[i : i + 512])).softmax(1) for i in range(0, len(vx), 512)]
            ).numpy()
        auc = metrics.auc(facts["task"], vy, scores)
        if auc > best:
            best, best_state = auc, copy.deepcopy(net.state_dict())
    torch.save(best_state, Path(cfg.paths.root) / "raw_model.pt")
    return time.perf_counter() - started


def meddx_stage(cfg: DictConfig) -> float:
    started = time.perf_counter()
    train_cnn.run(cfg)
    return time.perf_counter() - started


def main() -> int:
    repeats = int(os.environ.get("REPEATS", "3"))
    epochs = os.environ.get("EPOCHS")
    raw: list[float] = []
    ours: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        cfg = project(
            Path(tmp),
            "+experiment=pneumonia",
            *([f"cnn.max_epochs={epochs}"] if epochs else []),
            experiment="meddx-bench-overhead",
        )
        stage_medmnist(cfg)
        preprocess_images.run(cfg)
        for repeat in range(repeats):
            # Alternate which goes first so drifting machine load does not favour one side.
            order = (raw_loop, meddx_stage) if repeat % 2 == 0 else (meddx_stage, raw_loop)
            for job in order:
                (raw if job is raw_loop else ours).append(job(cfg))
            print(json.dumps({"repeat": repeat, "raw_s": raw[-1], "meddx_s": ours[-1]}), flush=True)
    result = {"raw_s": statistics.median(raw), "meddx_s": statistics.median(ours)}
    result["ratio"] = result["meddx_s"] / result["raw_s"]
    result |= {
        "epochs": int(cfg.cnn.max_epochs),
        "repeats": repeats,
        "raw_runs": raw,
        "meddx_runs": ours,
        "threads": int(cfg.trainer.num_threads),
        "load_avg_1m": os.getloadavg()[0],
    }
    write_json(REPO / "reports" / "benchmarks" / "overhead.json", result)
    print(json.dumps(result, indent=2))
    return 0 if np.isfinite(result["ratio"]) else 1


if __name__ == "__main__":
    sys.exit(main())
