"""A real PostgreSQL under concurrent writers: one Optuna study, one MLflow backend store.

The server is Debian's, started on a fresh cluster on loopback for this module
(tests/servers.py). Without one this module is skipped on a developer's machine, and fails
under CI (CI=true), whose .ci/run installs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import psutil
import pytest
from mlflow.tracking import MlflowClient

import servers
from conftest import REPO, TINY_IMAGES
from meddx.stages import acquire_images, preprocess_images

TINY_STUDY = (*TINY_IMAGES, "hpo.trial_overrides=['cnn.max_epochs=1']")
COMPLETE, RUNNING = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    try:
        servers.require()
    except servers.Unavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI needs PostgreSQL (.ci/run installs it): {exc}")
        pytest.skip(str(exc))
    with servers.postgres() as url:
        yield url


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def _is_worker(child: psutil.Process) -> bool:
    try:
        return "spawn_main" in " ".join(child.cmdline())
    except psutil.ZombieProcess:
        return False  # a short-lived helper (git for the provenance tags) not yet reaped


def _workers(stage: int) -> list[int]:
    """The pids of the stage's spawned tune workers (its direct children), in the order they
    were started: the index is the worker number the trials record."""
    children = [c for c in psutil.Process(stage).children() if _is_worker(c)]
    return [child.pid for child in sorted(children, key=lambda c: (c.create_time(), c.pid))]


def _trials(storage: optuna.storages.BaseStorage, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials()
    except KeyError:  # the stage has not created the study yet
        return []


@pytest.mark.slow
def test_four_workers_on_a_postgresql_study_keep_every_trial_when_one_is_killed(
    postgres: str, make_cfg, tmp_path: Path
) -> None:
    url = servers.create_database(postgres, "optuna")
    # The schema first, so that polling the study from here never races the stage creating it
    storage = optuna.storages.RDBStorage(url)
    n_trials, name = 8, "pg-four"
    overrides = [
        f"paths.root={tmp_path}",
        *TINY_STUDY,
        f"hpo.n_trials={n_trials}",
        "hpo.n_workers=4",
        f"hpo.study_name={name}",
        "hpo.pruner=none",
        "hpo.sampler=random",
    ]
    cfg = make_cfg(*overrides)
    acquire_images.run(cfg)
    preprocess_images.run(cfg)
    log = tmp_path / "tune.log"
    command = [sys.executable, "-m", "meddx", "tune", f"tracking.uri={cfg.tracking.uri}"]
    command += [f"tracking.experiment={cfg.tracking.experiment}", *overrides]
    with log.open("w") as sink:
        stage = subprocess.Popen(
            command,
            cwd=REPO,
            env=_env(MEDDX_OPTUNA_STORAGE=url),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 300
    try:  # kill one worker in the middle of a trial, once another trial has completed
        while True:
            assert stage.poll() is None, f"the stage ended first:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no trial completed within 300 s"
            trials = _trials(storage, name)
            running = [t for t in trials if t.state == RUNNING and "worker" in t.user_attrs]
            if running and any(t.state == COMPLETE for t in trials):
                break
            time.sleep(0.2)
        victim = running[0]
        os.kill(_workers(stage.pid)[victim.user_attrs["worker"]], signal.SIGKILL)
        completed = {
            t.number: (t.value, t.params) for t in _trials(storage, name) if t.state == COMPLETE
        }
        assert stage.wait(timeout=300) != 0  # a worker died: the stage says so
    finally:
        if stage.poll() is None:
            stage.kill()
            stage.wait()

    trials = _trials(storage, name)
    # The budget is checked as each trial ends (Optuna's MaxTrialsCallback): workers that end
    # trials at the same moment may each start one more, so 4 workers overshoot by at most 3.
    assert n_trials <= len(trials) <= n_trials + 3, log.read_text()[-3000:]
    kept = {t.number: (t.value, t.params) for t in trials if t.state == COMPLETE}
    assert completed.items() <= kept.items()  # no completed trial lost or changed
    unfinished = [t for t in trials if t.state != COMPLETE]
    assert [t.number for t in unfinished] in ([], [victim.number])  # only the killed trial
    assert len({t.params["lr"] for t in trials}) == len(trials)  # no trial run twice
    runs = [t.user_attrs["mlflow_run_id"] for t in trials if t.state == COMPLETE]
    assert len(set(runs)) == len(runs) == len(trials) - len(unfinished)  # one run per trial
    assert len({t.user_attrs["worker"] for t in trials}) == 4
    assert f"meddx-tune-{victim.user_attrs['worker']}" in log.read_text()


@pytest.mark.slow
def test_four_concurrent_stages_log_each_run_once_to_an_mlflow_server_on_postgresql(
    postgres: str, tmp_path: Path
) -> None:
    backend = servers.create_database(postgres, "mlflow")
    experiment = "concurrent-stages"
    with servers.mlflow_server(backend, tmp_path / "artifacts") as url:
        stages = []
        for i in range(4):
            root = tmp_path / f"project{i}"
            root.mkdir()
            command = [sys.executable, "-m", "meddx", "acquire_images", f"paths.root={root}"]
            command += ["tracking=server", "tracking.uri=null", f"tracking.experiment={experiment}"]
            stages.append(
                subprocess.Popen(
                    [*command, *TINY_IMAGES],
                    cwd=REPO,
                    env=_env(MLFLOW_TRACKING_URI=url, MEDDX_PIPELINE_ID=f"writer-{i}"),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        outputs = [stage.communicate(timeout=300)[0] for stage in stages]
        assert [stage.returncode for stage in stages] == [0] * 4, "\n".join(outputs)[-3000:]
        client = MlflowClient(url)
        found = client.get_experiment_by_name(experiment)
        runs = client.search_runs([found.experiment_id])
        assert sorted(r.data.tags["meddx.pipeline_id"] for r in runs) == [
            f"writer-{i}" for i in range(4)
        ]  # every run there, once
        assert {r.info.status for r in runs} == {"FINISHED"}
        assert {r.data.metrics["n_train"] for r in runs} == {160}
        assert {r.data.params["seed"] for r in runs} == {"42"}
        for run in runs:
            assert "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}
