"""The whole tiny pipeline in a git repository of its own: reproduction check and DVC remote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import TinyPipeline, copy_project
from meddx.repro_check import changed_outputs, check


def _run(cwd: Path, *command: str) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)
    output = f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    assert done.returncode == 0, f"{' '.join(command)}:\n{output}"
    return done.stdout


def _dvc(cwd: Path, *args: str) -> str:
    return _run(cwd, sys.executable, "-m", "dvc", *args)


def _git(cwd: Path, *args: str) -> str:
    return _run(cwd, "git", "-c", "user.name=meddx", "-c", "user.email=ci@meddx", *args)


@pytest.fixture(scope="module")
def tiny_repo(tiny_pipeline: TinyPipeline) -> Iterator[Path]:
    """This checkout's code and pipeline on tiny data, reproduced once and committed (the
    session's build), with its commands' environment in place for the tests."""
    with pytest.MonkeyPatch.context() as env:
        for key in os.environ.keys() - tiny_pipeline.env.keys():
            env.delenv(key)
        for key, value in tiny_pipeline.env.items():
            env.setenv(key, value)
        yield tiny_pipeline.root


def _tamper(path: Path, metric: str, delta: float) -> None:
    values = json.loads(path.read_text())
    values[metric] += delta
    path.write_text(json.dumps(values, indent=2))


@pytest.mark.slow
def test_the_check_reproduces_every_metric_and_catches_a_changed_one(
    tiny_repo: Path, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(tiny_repo), str(clone))
    _tamper(clone / "reports" / "metrics" / "evaluate.json", "test_acc", 0.01)
    _git(clone, "commit", "-qam", "a result that the code does not produce")

    report = check(clone, abs_tol=0.0, force=True)

    assert not report.dvc_status
    assert not report.ok
    failed = [(row.file, row.metric) for row in report.rows if not row.ok]
    assert failed == [("reports/metrics/evaluate.json", "test_acc")]
    assert len(report.rows) > 20  # every other metric of every stage reproduced exactly
    # Data and models byte for byte as committed. The report and the model cards are the
    # exceptions by design: they name the MLflow run ids / the git commit of the execution
    # that wrote them.
    provenance = ("reports/report.", "reports/model_cards/")
    changed = [p for p in changed_outputs(clone) if not p.startswith(provenance)]
    assert changed == []


@pytest.mark.slow
def test_outputs_pushed_to_a_remote_pull_into_a_fresh_clone_without_recomputing(
    tiny_repo: Path, tmp_path: Path
) -> None:
    built = copy_project(tiny_repo, tmp_path / "built")  # the session's build stays as it is
    remote = tmp_path / "remote"
    _dvc(built, "remote", "add", "-f", "-d", "shared", str(remote))
    _git(built, "commit", "-qam", "DVC remote")
    _dvc(built, "push")
    fresh = tmp_path / "fresh"
    _git(tmp_path, "clone", "-q", str(built), str(fresh))

    _dvc(fresh, "pull")

    assert json.loads(_dvc(fresh, "status", "--json") or "{}") == {}
    model = "models/cnn/model.pt"
    assert (fresh / model).read_bytes() == (tiny_repo / model).read_bytes()
    assert not (fresh / "mlflow.db").exists()  # no stage ran: nothing was logged
