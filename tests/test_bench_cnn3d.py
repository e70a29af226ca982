"""The MedMNIST v2 3D table, the AdrenalMNIST3D recipe's report block, and `make bench-cnn3d`'s
files: the published rows load, the report sets an adrenal model beside them, and the bench
writes its JSON and Markdown (throughput measured for real on a tiny network)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import CONF, REPO
from meddx.config import compose
from meddx.evaluation.document import Document
from meddx.evaluation.report.published import comparison, load_published

sys.path.insert(0, str(REPO / "benchmarks"))
SUBSETS_3D = {
    "organmnist3d",
    "nodulemnist3d",
    "fracturemnist3d",
    "adrenalmnist3d",
    "vesselmnist3d",
    "synapsemnist3d",
}


def test_published_3d_table_has_auc_and_acc_for_all_six_subsets_per_method() -> None:
    block = load_published()["medmnist3d"]
    assert list(block["metrics"]) == ["test_auc", "test_acc"]
    assert len(block["rows"]) == 8
    for method, values in block["rows"].items():
        assert set(values) == SUBSETS_3D, method
        assert all(len(v) == 2 and all(0 < x <= 1 for x in v) for v in values.values()), method
    assert block["rows"]["ResNet-18+3D"]["adrenalmnist3d"] == [0.827, 0.721]


def test_adrenal_recipe_reports_beside_the_3d_rows(tmp_path: Path) -> None:
    cfg = compose([f"paths.root={tmp_path}", "+experiment=adrenal3d"], conf_dir=CONF)
    spec = cfg.report.models.cnn
    assert (spec.benchmark, spec.dataset) == ("medmnist3d", "adrenalmnist3d")
    doc = Document("t", tmp_path)
    result = {"test_auc": 0.9, "test_acc": 0.8}
    comparison(doc, "cnn", result, spec, load_published())
    text = doc.markdown()
    assert "| ResNet-18+ACS | 0.839 | 0.754 |" in text
    assert "No published results" not in text


def test_bench_writes_json_and_markdown_with_both_sections(tmp_path: Path) -> None:
    from bench_cnn3d import write
    from bench_throughput3d import measure

    from meddx.models.cnn import ConvNet

    tiny = ConvNet(1, 2, 8, channels=(4, 8), convs_per_stage=1, spatial_dims=3)
    row = measure(8, 2, 1, net=tiny)
    assert row["train_per_s"] > 0 and row["infer_per_s"] > 0
    write("throughput", {"rows": [row], "note": "tiny net"}, out=tmp_path)
    run = {
        "seed": 0,
        "best_val_auc": 0.8,
        "wall_s": 1.0,
        "cpu_s": 2.0,
        "load_before": [1.0, 1.0, 1.0],
        "load_after": [2.0, 2.0, 2.0],
        **{k: 0.5 for k in ("test_auc", "test_acc")},
        **{f"{k}_ci_{e}": 0.5 for k in ("test_auc", "test_acc") for e in ("low", "high")},
    }
    summary = {k: {"mean": 0.5, "sd": 0.0} for k in ("test_auc", "test_acc")}
    markdown = write(
        "accuracy", {"runs": [run], "jobs": 1, "overrides": [], **summary}, out=tmp_path
    )
    saved = json.loads((tmp_path / "cnn3d.json").read_text())
    assert set(saved) == {"throughput", "accuracy"}
    assert (tmp_path / "cnn3d.md").read_text() == markdown
    assert "| ResNet-18+3D (published) | 0.827 | 0.721 |" in markdown
    assert "test_auc 0.5000 < 0.85 NOT met" in markdown
    assert f"| 8^3 | 2 | {row['train_per_s']:.2f} |" in markdown
