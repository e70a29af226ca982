"""The report's layout: the models table, one section per produced model, the other stages.

It lists what the DAG produced: every configured model whose evaluation metrics exist gets
its test figures with CIs beside the published rows, per-class figures and plots; models not
produced yet are listed as such; every other stage's metrics file is tabulated.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from meddx.evaluation.document import Document
from meddx.evaluation.report.cells import number, with_ci
from meddx.evaluation.report.published import comparison, load_published
from meddx.paths import Layout, project_root
from meddx.provenance import git_state, pipeline_id

HEADLINE = {
    "test_auc": "AUC",
    "test_acc": "ACC",
    "test_balanced_acc": "balanced ACC",
    "test_ece": "ECE",
    "test_ap": "AP",
}
# A segmentation model's headline (`meddx.evaluation.seg_scoring`): columns of the models table
# only when a segmentation model has results, so a classification report reads as before.
SEG_HEADLINE = {"test_dice": "Dice", "test_hd95_mm": "HD95 (mm)", "test_msd_mm": "MSD (mm)"}
PER_CLASS = ("sensitivity", "specificity", "ppv", "f1", "auc", "ap", "support")
PER_STRUCTURE = ("dice", "hd95_mm", "msd_mm", "n_cases", "missed")
COUNTS = {"support", "n_cases", "missed"}
FIGURE_ORDER = ("roc", "pr", "reliability", "confusion", "gradcam", "overlays")


class _Runs:
    """The MLflow run of each stage as a table cell, or why there is none."""

    def __init__(self, runs: dict[str, Any], missing: str) -> None:
        self.runs, self.missing = runs, missing

    def cell(self, stage: str) -> str:
        return self.runs[stage].info.run_id if stage in self.runs else self.missing


def _figures(plots: Path) -> list[Path]:
    pngs = sorted(plots.glob("*.png")) if plots.is_dir() else []
    rank = {name: i for i, name in enumerate(FIGURE_ORDER)}
    return sorted(pngs, key=lambda p: (rank.get(p.stem, len(rank)), p.stem))


def _model_section(
    doc: Document,
    layout: Layout,
    model: str,
    spec: DictConfig,
    result: dict[str, Any],
    published: dict[str, Any],
    runs: _Runs,
) -> None:
    doc.heading(f"{model} on {spec.dataset}")
    evaluate_run = runs.runs.get(spec.evaluate)
    registered = evaluate_run.data.tags.get("meddx.registered_model") if evaluate_run else None
    doc.bullets(
        [
            f"evaluation stage `{spec.evaluate}`, MLflow run {runs.cell(spec.evaluate)}",
            f"training stage `{spec.train}`, MLflow run {runs.cell(spec.train)}",
            f"registered model: {registered or 'none'}",
            f"{result.get('n_test', '?')} test samples, bootstrap resamples: "
            f"{result.get('bootstrap', 0)} (95% percentile intervals in brackets)",
            *([f"voxel spacing: {result['spacing_source']}"] if "spacing_source" in result else []),
        ]
    )
    if spec.get("benchmark") is None:
        doc.paragraph(f"No published comparison: no published result is for {spec.dataset}.")
    else:
        comparison(doc, model, result, spec, published)
    per_class = result.get("per_class", {})
    if per_class:
        doc.heading(f"{model}: per class (test)", 3)
        columns = [
            c for c in (*PER_CLASS, *PER_STRUCTURE) if any(c in row for row in per_class.values())
        ]
        doc.table(
            ["class", *columns],
            [
                [name, *[str(row[c]) if c in COUNTS else number(row.get(c)) for c in columns]]
                for name, row in per_class.items()
            ],
        )
    if result.get("worst_cases"):
        doc.heading(f"{model}: worst test cases (mean Dice over their structures)", 3)
        doc.table(
            ["test case", "Dice"],
            [[str(row["index"]), number(row["dice"])] for row in result["worst_cases"]],
        )
    for png in _figures(layout.plots(spec.evaluate)):
        doc.image(png.relative_to(layout.reports).as_posix(), f"{model}: {png.stem}")


def _models_table(doc: Document, cfg: DictConfig, results: dict[str, Any], runs: _Runs) -> None:
    produced = [results[s.evaluate] for s in cfg.report.models.values() if s.evaluate in results]
    headline = dict(HEADLINE)
    if any("test_dice" in result for result in produced):
        headline |= SEG_HEADLINE
    header = ["model", "dataset", "evaluation stage", *headline.values()]
    header += ["evaluation run", "commit"]
    rows = []
    for model, spec in cfg.report.models.items():
        result = results.get(spec.evaluate)
        if result is None:
            missing = ["not produced"] * len(headline)
            rows.append([model, spec.dataset, spec.evaluate, *missing, "—", "—"])
            continue
        found = runs.runs.get(spec.evaluate)
        commit = found.data.tags.get("git.commit", "?")[:10] if found else "—"
        rows.append(
            [
                model,
                spec.dataset,
                spec.evaluate,
                *[with_ci(result, k) for k in headline],
                runs.cell(spec.evaluate),
                commit,
            ]
        )
    doc.table(header, rows)
    doc.paragraph(
        "A model marked 'not produced' has no reports/metrics/<stage>.json yet: its "
        "stage is not in this DAG or has not run."
    )


def build(
    cfg: DictConfig,
    results: dict[str, dict[str, Any]],
    runs: dict[str, Any],
    report_run: str,
    store: str,
    missing_run: str = "no finished run",
) -> Document:
    """The report of `results` (metrics file stem -> content) and `runs` (stage -> latest
    finished MLflow run), itself logged as `report_run` in the store at `store`."""
    layout = Layout.of(cfg)
    root = project_root(cfg.paths.root)
    git = git_state(root)
    published = load_published()
    known = _Runs(runs, missing_run)
    doc = Document(cfg.report.title, layout.reports)
    doc.paragraph(
        f"Code: git commit {git['git.commit']} "
        f"(uncommitted changes: {git['git.dirty']}). "
        f"Pipeline id {pipeline_id(root)}. MLflow experiment '{cfg.tracking.experiment}'"
        f" at {store}; this report is run {report_run}."
    )
    doc.heading("Models")
    _models_table(doc, cfg, results, known)
    for model, spec in cfg.report.models.items():
        if spec.evaluate in results:
            _model_section(doc, layout, model, spec, results[spec.evaluate], published, known)
    shown = {spec.evaluate for spec in cfg.report.models.values()}
    others = {stage: r for stage, r in results.items() if stage not in shown}
    if others:
        doc.heading("Other stages")
        doc.table(
            ["stage", "metric", "value", "MLflow run"],
            [
                [
                    stage,
                    key,
                    str(value) if isinstance(value, int) else number(value),
                    known.cell(stage),
                ]
                for stage, result in others.items()
                for key, value in result.items()
                if isinstance(value, int | float) and math.isfinite(value)
            ],
        )
    return doc
