"""`upload`: send the runs spooled while the store was unreachable (`python -m meddx upload`).

A spooled run that names another spooled run (a trial's `mlflow.parentRunId: unsent:<id>`)
goes after it, with the id its parent got; every sent run leaves its id in `runs/sent/`, so a
ref kept elsewhere (an Optuna trial's) still finds its run after the upload (run.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meddx.errors import TrackingError
from meddx.io import write_json, write_text
from meddx.redact import MASK, redact
from meddx.tracking.datasets import dataset_input
from meddx.tracking.run import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_PER_BATCH,
    UNSENT,
    sent_record,
    sent_run_id,
)
from meddx.tracking.store import client, experiment_id
from meddx.tracking.uri import is_remote

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

PARENT_TAG = "mlflow.parentRunId"


def _send(store: MlflowClient, spool: dict[str, Any], artifacts: Path) -> str:
    from mlflow.entities import Metric, Param, RunTag

    run_id = spool["run_id"]
    if run_id is None:
        experiment = experiment_id(store, spool["experiment"], spool.get("artifact_location"))
        tags = spool["tags"]
        run_id = store.create_run(experiment, tags=tags, run_name=spool["run_name"]).info.run_id
        spool["run_id"], spool["tags"] = run_id, {}
    params = [Param(k, v) for k, v in spool["params"].items()]
    for start in range(0, len(params), MAX_PARAMS_PER_BATCH):
        store.log_batch(run_id, params=params[start : start + MAX_PARAMS_PER_BATCH])
    metrics = [Metric(key, value, stamp, step) for key, value, stamp, step in spool["metrics"]]
    for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        store.log_batch(run_id, metrics=metrics[start : start + MAX_METRICS_PER_BATCH])
    if spool["tags"]:
        store.log_batch(run_id, tags=[RunTag(k, v) for k, v in spool["tags"].items()])
    inputs = [dataset_input(i["dataset"], i["context"]) for i in spool.get("inputs", [])]
    if inputs:
        store.log_inputs(run_id, inputs)
    if artifacts.is_dir():
        store.log_artifacts(run_id, str(artifacts))
    if spool["status"] != "RUNNING":
        store.set_terminated(run_id, status=spool["status"])
    return run_id


def _target(path: Path, spooled: str) -> str:
    """The address a run was spooled for, with the credential that its spool file leaves out.

    The spool keeps the address redacted; the password comes back from MLFLOW_TRACKING_URI
    (the variable it came from) when that names the same address.
    """
    if MASK not in spooled:
        return spooled
    environment = os.environ.get("MLFLOW_TRACKING_URI", "")
    if environment and redact(environment) == spooled:
        return environment
    raise TrackingError(
        f"{path}: the run is meant for {spooled}, whose credential is not kept in the spool: "
        "export MLFLOW_TRACKING_URI with it and run `python -m meddx upload` again"
    )


def _parents_first(spools: dict[Path, dict[str, Any]]) -> list[Path]:
    """Runs whose parent is not in this spool first, then their children (HPO nests once)."""

    def waits(path: Path) -> bool:
        parent = str(spools[path]["tags"].get(PARENT_TAG, ""))
        return (
            parent.startswith(UNSENT)
            and path.with_name(f"{parent.removeprefix(UNSENT)}.json") in spools
        )

    return sorted(spools, key=lambda p: (waits(p), p.name))


def _link_parent(spool_dir: Path, path: Path, spool: dict[str, Any]) -> None:
    parent = spool["tags"].get(PARENT_TAG)
    if not parent or not str(parent).startswith(UNSENT):
        return
    parent_id = sent_run_id(spool_dir, str(parent))
    if parent_id is None:
        raise TrackingError(f"{path}: its parent run {parent} is neither spooled nor uploaded")
    spool["tags"][PARENT_TAG] = parent_id


def upload(spool_dir: Path, uri: str | None = None) -> dict[str, str]:
    """Send every spooled run (to `uri`, else where it was meant to go); remove what was sent.

    Returns {spool file name: MLflow run id}. A run the server had already started is
    completed in place, so it can only go to that server.
    """
    from mlflow.exceptions import MlflowException

    spools = {path: json.loads(path.read_text()) for path in spool_dir.glob("*.json")}
    sent: dict[str, str] = {}
    for path in _parents_first(spools):
        spool = spools[path]
        target = uri or _target(path, spool["uri"])
        if spool["run_id"] and redact(target) != spool["uri"]:
            raise TrackingError(
                f"{path}: run {spool['run_id']} was started on {spool['uri']}; upload it there "
                "(drop the tracking.uri override)"
            )
        if is_remote(target):
            spool["artifact_location"] = None  # the server places artifacts itself
        _link_parent(spool_dir, path, spool)
        try:
            sent[path.name] = _send(client(target), spool, path.with_suffix(""))
        except MlflowException as exc:
            write_json(path, spool)  # keeps the run id if the run was created before the failure
            raise TrackingError(redact(f"Could not upload {path} to {target}: {exc}")) from None
        write_text(sent_record(spool_dir, path.stem), sent[path.name])
        path.unlink()
        shutil.rmtree(path.with_suffix(""), ignore_errors=True)
    return sent
