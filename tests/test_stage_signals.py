"""A stage stopped by a signal says so (exit 128+N, run KILLED, checkpoints kept), and a run
left RUNNING by a killed process is closed by the next run of its stage."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from conftest import CONF, REPO, TINY_IMAGES
from meddx.interrupts import Interrupted, raised_as_interrupted
from meddx.orphans import CLOSED_TAG, HOST_TAG, PID_TAG
from meddx.stages import acquire_images, preprocess_images
from meddx.tracking import stage_run

LONG_TRAINING = (*TINY_IMAGES, "cnn.max_epochs=500")  # still training when the signal comes


def _runs(cfg: DictConfig, stage: str) -> list:
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    found = client.search_runs([experiment.experiment_id], f"tags.`meddx.stage` = '{stage}'")
    return sorted(found, key=lambda run: run.info.start_time)


def _training_subprocess(cfg: DictConfig, root: Path, log: Path) -> subprocess.Popen[bytes]:
    """`python -m meddx train_cnn` on prepared data, returned once it has saved a checkpoint."""
    env = {**os.environ, "MEDDX_CONF_DIR": str(CONF)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    command = [
        *(sys.executable, "-m", "meddx", "train_cnn"),
        f"paths.root={root}",
        f"tracking.uri={cfg.tracking.uri}",
        f"tracking.experiment={cfg.tracking.experiment}",
        *LONG_TRAINING,
    ]
    with log.open("w") as sink:
        stage = subprocess.Popen(command, cwd=root, env=env, stdout=sink, stderr=sink)
    deadline = time.monotonic() + 300
    while not list((root / "runs" / "train_cnn").glob("*/last.ckpt")):
        assert stage.poll() is None, f"the stage ended early:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.2)
    return stage


@pytest.fixture
def prepared(make_cfg: Callable[..., DictConfig]) -> DictConfig:
    cfg = make_cfg(*LONG_TRAINING)
    acquire_images.run(cfg)
    preprocess_images.run(cfg)
    return cfg


def test_sigint_raises_interrupted_that_exits_130() -> None:
    with pytest.raises(Interrupted) as stopped, raised_as_interrupted():
        signal.raise_signal(signal.SIGINT)
    assert stopped.value.exit_code == 130


def test_a_run_stopped_by_a_signal_is_closed_killed_not_failed(make_cfg) -> None:
    cfg = make_cfg()
    with pytest.raises(Interrupted), stage_run(cfg, "train_cnn"):
        raise Interrupted(signal.SIGTERM)
    (run,) = _runs(cfg, "train_cnn")
    assert run.info.status == "KILLED"


@pytest.mark.slow
def test_sigterm_ends_training_with_143_a_killed_run_and_the_last_checkpoint(
    prepared: DictConfig, tmp_path: Path
) -> None:
    log = tmp_path / "train.log"
    stage = _training_subprocess(prepared, tmp_path, log)
    stage.send_signal(signal.SIGTERM)
    assert stage.wait(timeout=120) == 143
    assert list((tmp_path / "runs" / "train_cnn").glob("*/last.ckpt"))
    (run,) = _runs(prepared, "train_cnn")
    assert run.info.status == "KILLED"
    assert "meddx train_cnn: stopped by SIGTERM" in log.read_text()
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
def test_a_run_left_running_by_sigkill_is_closed_by_the_next_run_of_its_stage(
    prepared: DictConfig, tmp_path: Path
) -> None:
    stage = _training_subprocess(prepared, tmp_path, tmp_path / "train.log")
    stage.send_signal(signal.SIGKILL)
    stage.wait(timeout=60)
    (orphan,) = _runs(prepared, "train_cnn")
    assert orphan.info.status == "RUNNING"
    with stage_run(prepared, "train_cnn") as current:
        pass
    closed = MlflowClient(prepared.tracking.uri).get_run(orphan.info.run_id)
    assert closed.info.status == "KILLED"
    assert f"process {stage.pid}" in closed.data.tags[CLOSED_TAG]
    assert current.run_id in closed.data.tags[CLOSED_TAG]


def _open_run(cfg: DictConfig, pid: int, host: str) -> str:
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    tags = {"meddx.stage": "train_cnn", PID_TAG: str(pid), HOST_TAG: host}
    return client.create_run(experiment.experiment_id, tags=tags).info.run_id


def _dead_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    probe = subprocess.Popen([sys.executable, "-c", "pass"])
    probe.wait()
    return probe.pid


def test_a_running_run_whose_process_is_alive_is_left_running(make_cfg) -> None:
    cfg = make_cfg()
    with stage_run(cfg, "train_cnn"):  # creates the experiment
        pass
    alive = _open_run(cfg, os.getpid(), socket.gethostname())
    with stage_run(cfg, "train_cnn"):
        pass
    assert MlflowClient(cfg.tracking.uri).get_run(alive).info.status == "RUNNING"


def test_a_running_run_from_another_host_is_left_running(make_cfg) -> None:
    cfg = make_cfg()
    with stage_run(cfg, "train_cnn"):
        pass
    elsewhere = _open_run(cfg, _dead_pid(), "another-host")
    with stage_run(cfg, "train_cnn"):
        pass
    assert MlflowClient(cfg.tracking.uri).get_run(elsewhere).info.status == "RUNNING"
