"""`dvc repro` of the whole DAG in a fresh copy of the repo, on a tiny config.

Real DVC, real MLflow sqlite store at the copy's root, real subprocesses: what a user gets
from `make repro`, shrunk to seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import REPO
from meddx.paths import pipeline_stages

pytestmark = pytest.mark.slow
STAGES = set(pipeline_stages(REPO / "dvc.yaml"))  # the volume pipeline's `foreach` ones too
TINY = {
    "conf/data/image/synthetic.yaml": {
        ("synthetic", "train"): 160,
        ("synthetic", "val"): 80,
        ("synthetic", "test"): 80,
    },
    "conf/cnn/basic.yaml": {("max_epochs",): 2, ("batch_size",): 32},
    "conf/rnn/lstm.yaml": {("max_epochs",): 2, ("batch_size",): 64, ("net", "hidden"): 16},
    "conf/hpo/basic.yaml": {("n_trials",): 2, ("trial_overrides",): ["cnn.max_epochs=1"]},
    "conf/data/image/synthetic3d.yaml": {
        ("synthetic", "train"): 48,
        ("synthetic", "val"): 24,
        ("synthetic", "test"): 24,
    },
    "conf/pipelines/volume.yaml": {("cnn", "max_epochs"): 1},
}


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _shrink(repo: Path) -> None:
    for name, changes in TINY.items():
        path = repo / name
        text = path.read_text()
        header = "".join(line for line in text.splitlines(True) if line.startswith("# @package"))
        data = yaml.safe_load(text)
        for keys, value in changes.items():
            node = data
            for key in keys[:-1]:
                node = node[key]
            node[keys[-1]] = value
        path.write_text(header + yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A committed copy of the project with a tiny config, after one `dvc repro`."""
    root = tmp_path_factory.mktemp("repo")
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        source = REPO / name
        if source.is_file() and not name.startswith(("reports/", "dvc.lock")):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "MEDDX_PIPELINE", "DVC_"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(root / "src")
    _shrink(root)
    _run([sys.executable, "-m", "meddx", "compose", "--output", "params.yaml"], root, env)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
    ):
        _run(cmd, root, env)
    env["REPRO_OUTPUT"] = _run(["dvc", "repro"], root, env).stdout
    return root, env


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
    assert "up to date" in _run(["dvc", "status"], root, env).stdout


def test_mlflow_holds_one_run_per_stage_with_provenance(repo: tuple[Path, dict[str, str]]) -> None:
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
    commit = _run(["git", "rev-parse", "HEAD"], root, {**os.environ}).stdout.strip()
    assert {r.data.tags["git.commit"] for r in runs} == {commit}
    train = next(r for r in runs if r.data.tags["dvc.stage"] == "train_cnn")
    assert "input.data/processed/images.npz" in train.data.tags
    assert "model/model.pt" in [a.path for a in client.list_artifacts(train.info.run_id, "model")]
    assert train.data.tags["meddx.tuned_keys"]  # trained with the tune stage's best


def test_second_repro_runs_nothing(repo: tuple[Path, dict[str, str]]) -> None:
    root, env = repo
    output = _run(["dvc", "repro"], root, env).stdout
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
    diff = json.loads(_run(["dvc", "params", "diff", "--all", "--json"], root, env).stdout)
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
    repo: tuple[Path, dict[str, str]],
) -> None:
    root, env = repo
    # lr is one that tune searches: the experiment trains tune's choice, and every view says so
    _run(["dvc", "exp", "run", "-S", "cnn.optimizer.lr=0.01", "-n", "lr-0.01"], root, env)
    shown = _named(json.loads(_run(["dvc", "exp", "show", "--json"], root, env).stdout), "lr-0.01")
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
