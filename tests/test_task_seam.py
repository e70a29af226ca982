"""The task seam: a task the data facts name decides label validation and encoding, split
counts, sample grids, loss, validation figures, test scoring, plots and the run summary, and
the stages only call it.

The proof is a second task defined here and nowhere in src/ (a regression of each image's mean
brightness, nothing like classification): registered in the three task registries, it goes
through the unchanged `preprocess_images`, `train_cnn` and `evaluate` stages, and what they
write is what the task decided.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from meddx.data import tasks as data_tasks
from meddx.data.npz import load_npz, save_npz
from meddx.errors import ConfigError, DataError
from meddx.evaluation import calibration
from meddx.evaluation import tasks as evaluation_tasks
from meddx.io import write_json
from meddx.paths import Layout
from meddx.stages import evaluate, preprocess_images, train_cnn
from meddx.training import tasks as training_tasks

KIND = "brightness"
REPO = Path(__file__).resolve().parents[1]
# Modules whose behaviour depends on the task: a stage reaches them through a task object.
TASK_SPECIFIC = {
    "meddx.metrics",
    "meddx.models.predict",
    "meddx.training.imbalance",
    "meddx.evaluation.scoring",
    "meddx.evaluation.plot_files",
    "meddx.evaluation.case_grids",
    "meddx.evaluation.run_summary",
}


@torch.no_grad()
def _predict(net: nn.Module, inputs: tuple[np.ndarray, ...], batch_size: int = 512) -> np.ndarray:
    net.eval()
    return net(torch.from_numpy(inputs[0])).sigmoid().numpy()


def _squared_error(targets: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean((scores[:, 0] - targets.reshape(-1)) ** 2))


class BrightnessLabels:
    """One brightness in [0, 1] per image, stored as floats; every image is in the one grid."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def check(self, name: str, labels: np.ndarray, num_classes: int, spatial_shape) -> None:
        flat = labels.reshape(len(labels), -1)
        if flat.shape[1] != 1 or not ((flat >= 0) & (flat <= 1)).all():
            raise DataError(f"{name} holds brightnesses outside [0, 1] or more than one each")

    def encode(self, labels: np.ndarray) -> np.ndarray:
        return labels.reshape(-1).astype(np.float32)

    def class_counts(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        return np.array([len(labels)])

    def members(self, labels: np.ndarray, k: int) -> np.ndarray:
        return np.arange(len(labels))


class BrightnessTraining:
    """Sigmoid output against a target in [0, 1], mean squared error."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def loss(self, model_cfg: Any, train_labels: np.ndarray, num_classes: int) -> nn.Module:
        return self.plain_loss(None, 0.0)

    def plain_loss(self, class_weights: Any, label_smoothing: float) -> nn.Module:
        class Squared(nn.Module):
            def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
                return ((logits[:, 0].sigmoid() - target) ** 2).mean()

        return Squared()

    def sample_weights(self, model_cfg: Any, train_labels: np.ndarray, num_classes: int) -> None:
        return None

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.sigmoid()

    def augmented(self, augment, inputs, target):
        return (augment(inputs[0]), *inputs[1:]), target

    predict = staticmethod(_predict)

    def summary(self, targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        return {"neg_mse": -_squared_error(targets, scores)}


class BrightnessEvaluation:
    """Test MSE, no calibration, one plot file of residuals, no explanation grid; records what
    it was asked."""

    calls: ClassVar[list[str]] = []

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def predict(self, net: nn.Module, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        self.calls.append("predict")
        return _predict(net, inputs)

    def score(self, names, y_true, scores, settings, seed, facts=None) -> SimpleNamespace:
        self.calls.append("score")
        residuals = (scores[:, 0] - y_true).tolist()
        metrics = {"test_mse": _squared_error(y_true, scores), "n_test": len(y_true)}
        return SimpleNamespace(metrics=metrics, residuals=residuals)

    def calibrate(self, net, validation, test, settings) -> calibration.Calibration:
        self.calls.append("calibrate")
        return calibration.NONE

    def write_plots(self, evaluation: SimpleNamespace, plots: Path) -> list[Path]:
        self.calls.append("write_plots")
        write_json(plots / "residuals.json", {"residuals": evaluation.residuals})
        return [plots / "residuals.json"]

    def explain(self, net, inputs, evaluation, settings, seed, plots) -> None:
        self.calls.append("explain")

    def log(self, run, result, metrics_path, plots, title) -> None:
        self.calls.append("log")
        run.log_metrics({"test_mse": result["test_mse"]})


@pytest.fixture
def brightness_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(data_tasks.REGISTRY, KIND, BrightnessLabels)
    monkeypatch.setitem(training_tasks.REGISTRY, KIND, BrightnessTraining)
    monkeypatch.setitem(evaluation_tasks.REGISTRY, KIND, BrightnessEvaluation)
    monkeypatch.setattr(BrightnessEvaluation, "calls", [])


BRIGHTNESS_DATA = (
    f"data.image.task={KIND}",
    "data.image.name=brightness",
    "data.image.class_names=[brightness]",
    "data.image.size=16",
    "data.image.intensity=unit",
)


def _write_raw(layout: Layout) -> dict[str, np.ndarray]:
    """Raw splits as acquire_images writes them, labelled with each image's mean brightness."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 64), ("val", 32), ("test", 32)):
        images = rng.integers(0, 256, (n, 16, 16), dtype=np.uint8)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = (images.mean(axis=(1, 2)) / 255).astype(np.float32)[:, None]
    save_npz(layout.raw_images, arrays)
    return arrays


def test_a_task_registered_outside_src_decides_what_preprocessing_stores_and_counts(
    make_cfg, brightness_task
) -> None:
    cfg = make_cfg(*BRIGHTNESS_DATA)
    layout = Layout.of(cfg)
    raw = _write_raw(layout)

    stats = preprocess_images.run(cfg)

    processed = load_npz(layout.processed_images)
    assert processed["train_labels"].dtype == np.float32
    np.testing.assert_array_equal(processed["test_labels"], raw["test_labels"][:, 0])
    assert stats["train"]["n"] == stats["train"]["class_brightness"] == 64
    grids = sorted(p.name for p in (layout.plots("preprocess_images") / "samples").iterdir())
    assert grids == ["0_brightness.png"]


def test_labels_the_task_refuses_fail_preprocessing_with_the_task_s_message(
    make_cfg, brightness_task
) -> None:
    cfg = make_cfg(*BRIGHTNESS_DATA)
    layout = Layout.of(cfg)
    arrays = _write_raw(layout)
    arrays["val_labels"][3] = 1.5
    save_npz(layout.raw_images, arrays)

    with pytest.raises(DataError, match=r"images\.npz: val_labels holds brightnesses outside"):
        preprocess_images.run(cfg)


@pytest.mark.slow
def test_a_task_registered_outside_src_goes_through_the_training_and_evaluation_stages(
    make_cfg, brightness_task
) -> None:
    cfg = make_cfg(
        "cnn=convnet",
        "cnn.net.channels=[4,8]",
        "cnn.max_epochs=2",
        "cnn.batch_size=16",
        "cnn.monitor=val_neg_mse",
        "evaluate.register=false",
        *BRIGHTNESS_DATA,
    )
    _write_raw(Layout.of(cfg))
    preprocess_images.run(cfg)
    layout = Layout.of(cfg)

    trained = train_cnn.run(cfg)
    tested = evaluate.run(cfg)

    assert trained["best_val_neg_mse"] <= 0.0 and trained["epochs"] == 2
    exported = torch.load(layout.model_dir("cnn") / "model.pt", weights_only=False)
    assert exported["info"]["task"] == KIND
    assert set(tested) == {"test_mse", "n_test"} and tested["n_test"] == 32
    assert json.loads(layout.metrics("evaluate").read_text()) == tested
    assert (layout.plots("evaluate") / "residuals.json").is_file()
    assert not (layout.plots("evaluate") / "roc.json").exists()
    assert BrightnessEvaluation.calls == [
        "predict",
        "score",
        "calibrate",
        "write_plots",
        "explain",
        "log",
    ]


@pytest.mark.parametrize("registry", [data_tasks, training_tasks, evaluation_tasks])
def test_a_task_no_registry_knows_is_refused_by_name(registry) -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'detection'.*segmentation"):
        registry.of("detection")


@pytest.mark.parametrize("kind", ["binary", "multi-class", "multi-label", "ordinal"])
def test_every_label_kind_of_classification_resolves_to_classification(kind: str) -> None:
    assert isinstance(data_tasks.of(kind), data_tasks.Classification)
    assert isinstance(training_tasks.of(kind), training_tasks.Classification)
    assert isinstance(evaluation_tasks.of(kind), evaluation_tasks.Classification)


@pytest.mark.parametrize("stage", ["train_cnn", "evaluate", "train_rnn", "evaluate_rnn"])
def test_a_training_or_evaluation_stage_imports_no_task_specific_module(stage: str) -> None:
    tree = ast.parse((REPO / "src" / "meddx" / "stages" / f"{stage}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    assert not imported & TASK_SPECIFIC
