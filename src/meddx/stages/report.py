"""Stage `report`: one reports/report.md (and a self-contained report.html) for people.

The layout is `meddx.evaluation.report`; this stage gathers what it shows: every metrics file
the DAG wrote (the default pipeline's and each other image pipeline's, `volume/evaluate`), the
latest finished MLflow run of each stage (read from the store, which is no
DVC dep) and the git commit. A store that does not answer costs the run ids, not the report:
the report says so, and its own run waits in the spool for `meddx upload` like any stage's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from meddx.config import PIPELINES
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


def _metrics_files(folder: Path, pipelines: list[str]) -> dict[str, Path]:
    """{stage: metrics file} of the default pipeline and of each other pipeline's folder, keyed
    as the stages' runs are tagged (`evaluate`, `volume/evaluate`: meddx.paths); inner files of
    a stage (`evaluate_gan/tstr.json`) are its own business and stay out."""
    found = {}
    for prefix, where in [("", folder), *((f"{name}/", folder / name) for name in pipelines)]:
        for path in sorted(where.glob("*.json")) if where.is_dir() else []:
            found[f"{prefix}{path.stem}"] = path
    return found


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    found = _metrics_files(layout.metrics(STAGE).parent, list(cfg.get(PIPELINES) or {}))
    paths = list(found.values())
    results = {stage: json.loads(path.read_text()) for stage, path in found.items()}
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
