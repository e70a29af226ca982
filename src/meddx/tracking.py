"""MLflow tracking shared by every stage: one run per stage execution, provenance tags, batched metrics.

Stages never call MLflow per step. `StageRun.log_metrics` buffers; the buffer goes out in one
`log_batch` at epoch ends and when the run closes (200 single calls cost ~4 s on sqlite,
one batch 0.06 s). A client object is used rather than MLflow's global active-run state so
nested runs (HPO trials) and several stages in one process cannot step on each other.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from meddx.config import flatten
from meddx.errors import MeddxError
from meddx.provenance import git_state, input_hashes, pipeline_id

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_LENGTH = 6000


def project_root(root: str | os.PathLike[str]) -> Path:
    """The checkout that owns the tracking store, also from inside a `dvc exp run --temp` copy."""
    resolved = Path(root).resolve()
    parts = resolved.parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return resolved


def tracking_uri(cfg: DictConfig) -> str:
    """`tracking.uri` when set, else MLFLOW_TRACKING_URI, else the project's sqlite file."""
    if cfg.tracking.get("uri"):
        return str(cfg.tracking.uri)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{project_root(cfg.paths.root) / 'mlflow.db'}"


def artifact_root(cfg: DictConfig) -> str:
    return (project_root(cfg.paths.root) / "mlartifacts").as_uri()


class StageRun:
    """A handle on one MLflow run that buffers metrics until `flush`."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self._pending: list[Metric] = []

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(
            Metric(key=key, value=float(value), timestamp=now, step=step or 0)
            for key, value in metrics.items()
        )

    def flush(self) -> None:
        while self._pending:
            chunk = self._pending[:MAX_METRICS_PER_BATCH]
            self.client.log_batch(self.run_id, metrics=chunk, synchronous=True)
            del self._pending[:MAX_METRICS_PER_BATCH]

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [
            Param(key=key, value=str(value)[:MAX_PARAM_LENGTH]) for key, value in params.items()
        ]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=items[start : start + MAX_PARAMS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(
            self.run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()]
        )

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)


def _experiment_id(client: MlflowClient, name: str, artifact_location: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:  # another process created it first
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _client(uri: str) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@contextlib.contextmanager
def stage_run(
    cfg: DictConfig,
    stage: str,
    inputs: Sequence[Path] = (),
    run_name: str | None = None,
    parent_run_id: str | None = None,
    sections: Sequence[str] | None = None,
) -> Iterator[StageRun]:
    """Open a run tagged with provenance; close it FINISHED, or FAILED with the error.

    Params are the config `sections` the stage reads (all when None), flattened; the whole
    resolved config goes along as the `config.yaml` artifact.
    """
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(cfg)
    root = project_root(cfg.paths.root)
    try:
        client = _client(uri)
        experiment_id = _experiment_id(client, cfg.tracking.experiment, artifact_root(cfg))
        tags = {
            "mlflow.runName": run_name or stage,
            "meddx.stage": stage,
            "dvc.stage": stage,
            "meddx.pipeline_id": pipeline_id(root),
            **git_state(Path(__file__).resolve().parent),
            **input_hashes(list(inputs), Path(cfg.paths.root)),
        }
        tags["mlflow.source.git.commit"] = tags["git.commit"]
        if os.environ.get("DVC_EXP_NAME"):
            tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
        if parent_run_id:
            tags["mlflow.parentRunId"] = parent_run_id
        run = client.create_run(experiment_id, tags=tags, run_name=run_name or stage)
    except MlflowException as exc:
        raise MeddxError(f"Cannot start an MLflow run at {uri}: {exc}") from None
    handle = StageRun(client, run.info.run_id)
    scope = {name: OmegaConf.select(cfg, name) for name in sections} if sections else cfg
    handle.log_params(flatten(scope))
    handle.log_text(OmegaConf.to_yaml(cfg), "config.yaml")
    try:
        yield handle
    except BaseException as exc:
        with contextlib.suppress(Exception):
            handle.flush()
            handle.set_tags({"meddx.error": f"{type(exc).__name__}: {exc}"[:5000]})
            client.set_terminated(handle.run_id, status="FAILED")
        raise
    handle.flush()
    client.set_terminated(handle.run_id, status="FINISHED")
