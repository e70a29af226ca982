"""One model's test figures beside the published results for its benchmark and dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from meddx.evaluation.document import Document
from meddx.evaluation.report.cells import number, with_ci

PUBLISHED = Path(__file__).resolve().parents[2] / "reference" / "published.yaml"


def load_published() -> dict[str, Any]:
    """{benchmark: {title, metrics, scale, rows: {method: {dataset: values}}, source, protocol}}."""
    return yaml.safe_load(PUBLISHED.read_text())


def comparison(
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
