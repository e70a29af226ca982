"""An evaluation's figures as the stage's MLflow run shows them: flat metric names, the run
note with the headline figures, and the files as artifacts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from meddx.evaluation.scoring import HEADLINE
from meddx.tracking import StageRun


def flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """Metrics JSON as MLflow metric names: headline keys as is, `<class>.<figure>` per class."""
    flat = {k: float(v) for k, v in result.items() if isinstance(v, int | float)}
    flat |= {
        f"{name}.{k}": float(v)
        for name, row in result.get("per_class", {}).items()
        for k, v in row.items()
    }
    return {k: v for k, v in flat.items() if math.isfinite(v)}


def _cell(result: dict[str, Any], key: str) -> str:
    value = result[f"test_{key}"]
    low, high = result.get(f"test_{key}_ci_low"), result.get(f"test_{key}_ci_high")
    return f"{value:.4f} [{low:.4f}, {high:.4f}]" if low is not None else f"{value:.4f}"


def note(result: dict[str, Any], title: str, headline: tuple[str, ...] = HEADLINE) -> str:
    """The run description MLflow shows first on the run page: the headline figures with CIs."""
    level = "95% CI" if result.get("bootstrap") else "no CI"
    lines = [f"**{title}**", "", f"| metric | test value [{level}] |", "|---|---|"]
    lines += [f"| {key} | {_cell(result, key)} |" for key in headline if f"test_{key}" in result]
    tail = f"{result['n_test']} test samples, {result['bootstrap']} resamples."
    return "\n".join([*lines, "", tail]) + "\n"


def log(
    run: StageRun,
    result: dict[str, Any],
    metrics_path: Path,
    plots: Path,
    title: str,
    headline: tuple[str, ...] = HEADLINE,
) -> None:
    """Metrics, the note, and every file under `plots` (a folder under its own name)."""
    run.log_metrics(flat_metrics(result))
    run.set_tags({"mlflow.note.content": note(result, title, headline)})
    run.log_artifact(metrics_path, "metrics")
    for path in sorted(plots.iterdir()):
        run.log_artifact(path, f"plots/{path.name}" if path.is_dir() else "plots")
