"""Stage `report`: one reports/report.md (and a self-contained report.html) for people.

It lists what the DAG produced: every configured model whose evaluation metrics exist gets
its test figures with CIs beside the published rows (src/meddx/reference/published.yaml),
per-class figures and plots; models not produced yet are listed as such; every other stage's
metrics file is tabulated. MLflow run ids come from the tracking store (latest finished run
of each stage in the experiment) and the git commit from the checkout and the runs' tags.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from meddx.evaluation.document import Document
from meddx.io import write_text
from meddx.paths import Layout, project_root
from meddx.provenance import git_state, pipeline_id
from meddx.tracking import latest_runs, stage_run, tracking_uri

STAGE = "report"
SECTIONS = ("report",)
PUBLISHED = Path(__file__).resolve().parents[1] / "reference" / "published.yaml"
HEADLINE = {
    "test_auc": "AUC",
    "test_acc": "ACC",
    "test_balanced_acc": "balanced ACC",
    "test_ece": "ECE",
    "test_ap": "AP",
}
PER_CLASS = ("sensitivity", "specificity", "ppv", "f1", "auc", "ap", "support")
FIGURE_ORDER = ("roc", "pr", "reliability", "confusion", "gradcam")


def lookup(result: dict[str, Any], key: str) -> float | None:
    """A metric by dotted key (`test_acc`, `per_class.S.sensitivity`); None when absent."""
    if key in result:
        value = result[key]
    else:
        head, _, rest = key.partition(".")
        value = result.get(head)
        for part in rest.split(".") if rest else ():
            value = value.get(part) if isinstance(value, dict) else None
    return float(value) if isinstance(value, int | float) else None


def number(value: float | None, scale: float = 1.0) -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "undefined"  # e.g. the PPV of a class the model never predicts
    return f"{value * scale:.1f}" if scale != 1 else f"{value:.4f}"


def with_ci(result: dict[str, Any], key: str, scale: float = 1.0) -> str:
    low, high = lookup(result, f"{key}_ci_low"), lookup(result, f"{key}_ci_high")
    text = number(lookup(result, key), scale)
    return f"{text} [{number(low, scale)}, {number(high, scale)}]" if low is not None else text


def _run_cell(runs: dict[str, Any], stage: str) -> str:
    return runs[stage].info.run_id if stage in runs else "no finished run"


def _figures(plots: Path) -> list[Path]:
    pngs = sorted(plots.glob("*.png")) if plots.is_dir() else []
    rank = {name: i for i, name in enumerate(FIGURE_ORDER)}
    return sorted(pngs, key=lambda p: (rank.get(p.stem, len(rank)), p.stem))


def _comparison(
    doc: Document, model: str, result: dict[str, Any], spec: DictConfig, published: dict[str, Any]
) -> None:
    block = published.get(spec.benchmark)
    if block is None:
        doc.paragraph(f"No published block '{spec.benchmark}' in {PUBLISHED.name}.")
        return
    keys, scale = list(block["metrics"]), float(block.get("scale", 1))
    rows = [[f"meddx {model} (this pipeline)", *[with_ci(result, k, scale) for k in keys]]]
    rows += [
        [method, *[number(v) if v is None else f"{v:g}" for v in values[spec.dataset]]]
        for method, values in block["rows"].items()
        if spec.dataset in values
    ]
    doc.heading(f"{model}: {block['title']}", 3)
    doc.table(["method", *block["metrics"].values()], rows)
    if len(rows) == 1:
        doc.paragraph(
            f"No published results for dataset '{spec.dataset}'; the published rows "
            f"cover: {', '.join(sorted({d for v in block['rows'].values() for d in v}))}"
            "."
        )
    doc.paragraph(f"Source: {block['source']} Protocol: {block['protocol']}")


def _model_section(
    doc: Document,
    layout: Layout,
    model: str,
    spec: DictConfig,
    result: dict[str, Any],
    published: dict[str, Any],
    runs: dict[str, Any],
) -> None:
    doc.heading(f"{model} on {spec.dataset}")
    evaluate_run = runs.get(spec.evaluate)
    registered = evaluate_run.data.tags.get("meddx.registered_model") if evaluate_run else None
    doc.bullets(
        [
            f"evaluation stage `{spec.evaluate}`, MLflow run {_run_cell(runs, spec.evaluate)}",
            f"training stage `{spec.train}`, MLflow run {_run_cell(runs, spec.train)}",
            f"registered model: {registered or 'none'}",
            f"{result.get('n_test', '?')} test samples, bootstrap resamples: "
            f"{result.get('bootstrap', 0)} (95% percentile intervals in brackets)",
        ]
    )
    _comparison(doc, model, result, spec, published)
    per_class = result.get("per_class", {})
    if per_class:
        doc.heading(f"{model}: per class (test)", 3)
        columns = [c for c in PER_CLASS if any(c in row for row in per_class.values())]
        doc.table(
            ["class", *columns],
            [
                [name, *[str(row[c]) if c == "support" else number(row.get(c)) for c in columns]]
                for name, row in per_class.items()
            ],
        )
    for png in _figures(layout.plots(spec.evaluate)):
        doc.image(png.relative_to(layout.reports).as_posix(), f"{model}: {png.stem}")


def build(
    cfg: DictConfig, results: dict[str, dict[str, Any]], runs: dict[str, Any], report_run_id: str
) -> Document:
    layout = Layout.of(cfg)
    root = project_root(cfg.paths.root)
    git = git_state(root)
    published = yaml.safe_load(PUBLISHED.read_text())
    doc = Document(cfg.report.title, layout.reports)
    doc.paragraph(
        f"Code: git commit {git['git.commit']} "
        f"(uncommitted changes: {git['git.dirty']}). "
        f"Pipeline id {pipeline_id(root)}. MLflow experiment '{cfg.tracking.experiment}'"
        f" at {tracking_uri(cfg)}; this report is run {report_run_id}."
    )
    doc.heading("Models")
    header = ["model", "dataset", "evaluation stage", *HEADLINE.values()]
    header += ["evaluation run", "commit"]
    rows = []
    for model, spec in cfg.report.models.items():
        result = results.get(spec.evaluate)
        if result is None:
            missing = ["not produced"] * len(HEADLINE)
            rows.append([model, spec.dataset, spec.evaluate, *missing, "—", "—"])
            continue
        found = runs.get(spec.evaluate)
        commit = found.data.tags.get("git.commit", "?")[:10] if found else "—"
        rows.append(
            [
                model,
                spec.dataset,
                spec.evaluate,
                *[with_ci(result, k) for k in HEADLINE],
                _run_cell(runs, spec.evaluate),
                commit,
            ]
        )
    doc.table(header, rows)
    doc.paragraph(
        "A model marked 'not produced' has no reports/metrics/<stage>.json yet: its "
        "stage is not in this DAG or has not run."
    )
    for model, spec in cfg.report.models.items():
        if spec.evaluate in results:
            _model_section(doc, layout, model, spec, results[spec.evaluate], published, runs)
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
                    _run_cell(runs, stage),
                ]
                for stage, result in others.items()
                for key, value in result.items()
                if isinstance(value, int | float) and math.isfinite(value)
            ],
        )
    return doc


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    metrics_dir = layout.metrics(STAGE).parent
    paths = sorted(metrics_dir.glob("*.json")) if metrics_dir.is_dir() else []
    results = {p.stem: json.loads(p.read_text()) for p in paths}
    stages = sorted(set(results) | {s.train for s in cfg.report.models.values()})
    runs = latest_runs(cfg, stages)
    md, page = layout.reports / "report.md", layout.reports / "report.html"
    with stage_run(
        cfg, STAGE, inputs=paths, run_name=f"{STAGE} ({len(results)} stages)", sections=SECTIONS
    ) as tracked:
        doc = build(cfg, results, runs, tracked.run_id)
        write_text(md, doc.markdown())
        write_text(page, doc.html())
        tracked.log_artifact(md, "report")
        tracked.log_artifact(page, "report")
    produced = [m for m, s in cfg.report.models.items() if s.evaluate in results]
    return {"report": str(md), "models": produced, "figures": len(doc.image_paths)}
