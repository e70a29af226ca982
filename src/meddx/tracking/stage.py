"""`stage_run`: the run of one stage execution, tagged with its provenance, closed whatever happens.

Tracking never costs a training result. When the store cannot be reached (a tracking server
down, after the bounded retries of `tracking.retries`), the run goes offline: the stage keeps
working and writes its outputs, everything not yet logged is spooled (run.py), and the stage
then fails with a `TrackingError` that says so; `python -m meddx upload` sends the spool later.
A child run (an HPO trial) does not fail its trial: its parent's stage reports every record
it spooled.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from meddx import numerics
from meddx.config import flatten
from meddx.errors import TrackingError
from meddx.interrupts import Interrupted
from meddx.orphans import close_orphans, process_tags
from meddx.paths import Layout, project_root
from meddx.provenance import git_state, input_hashes, input_name, path_digest, pipeline_id
from meddx.redact import redact, withhold
from meddx.tracking.datasets import DatasetRead, record
from meddx.tracking.ranks import is_global_zero
from meddx.tracking.run import UNSENT, NullRun, StageRun
from meddx.tracking.store import client, experiment_id
from meddx.tracking.uri import artifact_root, http_limits, is_remote, tracking_uri


def _user() -> str:
    """The login, as MLflow's own default run context records it (`mlflow.user`)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


def _source_tags(stage: str, commit: str) -> dict[str, str]:
    """MLflow's own source tags, which its UI shows: Source = the stage's module (the base name
    of `mlflow.source.name`, type LOCAL: a script run here), Version = the commit's first
    characters, User. `git.commit` stays for meddx's own readers."""
    return {
        "mlflow.source.name": f"src/meddx/stages/{stage}.py",
        "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": commit,
        "mlflow.user": _user(),
    }


def _provenance(cfg: DictConfig, stage: str, name: str, inputs: Sequence[Path]) -> dict[str, str]:
    root = project_root(cfg.paths.root)
    layout = Layout.of(cfg)
    scoped = layout.stage(stage)  # `volume/evaluate` for the volume pipeline's (meddx.paths)
    tags = {
        "mlflow.runName": name,
        "meddx.stage": scoped,
        "dvc.stage": os.environ.get("DVC_STAGE") or scoped,  # DVC's name when DVC runs it
        "meddx.pipeline_id": pipeline_id(root),
        **process_tags(),
        **git_state(Path(__file__).resolve().parent),
        **input_hashes(list(inputs), Path(cfg.paths.root)),
        **{f"meddx.numerics.{key}": str(value) for key, value in numerics.facts().items()},
    }
    tags.update(_source_tags(stage, tags["git.commit"]))
    if layout.pipeline:
        tags["meddx.pipeline"] = layout.pipeline
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    return tags


def _dataset_fields(cfg: DictConfig, dataset: DatasetRead, tags: dict[str, str]) -> dict[str, str]:
    """The dataset's MLflow fields; its digest is the md5 its `input.<path>` tag already holds."""
    source = input_name(dataset.path, Path(cfg.paths.root))
    digest = tags.get(f"input.{source}") or path_digest(dataset.path)
    return record(dataset, source, digest)


def _open(
    uri: str, cfg: DictConfig, tags: dict[str, str], name: str, parent: str | None
) -> StageRun:
    """The run in the store, or offline in the spool from the start (store down, or a child of
    a run that exists only in the spool: `upload` links the two)."""
    experiment, stage = cfg.tracking.experiment, tags["meddx.stage"]
    spool_dir = Layout(project_root(cfg.paths.root)).unsent_runs
    artifact_location = None if is_remote(uri) else artifact_root(cfg)
    try:
        if parent and parent.startswith(UNSENT):
            raise ConnectionError(f"the parent run {parent} waits in the spool")
        store = client(uri)
        run_id = store.create_run(
            experiment_id(store, experiment, artifact_location), tags=tags, run_name=name
        ).info.run_id
        handle = StageRun(store, run_id, uri, spool_dir, experiment, name, owner=parent)
        close_orphans(store, run_id, stage)
    except Exception as exc:  # unreachable store: work offline from the start
        handle = StageRun(None, None, uri, spool_dir, experiment, name, owner=parent)
        handle.unsent.update(artifact_location=artifact_location)
        handle.go_offline(exc)
        handle.set_tags(tags)
    return handle


def spooled_for(run: StageRun) -> list[Path]:
    """The spool records this run's stage wrote: its own, its children's, other runs' it tagged."""
    if run.spool_dir is None or not run.spool_dir.is_dir():
        return []
    return sorted(
        path
        for path in run.spool_dir.glob("*.json")
        if json.loads(path.read_text()).get("owner") == run.ref
    )


def _offline_message(run: StageRun, spooled: list[Path], retries: Any) -> str:
    cause = f"{run.error.splitlines()[0][:300]}; " if run.error else ""
    return (
        f"Could not log to MLflow at {redact(run.uri)} ({cause}{retries} retries per request). "
        "Nothing is lost: the stage's outputs are written and "
        f"its runs are kept in {', '.join(map(str, spooled))}. Send them with `python -m meddx "
        "upload` once the server answers; `dvc commit` records the outputs without rerunning "
        "the stage."
    )


@contextlib.contextmanager
def stage_run(
    cfg: DictConfig,
    stage: str,
    inputs: Sequence[Path] = (),
    run_name: str | None = None,
    parent_run_id: str | None = None,
    sections: Sequence[str] | None = None,
    dataset: DatasetRead | None = None,
) -> Iterator[StageRun]:
    """Open a run tagged with provenance; close it FINISHED, KILLED when stopped by a signal
    or Ctrl+C (`meddx.interrupts`), or FAILED with the error.

    Params are the config `sections` the stage reads (all when None), flattened; the whole
    resolved config goes along as the `config.yaml` artifact. `parent_run_id` (a run's ref)
    nests this run below it; `dataset` (one of the `inputs`) becomes its dataset input. Raises
    `TrackingError` after the block when the store failed on the way (the block's work is done
    and spooled), unless this is a child run.
    """
    if not is_global_zero():
        yield NullRun()
        return
    uri = tracking_uri(cfg)
    name = run_name or stage
    tags = _provenance(cfg, stage, name, inputs)
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    with http_limits(cfg.tracking):
        handle = _open(uri, cfg, tags, name, parent_run_id)
        shared = withhold(cfg)
        scope = {s: OmegaConf.select(shared, s) for s in sections} if sections else shared
        handle.log_params(flatten(scope))
        handle.log_text(OmegaConf.to_yaml(shared), "config.yaml")
        if dataset is not None:
            handle.log_dataset(_dataset_fields(cfg, dataset, tags), dataset.context)
        try:
            yield handle
        except BaseException as exc:
            handle.set_tags({"meddx.error": redact(f"{type(exc).__name__}: {exc}")[:5000]})
            handle.close("KILLED" if isinstance(exc, Interrupted | KeyboardInterrupt) else "FAILED")
            raise
        handle.close("FINISHED")
    spooled = [] if parent_run_id else spooled_for(handle)
    if spooled:
        raise TrackingError(_offline_message(handle, spooled, cfg.tracking.get("retries")))
