"""Every stage execution is one MLflow run carrying its provenance; metrics go out in batches;
an unreachable store loses nothing, whichever stage writes."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from conftest import TINY_IMAGES
from meddx import cli
from meddx.errors import TrackingError
from meddx.io import write_json
from meddx.paths import Layout, project_root
from meddx.stages import acquire_images, preprocess_images, report
from meddx.tracking import stage_run
from meddx.tracking.run import sent_run_id
from meddx.tracking.spool import upload
from meddx.tracking.uri import tracking_uri


def _runs(cfg: DictConfig) -> list:
    client = MlflowClient(tracking_uri(cfg))
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    return client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])


def test_each_stage_execution_is_one_finished_run_with_provenance(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg(*TINY_IMAGES)
    acquire_images.run(cfg)
    preprocess_images.run(cfg)
    acquire, preprocess = _runs(cfg)
    assert acquire.info.status == preprocess.info.status == "FINISHED"
    tags = preprocess.data.tags
    assert tags["dvc.stage"] == "preprocess_images"
    assert len(tags["git.commit"]) == 40
    assert tags["git.dirty"] in ("true", "false")
    assert len(tags["input.data/raw/images.npz"]) == 32
    assert tags["meddx.pipeline_id"] == acquire.data.tags["meddx.pipeline_id"]


def test_run_params_are_the_stage_config_sections_flattened(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg(*TINY_IMAGES)
    acquire_images.run(cfg)
    (run,) = _runs(cfg)
    assert run.data.params["seed"] == "42"
    assert run.data.params["data.image.synthetic.train"] == "160"
    assert not any(key.startswith("cnn.") for key in run.data.params)


def test_run_keeps_the_full_resolved_config_as_an_artifact(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg(*TINY_IMAGES)
    acquire_images.run(cfg)
    (run,) = _runs(cfg)
    client = MlflowClient(tracking_uri(cfg))
    text = client.download_artifacts(run.info.run_id, "config.yaml")
    with open(text) as handle:
        assert "cnn:" in handle.read()


def test_metrics_stay_buffered_until_flushed(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg()
    client = MlflowClient(tracking_uri(cfg))
    with stage_run(cfg, "unit") as run:
        for step in range(50):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        assert client.get_metric_history(run.run_id, "loss") == []
        run.flush()
        assert len(client.get_metric_history(run.run_id, "loss")) == 50


def test_a_failing_stage_leaves_a_failed_run_with_the_error(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg()
    try:
        with stage_run(cfg, "unit"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    (run,) = _runs(cfg)
    assert run.info.status == "FAILED"
    assert "boom" in run.data.tags["meddx.error"]


def test_another_run_is_tagged_and_closed_through_the_stage_run(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg()
    with stage_run(cfg, "unit") as trial:
        pass
    with stage_run(cfg, "unit") as stage:
        orphan = stage.on_run(trial.run_id)
        orphan.set_tags({"meddx.trial_state": "failed"})
        orphan.close("KILLED")
    run = MlflowClient(tracking_uri(cfg)).get_run(trial.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["meddx.trial_state"] == "failed"


def test_another_run_waits_in_the_spool_while_the_store_is_offline(
    make_cfg: Callable[..., DictConfig],
) -> None:
    cfg = make_cfg()
    client = MlflowClient(tracking_uri(cfg))
    with stage_run(cfg, "unit") as trial:
        pass
    with pytest.raises(TrackingError), stage_run(cfg, "unit") as stage:
        stage.go_offline(ConnectionError("store down"))
        orphan = stage.on_run(trial.run_id)
        orphan.set_tags({"meddx.trial_state": "failed"})
        orphan.close("KILLED")
    assert client.get_run(trial.run_id).info.status == "FINISHED"

    upload(Layout(project_root(cfg.paths.root)).unsent_runs)

    run = client.get_run(trial.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["meddx.trial_state"] == "failed"


def _artifact_files(client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    files = []
    for item in client.list_artifacts(run_id, path):
        files += _artifact_files(client, run_id, item.path) if item.is_dir else [item.path]
    return sorted(files)


def test_an_uploaded_spooled_run_has_the_artifact_layout_of_a_live_run(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = make_cfg(*TINY_IMAGES)
    acquire_images.run(cfg)
    preprocess_images.run(cfg)  # live
    with socket.socket() as closed:  # bound, never listening: the server is down
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
        offline = make_cfg(*TINY_IMAGES, f"tracking.uri={dead}", "tracking.retries=0")
        with pytest.raises(TrackingError):
            preprocess_images.run(offline)  # spooled

    assert cli.main(["upload", f"paths.root={tmp_path}", f"tracking.uri={cfg.tracking.uri}"]) == 0

    live, uploaded = (
        run for run in _runs(cfg) if run.data.tags["dvc.stage"] == "preprocess_images"
    )
    client = MlflowClient(tracking_uri(cfg))
    expected = _artifact_files(client, live.info.run_id)
    assert "samples/0_disc.png" in expected
    assert _artifact_files(client, uploaded.info.run_id) == expected


def test_an_offline_report_is_written_and_its_run_uploaded_later(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = make_cfg()
    write_json(Layout(tmp_path).metrics("evaluate"), {"test_auc": 0.9, "n_test": 80})
    with socket.socket() as closed:  # bound, never listening: the server is down
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
        offline = make_cfg(f"tracking.uri={dead}", "tracking.retries=0", "tracking.timeout=5")
        with pytest.raises(TrackingError, match="python -m meddx upload"):
            report.run(offline)

    markdown = (tmp_path / "reports" / "report.md").read_text()
    assert "unknown (MLflow unreachable)" in markdown  # no run id read, and it says so
    (spool,) = Layout(tmp_path).unsent_runs.glob("*.json")
    assert spool.name in markdown  # the report names its own (spooled) run

    assert cli.main(["upload", f"paths.root={tmp_path}", f"tracking.uri={cfg.tracking.uri}"]) == 0

    (uploaded,) = [r for r in _runs(cfg) if r.data.tags["dvc.stage"] == "report"]
    assert uploaded.info.status == "FINISHED"
    client = MlflowClient(tracking_uri(cfg))
    assert _artifact_files(client, uploaded.info.run_id, "report") == [
        "report/report.html",
        "report/report.md",
    ]


def test_child_runs_of_an_offline_run_keep_their_nesting_and_tags_through_the_upload(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = make_cfg()
    with socket.socket() as closed:  # bound, never listening: the server is down
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
        offline = make_cfg(f"tracking.uri={dead}", "tracking.retries=0", "tracking.timeout=5")
        with pytest.raises(TrackingError) as failure, stage_run(offline, "unit") as parent:
            with stage_run(offline, "unit", parent_run_id=parent.ref) as child:
                child.log_metrics({"val_auc": 0.5})
            # the child's block ended without a TrackingError: an HPO trial keeps its result
            parent.on_run(child.ref).set_tags({"meddx.best_trial": "true"})
    spool_dir = Layout(tmp_path).unsent_runs
    spooled = sorted(spool_dir.glob("*.json"))
    assert len(spooled) == 2 and all(str(path) in str(failure.value) for path in spooled)

    upload(spool_dir, cfg.tracking.uri)

    (top,) = [r for r in _runs(cfg) if "mlflow.parentRunId" not in r.data.tags]
    (nested,) = [r for r in _runs(cfg) if "mlflow.parentRunId" in r.data.tags]
    assert nested.data.tags["mlflow.parentRunId"] == top.info.run_id
    assert nested.data.tags["meddx.best_trial"] == "true"
    assert nested.data.metrics["val_auc"] == 0.5
    assert {top.info.status, nested.info.status} == {"FINISHED"}
    assert sent_run_id(spool_dir, child.ref) == nested.info.run_id  # refs kept elsewhere resolve
