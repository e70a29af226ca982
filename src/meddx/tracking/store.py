"""The MLflow store itself: a client for an address, an experiment by name, the runs it holds.

A client object rather than MLflow's global state, so nested runs (HPO trials) and several
stages in one process cannot step on each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from meddx.errors import TrackingError
from meddx.redact import redact
from meddx.tracking.uri import tracking_uri

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


def client(uri: str) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


# The MLflow 3 UI reads this experiment tag to choose its view: without it (or with
# `genai_development`) the experiment opens on the GenAI overview (traces, judges); with
# `custom_model_development` on the runs table of a model-training experiment. The UI writes
# the same tag when a user picks the experiment type (mlflow/server/js: setExperimentTag
# "mlflow.experimentKind"). meddx experiments hold model trainings only.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def experiment_id(store: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The experiment called `name`, created when missing (by whichever process is first),
    marked a model-training experiment (also when an older store made it without the mark)."""
    from mlflow.exceptions import MlflowException

    experiment = store.get_experiment_by_name(name)
    if experiment is None:
        try:
            return store.create_experiment(
                name,
                artifact_location=artifact_location,
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
        except MlflowException:  # another process created it first
            experiment = store.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        store.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def latest_runs(cfg: DictConfig, stages: Sequence[str]) -> dict[str, Any]:
    """Latest FINISHED run per stage name in the configured experiment (reading only).

    Raises `TrackingError` when the store does not answer, for the caller to decide whether
    its work can go on without the runs (the report can).
    """
    uri = tracking_uri(cfg)
    try:
        store = client(uri)
        experiment = store.get_experiment_by_name(cfg.tracking.experiment)
        if experiment is None:
            return {}
        runs = {}
        for stage in stages:
            found = store.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.`meddx.stage` = '{stage}' and attributes.status = 'FINISHED'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if found:
                runs[stage] = found[0]
    except Exception as exc:  # any failure of the store
        cause = redact(f"{type(exc).__name__}: {exc}").splitlines()[0][:300]
        raise TrackingError(f"Could not read runs from MLflow at {redact(uri)} ({cause})") from None
    return runs
