"""Where the tracking store is, that no credential sits in the config, and how long to wait.

The address comes from `tracking.uri`, else MLFLOW_TRACKING_URI, else the project's sqlite
file; a password only ever through the environment (MLflow's own variables), so no config,
params file or MLflow param holds one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from urllib.parse import urlsplit

from omegaconf import DictConfig

from meddx.errors import ConfigError
from meddx.paths import project_root

# tracking.<key> -> the environment variable MLflow's HTTP client reads on every request.
HTTP_SETTINGS = {
    "retries": "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "timeout": "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "backoff": "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
}


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
