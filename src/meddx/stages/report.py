"""Stage `report`: one reports/report.md (and a self-contained report.html) for people.

The layout is `meddx.evaluation.report`; this stage gathers what it shows: every metrics file
the DAG wrote, the latest finished MLflow run of each stage (read from the store, which is no
DVC dep) and the git commit. A store that does not answer costs the run ids, not the report:
the report says so, and its own run waits in the spool for `meddx upload` like any stage's.
"""

from __future__ import annotations

import json
from typing import Any

from omegaconf import DictConfig

from meddx.errors import TrackingError
from meddx.evaluation.report.build import build
from meddx.io import write_text
from meddx.paths import Layout
from meddx.redact import redact
from meddx.tracking import stage_run
from meddx.tracking.store import latest_runs
from meddx.tracking.uri import tracking_uri

STAGE = "report"
SECTIONS = ("report",)


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    metrics_dir = layout.metrics(STAGE).parent
    paths = sorted(metrics_dir.glob("*.json")) if metrics_dir.is_dir() else []
    results = {p.stem: json.loads(p.read_text()) for p in paths}
    stages = sorted(set(results) | {s.train for s in cfg.report.models.values()})
    md, page = layout.reports / "report.md", layout.reports / "report.html"
    with stage_run(
        cfg, STAGE, inputs=paths, run_name=f"{STAGE} ({len(results)} stages)", sections=SECTIONS
    ) as tracked:
        runs, missing = {}, "unknown (MLflow unreachable)"
        if tracked.error is None:  # inside the run: its bounded retries apply
            try:
                runs, missing = latest_runs(cfg, stages), "no finished run"
            except TrackingError as exc:
                tracked.go_offline(str(exc))
        this_run = tracked.run_id or f"{tracked.spool_file.name} in {tracked.spool_dir} (unsent)"
        doc = build(cfg, results, runs, this_run, redact(tracking_uri(cfg)), missing)
        write_text(md, doc.markdown())
        write_text(page, doc.html())
        tracked.log_artifact(md, "report")
        tracked.log_artifact(page, "report")
    produced = [m for m, s in cfg.report.models.items() if s.evaluate in results]
    return {"report": str(md), "models": produced, "figures": len(doc.image_paths)}
