"""`StageRun`: a handle on one MLflow run that buffers metrics and survives a lost store.

`log_metrics` buffers; the buffer goes out in one `log_batch` at epoch ends and when the run
closes (200 single calls cost ~4 s on sqlite, one batch 0.06 s). Every other call is sent at
once while the store answers. The first failure turns the run offline for the rest of the
stage (no second round of retries per epoch): what could not be sent is kept in the spool,
`<spool_dir>/<id>.json` (+ `<id>/` for artifacts), for `meddx upload` (spool.py).

A run is named by its `ref`: its MLflow run id, or `unsent:<id>` while it exists only in the
spool. HPO trials keep their run's ref (in Optuna) and name their parent by it, so a study run
offline keeps its nesting and its best-trial tags through the upload.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meddx.io import write_json, write_text
from meddx.redact import redact

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_LENGTH = 6000
UNSENT = "unsent:"  # the ref of a run that exists only in the spool so far

_METRIC_UNSAFE = re.compile(r"[^\w\-. :/]")


def metric_name(key: str) -> str:
    """MLflow refuses commas and the like in metric names, and class names hold them."""
    return _METRIC_UNSAFE.sub("_", key)


def sent_record(spool_dir: Path, spool_id: str) -> Path:
    """Where `upload` notes the MLflow run id a spooled run became (runs/sent/<id>, beside
    runs/unsent/): a ref kept elsewhere, an Optuna trial's, still finds its run."""
    return spool_dir.parent / "sent" / spool_id


def sent_run_id(spool_dir: Path, ref: str) -> str | None:
    """The MLflow run id of `ref`: itself, or the run `upload` made of it (None: not sent yet)."""
    if not ref.startswith(UNSENT):
        return ref
    record = sent_record(spool_dir, ref.removeprefix(UNSENT))
    return record.read_text().strip() if record.is_file() else None


class StageRun:
    """A handle on one MLflow run, or on its spool record once the store has failed."""

    def __init__(
        self,
        client: MlflowClient | None,
        run_id: str | None,
        uri: str = "",
        spool_dir: Path | None = None,
        experiment: str = "",
        run_name: str = "",
        owner: str | None = None,
    ) -> None:
        """Without a `spool_dir` (a handle on some other existing run), failures raise.

        `owner`: the ref of the stage run whose stage logs this one (a trial's parent), which
        reports a spooled record as its own; None: this run itself.
        """
        self.client = client
        self.run_id = run_id
        self.uri = uri
        self.error: str | None = None
        self.spool_id = uuid.uuid4().hex[:12]
        self.spool_dir = spool_dir
        self.owner = owner
        self.unsent: dict[str, Any] = {
            "uri": redact(uri),  # `upload` takes the credential from the environment
            "experiment": experiment,
            "run_name": run_name,
            "run_id": run_id,
            "params": {},
            "metrics": [],
            "tags": {},
            "artifacts": [],
            "inputs": [],
            "status": "RUNNING",
        }
        self._pending: list[Metric] = []

    @property
    def ref(self) -> str:
        return self.run_id or f"{UNSENT}{self.spool_id}"

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
        self.unsent.update(error=self.error, owner=self.owner or self.ref)
        write_json(self.spool_file, self.unsent)

    def go_offline(self, exc: BaseException | str) -> None:
        cause = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        self.error = redact(cause)[:2000]
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

    def log_dataset(self, fields: Mapping[str, str], context: str) -> None:
        """A dataset input of the run (`datasets.record`'s fields; no data goes along)."""
        from meddx.tracking.datasets import dataset_input

        self._deliver(
            lambda: self.client.log_inputs(self.run_id, [dataset_input(fields, context)]),
            lambda: self.unsent["inputs"].append({"dataset": dict(fields), "context": context}),
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

    def on_run(self, ref: str) -> StageRun:
        """A handle on another run of this store (an earlier HPO trial's) that spools like this
        one: offline already if this run is, kept for `meddx upload` if it fails, and written
        into the run's own spool record while that run exists only there."""
        spool_dir = self.spool_dir or Path()
        run_id = sent_run_id(spool_dir, ref)
        experiment = self.unsent["experiment"]
        other = StageRun(self.client, run_id, self.uri, self.spool_dir, experiment, owner=self.ref)
        other.error = self.error
        if run_id is None:  # still in the spool: add to its record
            other.spool_id = ref.removeprefix(UNSENT)
            if not other.spool_file.is_file():
                print(f"meddx: run {ref} is in no spool here; not logging to it", file=sys.stderr)
                return NullRun()
            other.unsent = json.loads(other.spool_file.read_text())
            other.error = other.unsent.get("error") or "the run waits in the spool"
        return other


class NullRun(StageRun):
    """What ranks other than 0 of a distributed run log to: nothing."""

    def __init__(self) -> None:
        super().__init__(None, None)

    def _deliver(self, send: Callable[[], object], keep: Callable[[], None]) -> None:
        return None

    def on_run(self, ref: str) -> StageRun:
        return self
