"""`dvc repro` of the whole DAG in a fresh copy of the repo, on a tiny config.

Real DVC, real MLflow sqlite store at the copy's root, real subprocesses: what a user gets
from `make repro`, shrunk to seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import REPO, TinyPipeline, copy_project, run_ok
from meddx.paths import pipeline_stages

pytestmark = pytest.mark.slow
STAGES = set(pipeline_stages(REPO / "dvc.yaml"))  # the volume pipeline's `foreach` ones too


@pytest.fixture(scope="module")
def repo(tiny_pipeline: TinyPipeline) -> tuple[Path, dict[str, str]]:
    """A committed copy of the project with a tiny config, after one `dvc repro` (the session's
    build, conftest.tiny_pipeline)."""
    return tiny_pipeline.root, {**tiny_pipeline.env, "REPRO_OUTPUT": tiny_pipeline.repro_output}


def test_repro_runs_every_stage_and_writes_the_outputs(repo: tuple[Path, dict[str, str]]) -> None:
    root, env = repo
    for stage in STAGES:
        assert f"Running stage '{stage}'" in env["REPRO_OUTPUT"]
    for out in ("data/raw/images.npz", "data/processed/images.npz", "models/cnn/model.pt"):
        assert (root / out).is_file(), out
    for out in ("data/raw/volume/images.npz", "models/volume/cnn/model.pt"):
        assert (root / out).is_file(), out


def test_metrics_files_parse_and_hold_numbers(repo: tuple[Path, dict[str, str]]) -> None:
    root, _ = repo
    evaluation = json.loads((root / "reports/metrics/evaluate.json").read_text())
    assert 0.0 <= evaluation["test_auc"] <= 1.0
    training = json.loads((root / "reports/metrics/train_cnn.json").read_text())
    assert training["epochs"] == 2


def test_status_is_clean_after_repro(repo: tuple[Path, dict[str, str]]) -> None:
    root, env = repo
    assert "up to date" in run_ok(["dvc", "status"], root, env).stdout


def test_mlflow_holds_one_run_per_stage_with_provenance(
    repo: tuple[Path, dict[str, str]], tiny_pipeline: TinyPipeline
) -> None:
    root, _ = repo
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("meddx")
    runs = client.search_runs([experiment.experiment_id])
    stage_runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    names = [r.data.tags["dvc.stage"] for r in stage_runs]
    assert all(names.count(stage) == 1 for stage in STAGES)  # (the ECG DAG runs too)
    tune = next(r for r in stage_runs if r.data.tags["dvc.stage"] == "tune")
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == tune.info.run_id]
    assert len(trials) == 2  # one nested run per HPO trial
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["meddx.pipeline_id"] for r in runs}) == 1
    assert {r.data.tags["git.commit"] for r in runs} == {tiny_pipeline.ran_at}
    train = next(r for r in runs if r.data.tags["dvc.stage"] == "train_cnn")
    assert "input.data/processed/images.npz" in train.data.tags
    assert "model/model.pt" in [a.path for a in client.list_artifacts(train.info.run_id, "model")]
    assert train.data.tags["meddx.tuned_keys"]  # trained with the tune stage's best


def test_second_repro_runs_nothing(repo: tuple[Path, dict[str, str]]) -> None:
    root, env = repo
    output = run_ok(["dvc", "repro"], root, env).stdout
    assert "Running stage" not in output


def _named(shown: object, name: str) -> dict:
    """The entry of `dvc exp show --json` output for the experiment called `name`."""
    if isinstance(shown, dict):
        if shown.get("name") == name and "data" in shown:
            return shown
        shown = list(shown.values())
    if isinstance(shown, list):
        for item in shown:
            found = _named(item, name)
            if found:
                return found
    return {}


def test_the_tuned_values_are_params_that_dvc_shows_and_the_run_logs(
    repo: tuple[Path, dict[str, str]],
) -> None:
    root, env = repo
    diff = json.loads(run_ok(["dvc", "params", "diff", "--all", "--json"], root, env).stdout)
    changes = diff["models/tune/best.yaml"].items()  # against the copied checkout's file
    tuned = {key: change["new"] for key, change in changes if change["new"] is not None}
    assert set(tuned) >= {"cnn.optimizer.lr", "cnn.net.hidden"}
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["train_cnn"]["params"]
    assert lock["models/tune/best.yaml"] == tuned
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    (train,) = client.search_runs(
        [client.get_experiment_by_name("meddx").experiment_id],
        filter_string="tags.`dvc.stage` = 'train_cnn'",
    )
    assert train.data.params["cnn.optimizer.lr"] == str(tuned["cnn.optimizer.lr"])
    assert set(train.data.tags["meddx.tuned_keys"].split(" ")) == set(tuned)


def test_exp_run_with_a_changed_param_is_a_new_experiment_and_run(
    repo: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    built, env = repo
    root = copy_project(built, tmp_path / "project")  # the experiment changes the workspace
    # lr is one that tune searches: the experiment trains tune's choice, and every view says so
    run_ok(["dvc", "exp", "run", "-S", "cnn.optimizer.lr=0.01", "-n", "lr-0.01"], root, env)
    shown = _named(
        json.loads(run_ok(["dvc", "exp", "show", "--json"], root, env).stdout), "lr-0.01"
    )
    params = shown["data"]["params"]
    assert params["params.yaml"]["data"]["cnn"]["optimizer"]["lr"] == 0.01
    tuned_lr = params["models/tune/best.yaml"]["data"]["cnn.optimizer.lr"]
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("meddx")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`dvc.exp_name` = 'lr-0.01'"
    )
    stage_runs = {
        r.data.tags["dvc.stage"]: r for r in runs if "mlflow.parentRunId" not in r.data.tags
    }
    # train_cnn, and the stages that read `cnn` too (tune searches it, evaluate_gan trains it)
    assert {"tune", "train_cnn", "evaluate_gan"} <= set(stage_runs)
    assert stage_runs["tune"].data.params["cnn.optimizer.lr"] == "0.01"  # the search's base
    train = stage_runs["train_cnn"]
    assert train.data.params["cnn.optimizer.lr"] == str(tuned_lr) != "0.01"
    assert "cnn.optimizer.lr" in train.data.tags["meddx.tuned_keys"].split(" ")
