"""`trainer=ddp`: the CNN trains over two CPU processes (gloo), and only rank 0 writes and logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import CONF, REPO, TINY_IMAGES
from meddx.config import compose
from meddx.stages import acquire_images, preprocess_images

TRAINER_KEYS = {
    "accelerator",
    "devices",
    "strategy",
    "precision",
    "num_threads",
    "deterministic",
    "progress_bar",
}


@pytest.mark.parametrize("option", ["cpu", "ddp", "gpu"])
def test_every_trainer_option_sets_what_fit_reads(option: str) -> None:
    trainer = compose([f"trainer={option}"], conf_dir=CONF).trainer
    assert set(trainer) >= TRAINER_KEYS


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_gives_one_model_one_metrics_file_one_run(
    tmp_path: Path, make_cfg, tracking_db: str
) -> None:
    cfg = make_cfg(*TINY_IMAGES)
    acquire_images.run(cfg)
    preprocess_images.run(cfg)
    overrides = [
        f"paths.root={tmp_path}",
        f"tracking.uri={tracking_db}",
        f"tracking.experiment={cfg.tracking.experiment}",
        *TINY_IMAGES,
        "trainer=ddp",
    ]
    env = {
        **os.environ,
        "MEDDX_CONF_DIR": str(CONF),
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    # The CLI, as dvc.yaml runs it: Lightning's launcher re-runs this command line for rank 1.
    done = subprocess.run(
        [sys.executable, "-m", "meddx", "train_cnn", *overrides],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )

    assert done.returncode == 0, done.stderr[-4000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in done.stderr
    assert "distributed_backend=gloo" in done.stderr
    assert (tmp_path / "models" / "cnn" / "model.pt").is_file()
    metrics = json.loads((tmp_path / "reports" / "metrics" / "train_cnn.json").read_text())
    assert metrics["epochs"] == 2 and 0.0 <= metrics["best_val_auc"] <= 1.0
    client = MlflowClient(tracking_db)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3  # acquire_images, preprocess_images, and ONE train_cnn run
    (train,) = [r for r in runs if r.data.tags["meddx.stage"] == "train_cnn"]
    assert train.info.status == "FINISHED"
    assert train.data.params["trainer.strategy"] == "ddp"
    history = client.get_metric_history(train.info.run_id, "val_auc")
    assert sorted(m.step for m in history) == [0, 1]  # one value per epoch, not one per rank
