"""The image DAG end to end on the offline default: evaluation outputs, the report, DVC plots,
MLflow artifacts and the registry, and the notebooks, all from one tiny pipeline run."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import CONF, REPO, TINY_IMAGES
from meddx.config import compose

pytestmark = pytest.mark.slow
STAGES = ("acquire_images", "preprocess_images", "train_cnn", "evaluate", "report")
NUMBER = r"-?\d+(\.\d+)?"
WITH_CI = re.compile(rf"^{NUMBER}( \[{NUMBER}, {NUMBER}\])?$")
HEADLINE = ("auc", "acc", "balanced_acc", "ece")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tracking_db: str) -> Path:
    """Every stage's run() in dvc.yaml order, as `dvc repro` runs them, in a fresh tree."""
    root = tmp_path_factory.mktemp("project")
    cfg = compose(
        [
            f"paths.root={root}",
            f"tracking.uri={tracking_db}",
            "tracking.experiment=report-pipeline",
            *TINY_IMAGES,
            "evaluate.bootstrap=200",
        ],
        conf_dir=CONF,
    )
    for stage in STAGES:
        importlib.import_module(f"meddx.stages.{stage}").run(cfg)
    return root


def _tables(markdown: str) -> list[list[list[str]]]:
    tables, current = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip("|").split("|")])
        elif current:
            tables.append([row for row in current if not set("".join(row)) <= {"-"}])
            current = []
    return tables


def test_report_embeds_every_figure_and_shows_every_metric_as_a_number(project: Path) -> None:
    report = project / "reports" / "report.md"
    text = report.read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {Path(f).stem for f in figures} >= {"roc", "pr", "reliability", "confusion", "gradcam"}
    for figure in figures:
        assert (report.parent / figure).is_file(), figure
    tables = _tables(text)
    models = next(t for t in tables if t[0][0] == "model")
    cnn = next(row for row in models if row[0] == "cnn")
    for cell in cnn[3:8]:  # after model, dataset, evaluation stage
        assert WITH_CI.match(cell), cell
    comparison = next(t for t in tables if t[0][0] == "method")
    ours = next(row for row in comparison if row[0].startswith("meddx cnn"))
    assert all(WITH_CI.match(cell) for cell in ours[1:]), ours
    per_class = next(t for t in tables if t[0][0] == "class")
    result = json.loads((project / "reports" / "metrics" / "evaluate.json").read_text())
    for row in per_class[1:]:
        for column, cell in zip(per_class[0][1:], row[1:], strict=True):
            if cell == "undefined":  # only where the figure has no value (0/0)
                assert np.isnan(result["per_class"][row[0]][column])
            else:
                assert re.fullmatch(NUMBER, cell), (row[0], column, cell)


def test_report_lists_models_the_dag_has_not_produced(project: Path) -> None:
    models = next(
        t for t in _tables((project / "reports" / "report.md").read_text()) if t[0][0] == "model"
    )
    rnn = next(row for row in models if row[0] == "rnn")
    assert "not produced" in rnn


def test_report_names_the_mlflow_runs_that_produced_it(project: Path, tracking_db: str) -> None:
    from mlflow.tracking import MlflowClient

    text = (project / "reports" / "report.md").read_text()
    client = MlflowClient(tracking_uri=tracking_db)
    experiment = client.get_experiment_by_name("report-pipeline")
    runs = client.search_runs([experiment.experiment_id])
    by_stage = {r.data.tags["meddx.stage"]: r.info.run_id for r in runs}
    for stage in ("train_cnn", "evaluate", "report"):
        assert by_stage[stage] in text


def test_html_report_is_self_contained(project: Path) -> None:
    page = (project / "reports" / "report.html").read_text()
    figures = re.findall(r"!\[", (project / "reports" / "report.md").read_text())
    assert page.count('src="data:image/png;base64,') == len(figures)
    assert "<table>" in page and 'src="plots/' not in page


def test_metrics_json_has_every_headline_figure_inside_its_interval(project: Path) -> None:
    result = json.loads((project / "reports" / "metrics" / "evaluate.json").read_text())
    for key in HEADLINE:
        low, value, high = (
            result[f"test_{key}_ci_low"],
            result[f"test_{key}"],
            result[f"test_{key}_ci_high"],
        )
        assert low <= value <= high, key
    assert result["bootstrap"] == 200 and result["n_test"] == 80
    plots = project / "reports" / "plots" / "evaluate"
    for name in ("roc.json", "pr.json", "calibration.json", "confusion.csv"):
        assert (plots / name).stat().st_size > 0


def test_dvc_plots_show_renders_the_curves_and_figures(project: Path, tmp_path: Path) -> None:
    shutil.copy(REPO / "dvc.yaml", project / "dvc.yaml")
    shutil.copy(REPO / "params.yaml", project / "params.yaml")  # `foreach: ${pipelines}`
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "--force", "-q"], cwd=project, check=True)
    subprocess.run(
        [*dvc, "plots", "show", "-o", str(tmp_path / "html")],
        cwd=project,
        check=True,
        capture_output=True,
    )
    page = (tmp_path / "html" / "index.html").read_text()
    for name in ("roc.json", "pr.json", "calibration.json", "confusion.csv"):
        assert name in page
    static = {p.name for p in (tmp_path / "html" / "static").iterdir()}
    assert {
        f"workspace_reports_plots_evaluate_{n}.png"
        for n in ("roc", "pr", "reliability", "confusion", "gradcam")
    } <= static


def _evaluate_run(tracking_db: str) -> tuple[Any, Any]:
    """The store's client and the pipeline's evaluate run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_db, registry_uri=tracking_db)
    experiment = client.get_experiment_by_name("report-pipeline")
    (run,) = client.search_runs([experiment.experiment_id], "tags.`meddx.stage` = 'evaluate'")
    return client, run


def test_mlflow_evaluate_run_has_images_a_summary_and_a_registered_model(
    project: Path, tracking_db: str
) -> None:
    client, run = _evaluate_run(tracking_db)
    assert run.info.run_name == "evaluate cnn on synthetic"
    assert "test_auc_ci_low" in run.data.metrics and "disc.sensitivity" in run.data.metrics
    assert "| auc |" in run.data.tags["mlflow.note.content"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/roc.png", "plots/gradcam.png", "plots/reliability.png"} <= artifacts
    (version,) = client.search_model_versions(f"run_id='{run.info.run_id}'")
    assert version.name == "meddx-cnn-synthetic"
    # The store is shared by the session: other tests' models may hold the alias, by merit.
    best = client.get_model_version_by_alias(version.name, "best")
    assert float(best.tags["val_score"]) >= float(version.tags["val_score"])
    (logged,) = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    top = {a.path for a in client.list_logged_model_artifacts(logged.model_id)}
    inside = {a.path for a in client.list_logged_model_artifacts(logged.model_id, "artifacts")}
    assert {"MLmodel", "input_example.json"} <= top
    assert {"artifacts/model.pt", "artifacts/model.onnx"} <= inside
    assert float(logged.tags["meddx.onnx_max_abs_diff"]) <= 1e-4
    outputs = client.get_run(run.info.run_id).outputs
    assert [o.model_id for o in outputs.model_outputs] == [logged.model_id]  # "Logged models"


def test_the_model_card_names_the_data_and_the_metrics_with_cis(project: Path) -> None:
    card = (project / "reports" / "model_cards" / "evaluate.md").read_text()
    assert card.startswith("# Model card: meddx-cnn-synthetic")
    assert "Dataset `synthetic`" in card
    splits = {t[0][0]: t for t in _tables(card)}["split"]
    assert [row[0] for row in splits[1:]] == ["train", "val", "test"]
    assert "disc: " in splits[1][2] and "%" in splits[1][2]  # class balance, counted
    metrics = dict(row for row in {t[0][0]: t for t in _tables(card)}["metric"][1:])
    result = json.loads((project / "reports" / "metrics" / "evaluate.json").read_text())
    assert metrics["auc"] == (
        f"{result['test_auc']:.4f} [{result['test_auc_ci_low']:.4f}, "
        f"{result['test_auc_ci_high']:.4f}]"
    )
    assert "Expected calibration error" in card and "Per class (test)" in card
    assert re.search(r"git commit ([0-9a-f]{40}|unknown)", card)


def test_the_model_card_is_the_registered_versions_description_and_a_run_artifact(
    project: Path, tracking_db: str
) -> None:
    client, run = _evaluate_run(tracking_db)
    (version,) = client.search_model_versions(f"run_id='{run.info.run_id}'")
    card = (project / "reports" / "model_cards" / "evaluate.md").read_text()
    assert client.get_model_version(version.name, version.version).description == card
    logged = Path(client.download_artifacts(run.info.run_id, "model_card.md")).read_text()
    assert logged == card


def test_the_report_links_the_model_card(project: Path) -> None:
    report = (project / "reports" / "report.md").read_text()
    assert "- model card: model_cards/evaluate.md" in report
    assert (project / "reports" / "model_cards" / "evaluate.md").is_file()


def test_notebooks_execute_on_the_pipeline_outputs(
    project: Path, tracking_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    from meddx.data.npz import save_npz

    # A few beats in the preprocess_ecg contract, so the ECG section runs too.
    rng = np.random.default_rng(0)
    save_npz(
        project / "data" / "processed" / "ecg.npz",
        {
            "train_beats": rng.normal(size=(12, 1, 90)).astype(np.float32),
            "train_labels": np.arange(12) % 3,
        },
    )
    monkeypatch.setenv("MEDDX_ROOT", str(project))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_db)
    for name in ("explore_data.ipynb", "compare_experiments.ipynb"):
        book = nbformat.read(REPO / "notebooks" / name, as_version=4)
        assert not any(cell.get("outputs") for cell in book.cells), f"{name} is stored with outputs"
        NotebookClient(
            book, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(project)}}
        ).execute()
        images = [
            o for c in book.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
        ]
        assert images, f"{name} drew no figure"


@pytest.mark.parametrize("ecg", ["synthetic", "mitbih"])
def test_an_ecg_model_stands_beside_published_mitbih_rows_only_when_trained_on_mitbih(
    tmp_path: Path, ecg: str
) -> None:
    import yaml

    from meddx.evaluation.report.build import build
    from meddx.evaluation.report.published import PUBLISHED

    cfg = compose([f"paths.root={tmp_path}", f"data/ecg={ecg}"], conf_dir=CONF)
    published = yaml.safe_load(PUBLISHED.read_text())["mitbih"]["rows"]
    doc = build(cfg, {"evaluate_rnn": {"n_test": 1276, "acc": 0.9}}, {}, "run-id", "sqlite://")
    text = doc.markdown()
    assert f"rnn on {ecg}" in text
    shown = [method for method, values in published.items() if "mitbih" in values]
    assert shown and all((method in text) == (ecg == "mitbih") for method in shown)
