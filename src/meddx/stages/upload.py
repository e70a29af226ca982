"""`python -m meddx upload`: send the runs spooled while the MLflow store was unreachable.

Not a DVC stage: it changes no output, only the tracking store. Each run goes to
`tracking.uri` when that is set, else to the address it was meant for when it was spooled.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from meddx.paths import Layout, project_root
from meddx.tracking.spool import upload
from meddx.tracking.uri import http_limits


def run(cfg: DictConfig) -> dict[str, Any]:
    spool_dir = Layout(project_root(cfg.paths.root)).unsent_runs
    with http_limits(cfg.tracking):
        sent = upload(spool_dir, cfg.tracking.uri or None)
    return {"uploaded": sent, "spool": str(spool_dir)}
