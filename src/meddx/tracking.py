"""MLflow tracking for every stage: one run per stage execution, provenance tags, batched metrics.

Stages never call MLflow per step. `StageRun.log_metrics` buffers; the buffer goes out in one
`log_batch` at epoch ends and when the run closes (200 single calls cost ~4 s on sqlite,
one batch 0.06 s). A client object is used rather than MLflow's global active-run state so
nested runs (HPO trials) and several stages in one process cannot step on each other.

Tracking never costs a training result. When the store cannot be reached (a tracking server
down, after the bounded retries of `tracking.retries`), the run goes offline: the stage keeps
working and writes its outputs, everything not yet logged is spooled to
`runs/unsent/<id>.json` (+ `<id>/` for artifacts), and the stage then fails with a
`TrackingError` that says so; `python -m meddx upload` sends the spool later.

In a distributed run only global rank 0 tracks; the other processes get a `NullRun`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf

from meddx import numerics
from meddx.config import flatten
from meddx.errors import ConfigError, TrackingError
from meddx.interrupts import Interrupted
from meddx.io import write_json, write_text
from meddx.orphans import close_orphans, process_tags
from meddx.paths import Layout, project_root
from meddx.provenance import git_state, input_hashes, pipeline_id
from meddx.redact import MASK, redact, withhold

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_LENGTH = 6000
# tracking.<key> -> the environment variable MLflow's HTTP client reads on every request.
HTTP_SETTINGS = {
    "retries": "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "timeout": "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "backoff": "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
}
# Launchers say which process this is before any process group exists: torchrun sets RANK,
# srun SLURM_PROCID, Lightning's own DDP launcher LOCAL_RANK/NODE_RANK for the copies it starts.
RANK_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def is_global_zero() -> bool:
    """Whether this process is rank 0 of its (possibly distributed) run."""
    if os.environ.get("RANK"):
        return int(os.environ["RANK"]) == 0
    return all(int(os.environ.get(var) or 0) == 0 for var in RANK_VARIABLES)


def tracking_uri(cfg: DictConfig) -> str:
    """`tracking.uri` when set, else MLFLOW_TRACKING_URI, else the project's sqlite file.

    With `tracking.server: true` (tracking=server) the project file is no fallback: results
    meant for a shared server must not land silently in a local database.
    """
    configured = cfg.tracking.get("uri")
    if configured:
        if urlsplit(str(configured)).password:
            raise ConfigError(
                "tracking.uri contains a password; remove it from the config and set "
                "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD in the environment instead"
            )
        return str(configured)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if cfg.tracking.get("server"):
        raise ConfigError(
            "tracking=server needs the server's address: export "
            "MLFLOW_TRACKING_URI=https://mlflow.example.org (and MLFLOW_TRACKING_USERNAME / "
            "MLFLOW_TRACKING_PASSWORD if it asks for them)"
        )
    return f"sqlite:///{project_root(cfg.paths.root) / 'mlflow.db'}"


def is_remote(uri: str) -> bool:
    return urlsplit(uri).scheme in ("http", "https", "databricks")


def artifact_root(cfg: DictConfig) -> str:
    return (project_root(cfg.paths.root) / "mlartifacts").as_uri()


@contextlib.contextmanager
def http_limits(tracking: DictConfig) -> Iterator[None]:
    """Apply `tracking.retries/timeout/backoff` to MLflow's HTTP client for one block.

    MLflow's defaults (7 retries with exponential backoff, 120 s timeouts) can stall a
    stage for minutes on a dead server before it gives up.
    """
    saved = {var: os.environ.get(var) for var in HTTP_SETTINGS.values()}
    for key, var in HTTP_SETTINGS.items():
        if tracking.get(key) is not None:
            os.environ[var] = str(tracking[key])
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


_METRIC_UNSAFE = re.compile(r"[^\w\-. :/]")


def metric_name(key: str) -> str:
    """MLflow refuses commas and the like in metric names, and class names hold them."""
    return _METRIC_UNSAFE.sub("_", key)


class StageRun:
    """A handle on one MLflow run that buffers metrics until `flush` and survives a lost store.

    Every logging call is sent at once while the store answers. The first failure turns the
    run offline for the rest of the stage (no second round of retries per epoch): what could
    not be sent is kept in the spool (`unsent`), written to `<spool_dir>/<id>.json`.
    """

    def __init__(
        self,
        client: MlflowClient | None,
        run_id: str | None,
        uri: str = "",
        spool_dir: Path | None = None,
        experiment: str = "",
        run_name: str = "",
    ) -> None:
        """Without a `spool_dir` (a handle on some other existing run), failures raise."""
        self.client = client
        self.run_id = run_id
        self.uri = uri
        self.error: str | None = None
        self.spool_id = uuid.uuid4().hex[:12]
        self.spool_dir = spool_dir
        self.unsent: dict[str, Any] = {
            "uri": redact(uri),  # `upload` takes the credential from the environment
            "experiment": experiment,
            "run_name": run_name,
            "run_id": run_id,
            "params": {},
            "metrics": [],
            "tags": {},
            "artifacts": [],
            "status": "RUNNING",
        }
        self._pending: list[Metric] = []

    @property
    def spool_file(self) -> Path:
        return (self.spool_dir or Path()) / f"{self.spool_id}.json"

    @property
    def spool_artifacts(self) -> Path:
        return (self.spool_dir or Path()) / self.spool_id

    def _deliver(self, send: Callable[[], object], keep: Callable[[], None]) -> None:
        """Send now, or keep for `meddx upload` once the store has failed."""
        if self.spool_dir is None:
            send()
            return
        if self.error is None and self.client is not None and self.run_id is not None:
            try:
                send()
                return
            except Exception as exc:  # any failure of the store: tracking must not end training
                self.go_offline(exc)
        keep()
        self.unsent["error"] = self.error
        write_json(self.spool_file, self.unsent)

    def go_offline(self, exc: BaseException) -> None:
        self.error = redact(f"{type(exc).__name__}: {exc}")[:2000]
        print(
            f"meddx: MLflow at {redact(self.uri)} failed ({self.error.splitlines()[0][:300]}); "
            f"the stage goes on and keeps its run in {self.spool_file}",
            file=sys.stderr,
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(
            Metric(key=metric_name(key), value=float(value), timestamp=now, step=step or 0)
            for key, value in metrics.items()
        )

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []

        def send() -> None:
            for start in range(0, len(pending), MAX_METRICS_PER_BATCH):
                chunk = pending[start : start + MAX_METRICS_PER_BATCH]
                self.client.log_batch(self.run_id, metrics=chunk, synchronous=True)

        def keep() -> None:
            self.unsent["metrics"] += [[m.key, m.value, m.timestamp, m.step] for m in pending]

        self._deliver(send, keep)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        values = {key: redact(str(value))[:MAX_PARAM_LENGTH] for key, value in params.items()}
        items = [Param(key=key, value=value) for key, value in values.items()]

        def send() -> None:
            for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
                chunk = items[start : start + MAX_PARAMS_PER_BATCH]
                self.client.log_batch(self.run_id, params=chunk)

        self._deliver(send, lambda: self.unsent["params"].update(values))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        values = {key: redact(str(value)) for key, value in tags.items()}
        items = [RunTag(key, value) for key, value in values.items()]
        self._deliver(
            lambda: self.client.log_batch(self.run_id, tags=items),
            lambda: self.unsent["tags"].update(values),
        )

    def _keep_artifact(self, path: Path, artifact_path: str | None) -> None:
        """Copy now: the stage may overwrite its outputs before the upload.

        Laid out as `log_artifact(s)` would: a folder's contents go into `artifact_path`
        itself, a file into `artifact_path/<name>`.
        """
        folder = self.spool_artifacts / (artifact_path or "")
        if path.is_dir():
            shutil.copytree(path, folder, dirs_exist_ok=True)
            kept = sorted(folder / p.relative_to(path) for p in path.rglob("*") if p.is_file())
        else:
            folder.mkdir(parents=True, exist_ok=True)
            kept = [Path(shutil.copy2(path, folder / path.name))]
        self.unsent["artifacts"] += [str(p.relative_to(self.spool_artifacts)) for p in kept]

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        path = Path(path)

        def send() -> None:
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path)
            else:
                self.client.log_artifact(self.run_id, str(path), artifact_path)

        self._deliver(send, lambda: self._keep_artifact(path, artifact_path))

    def log_text(self, text: str, artifact_file: str) -> None:
        text = redact(text)

        def keep() -> None:
            write_text(self.spool_artifacts / artifact_file, text)
            self.unsent["artifacts"].append(artifact_file)

        self._deliver(lambda: self.client.log_text(self.run_id, text, artifact_file), keep)

    def close(self, status: str) -> None:
        self.flush()
        self._deliver(
            lambda: self.client.set_terminated(self.run_id, status=status),
            lambda: self.unsent.update(status=status),
        )

    def on_run(self, run_id: str) -> StageRun:
        """A handle on another existing run of this store (an earlier HPO trial's) that spools
        like this one: offline already if this run is, kept for `meddx upload` if it fails."""
        other = StageRun(self.client, run_id, self.uri, self.spool_dir, self.unsent["experiment"])
        other.error = self.error
        return other


class NullRun(StageRun):
    """What ranks other than 0 of a distributed run log to: nothing."""

    def __init__(self) -> None:
        super().__init__(None, None)

    def _deliver(self, send: Callable[[], object], keep: Callable[[], None]) -> None:
        return None

    def on_run(self, run_id: str) -> StageRun:
        return self


def _experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
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


def _create_run(
    uri: str, experiment: str, artifact_location: str | None, tags: dict[str, str], run_name: str
) -> tuple[MlflowClient, str]:
    client = _client(uri)
    experiment_id = _experiment_id(client, experiment, artifact_location)
    return client, client.create_run(experiment_id, tags=tags, run_name=run_name).info.run_id


def _offline_message(run: StageRun, retries: Any) -> str:
    cause = run.error.splitlines()[0][:300] if run.error else ""
    return (
        f"Could not log to MLflow at {redact(run.uri)} ({cause}; {retries} retries per request). "
        "Nothing is lost: the stage's outputs are written and "
        f"its run is kept in {run.spool_file}. Send it with `python -m meddx upload` once the "
        "server answers; `dvc commit` records the outputs without rerunning the stage."
    )


@contextlib.contextmanager
def stage_run(
    cfg: DictConfig,
    stage: str,
    inputs: Sequence[Path] = (),
    run_name: str | None = None,
    parent_run_id: str | None = None,
    sections: Sequence[str] | None = None,
) -> Iterator[StageRun]:
    """Open a run tagged with provenance; close it FINISHED, KILLED when stopped by a signal
    or Ctrl+C (`meddx.interrupts`), or FAILED with the error.

    Params are the config `sections` the stage reads (all when None), flattened; the whole
    resolved config goes along as the `config.yaml` artifact. Raises `TrackingError` after
    the block when the store failed on the way (the block's work is done and spooled).
    """
    if not is_global_zero():
        yield NullRun()
        return
    uri = tracking_uri(cfg)
    root = project_root(cfg.paths.root)
    name = run_name or stage
    tags = {
        "mlflow.runName": name,
        "meddx.stage": stage,
        "dvc.stage": stage,
        "meddx.pipeline_id": pipeline_id(root),
        **process_tags(),
        **git_state(Path(__file__).resolve().parent),
        **input_hashes(list(inputs), Path(cfg.paths.root)),
        **{f"meddx.numerics.{key}": str(value) for key, value in numerics.facts().items()},
    }
    tags["mlflow.source.git.commit"] = tags["git.commit"]
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    artifact_location = None if is_remote(uri) else artifact_root(cfg)
    with http_limits(cfg.tracking):
        experiment, spool_dir = cfg.tracking.experiment, Layout(root).unsent_runs
        try:
            client, run_id = _create_run(uri, experiment, artifact_location, tags, name)
            handle = StageRun(client, run_id, uri, spool_dir, experiment, name)
            close_orphans(client, run_id, stage)
        except Exception as exc:  # unreachable store: work offline from the start
            handle = StageRun(None, None, uri, spool_dir, experiment, name)
            handle.unsent.update(artifact_location=artifact_location)
            handle.go_offline(exc)
            handle.set_tags(tags)
        shared = withhold(cfg)
        scope = {s: OmegaConf.select(shared, s) for s in sections} if sections else shared
        handle.log_params(flatten(scope))
        handle.log_text(OmegaConf.to_yaml(shared), "config.yaml")
        try:
            yield handle
        except BaseException as exc:
            handle.set_tags({"meddx.error": redact(f"{type(exc).__name__}: {exc}")[:5000]})
            handle.close("KILLED" if isinstance(exc, Interrupted | KeyboardInterrupt) else "FAILED")
            raise
        handle.close("FINISHED")
    if handle.error is not None:
        raise TrackingError(_offline_message(handle, cfg.tracking.get("retries")))


def _send_spooled(client: MlflowClient, spool: dict[str, Any], artifacts: Path) -> str:
    from mlflow.entities import Metric, Param, RunTag

    run_id = spool["run_id"]
    if run_id is None:
        experiment_id = _experiment_id(client, spool["experiment"], spool.get("artifact_location"))
        tags = spool["tags"]
        run_id = client.create_run(experiment_id, tags=tags, run_name=spool["run_name"]).info.run_id
        spool["run_id"], spool["tags"] = run_id, {}
    params = [Param(k, v) for k, v in spool["params"].items()]
    for start in range(0, len(params), MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=params[start : start + MAX_PARAMS_PER_BATCH])
    metrics = [Metric(key, value, stamp, step) for key, value, stamp, step in spool["metrics"]]
    for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + MAX_METRICS_PER_BATCH])
    if spool["tags"]:
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in spool["tags"].items()])
    if artifacts.is_dir():
        client.log_artifacts(run_id, str(artifacts))
    if spool["status"] != "RUNNING":
        client.set_terminated(run_id, status=spool["status"])
    return run_id


def _spooled_target(path: Path, spooled: str) -> str:
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


def upload(spool_dir: Path, uri: str | None = None) -> dict[str, str]:
    """Send every spooled run (to `uri`, else where it was meant to go); remove what was sent.

    Returns {spool file name: MLflow run id}. A run the server had already started is
    completed in place, so it can only go to that server.
    """
    from mlflow.exceptions import MlflowException

    sent: dict[str, str] = {}
    for path in sorted(spool_dir.glob("*.json")):
        spool = json.loads(path.read_text())
        target = uri or _spooled_target(path, spool["uri"])
        if spool["run_id"] and redact(target) != spool["uri"]:
            raise TrackingError(
                f"{path}: run {spool['run_id']} was started on {spool['uri']}; upload it there "
                "(drop the tracking.uri override)"
            )
        if is_remote(target):
            spool["artifact_location"] = None  # the server places artifacts itself
        try:
            sent[path.name] = _send_spooled(_client(target), spool, path.with_suffix(""))
        except MlflowException as exc:
            write_json(path, spool)  # keeps the run id if the run was created before the failure
            raise TrackingError(redact(f"Could not upload {path} to {target}: {exc}")) from None
        path.unlink()
        shutil.rmtree(path.with_suffix(""), ignore_errors=True)
    return sent


def latest_runs(cfg: DictConfig, stages: Sequence[str]) -> dict[str, Any]:
    """Latest FINISHED run per stage name in the configured experiment (reading, no spool)."""
    client = _client(tracking_uri(cfg))
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is None:
        return {}
    runs = {}
    for stage in stages:
        found = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`meddx.stage` = '{stage}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if found:
            runs[stage] = found[0]
    return runs
