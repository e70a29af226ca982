"""The store speaks MLflow's own conventions, so its UI shows what users expect: a model-training
experiment, the Source and Version columns, the Datasets a run read (also after an offline
run's upload)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from meddx.errors import TrackingError
from meddx.paths import Layout, project_root
from meddx.provenance import path_digest
from meddx.tracking import DatasetRead, stage_run
from meddx.tracking.spool import upload
from meddx.tracking.store import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from meddx.tracking.uri import tracking_uri

FACTS = {
    "name": "toyset",
    "splits": {
        "train": {"n": 6, "class_a": 4, "class_b": 2, "pixel_mean": 0.4},
        "val": {"n": 2, "class_a": 1, "class_b": 1},
        "test": {"n": 3, "class_a": 2, "class_b": 1},
    },
}


def _dataset(cfg: DictConfig, splits: tuple[str, ...], context: str) -> DatasetRead:
    path = Path(cfg.paths.root) / "data" / "processed" / "toy.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not really arrays")
    return DatasetRead(path, FACTS, splits, context)


def test_a_new_experiment_is_a_model_training_experiment(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg()
    with stage_run(cfg, "unit"):
        pass
    experiment = MlflowClient(tracking_uri(cfg)).get_experiment_by_name(cfg.tracking.experiment)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"


def test_an_existing_experiment_without_the_kind_gets_it(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg()
    client = MlflowClient(tracking_uri(cfg))
    client.create_experiment(cfg.tracking.experiment)  # as an older meddx left it
    with stage_run(cfg, "unit"):
        pass
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def test_a_run_carries_mlflows_source_tags_with_the_stage_and_commit(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg()
    with stage_run(cfg, "evaluate") as run:
        pass
    tags = MlflowClient(tracking_uri(cfg)).get_run(run.run_id).data.tags
    assert tags["mlflow.source.name"] == "src/meddx/stages/evaluate.py"
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.source.git.commit"] == tags["git.commit"]
    assert tags["mlflow.user"]


def test_the_dataset_a_stage_reads_is_a_dataset_input_of_its_run(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg()
    dataset = _dataset(cfg, ("train", "val"), "training")
    with stage_run(cfg, "unit", inputs=[dataset.path], dataset=dataset) as run:
        pass
    (logged,) = MlflowClient(tracking_uri(cfg)).get_run(run.run_id).inputs.dataset_inputs
    assert logged.dataset.name == "toyset train+val"
    assert logged.dataset.digest == path_digest(dataset.path)
    assert json.loads(logged.dataset.source) == {"uri": "data/processed/toy.npz"}
    assert logged.dataset.source_type == "local"
    assert json.loads(logged.dataset.profile)["splits"]["train"] == {
        "n": 6,
        "class_a": 4,
        "class_b": 2,
    }
    assert {(t.key, t.value) for t in logged.tags} == {("mlflow.data.context", "training")}


def test_a_dataset_input_logged_offline_arrives_with_the_upload(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg()
    dataset = _dataset(cfg, ("test",), "evaluation")
    fields = {"name": "later", "digest": "d1", "source": "{}", "source_type": "local"}
    with pytest.raises(TrackingError), stage_run(cfg, "unit", dataset=dataset) as run:
        run.go_offline(ConnectionError("store down"))
        run.log_dataset(fields, "evaluation")
    client = MlflowClient(tracking_uri(cfg))
    assert [i.dataset.name for i in client.get_run(run.run_id).inputs.dataset_inputs] == [
        "toyset test"
    ]

    upload(Layout(project_root(cfg.paths.root)).unsent_runs)

    inputs = client.get_run(run.run_id).inputs.dataset_inputs
    assert sorted(i.dataset.name for i in inputs) == ["later", "toyset test"]


def test_a_run_spooled_from_the_start_arrives_with_its_dataset_and_source_tags(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg()
    dataset = _dataset(cfg, ("train", "val"), "training")
    with socket.socket() as closed:  # bound, never listening: the server is down
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
        offline = make_cfg(f"tracking.uri={dead}", "tracking.retries=0", "tracking.timeout=5")
        with pytest.raises(TrackingError), stage_run(offline, "train_cnn", dataset=dataset):
            pass

    (run_id,) = upload(Layout(project_root(cfg.paths.root)).unsent_runs, cfg.tracking.uri).values()

    run = MlflowClient(tracking_uri(cfg)).get_run(run_id)
    assert [i.dataset.name for i in run.inputs.dataset_inputs] == ["toyset train+val"]
    assert run.data.tags["mlflow.source.name"] == "src/meddx/stages/train_cnn.py"
    experiment = MlflowClient(tracking_uri(cfg)).get_experiment(run.info.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
