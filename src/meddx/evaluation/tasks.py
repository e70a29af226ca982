"""What a task decides in evaluation: predictions on the test split, the figures of merit,
the calibration fitted on the validation split, the plot files, which cases an explanation
grid shows, and the run's MLflow summary.

The evaluation stages (`evaluate`, `evaluate_rnn`) call these through `of(info["task"])`, the
task key that model.pt stores from the data facts, and never branch on it themselves. The
training half of a task is `meddx.training.tasks`, keyed alike; every task has an entry in
both `REGISTRY`s (classification's four label kinds, `segmentation`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from omegaconf import DictConfig
from torch import nn

from meddx.data.tasks import SEGMENTATION
from meddx.errors import ConfigError
from meddx.evaluation import (
    calibration,
    case_grids,
    plot_files,
    run_summary,
    scoring,
    seg_figures,
    seg_scoring,
)
from meddx.metrics import TASKS
from meddx.models import predict, segment
from meddx.tracking import StageRun


class EvaluationTask(Protocol):
    """The evaluation decisions of one task; `kind` is its key in the data facts."""

    kind: str
    headline: str  # the figure (`best_val_<it>`, `test_<it>`) a registered model is tagged with

    def predict(self, net: nn.Module, inputs: tuple[np.ndarray, ...]) -> np.ndarray: ...

    def score(
        self,
        names: list[str],
        y_true: np.ndarray,
        scores: np.ndarray,
        settings: DictConfig,
        seed: int,
        facts: Mapping[str, Any] | None = None,
    ) -> Any:
        """The test figures; `facts` are the dataset's (processed images' JSON), if any."""
        ...

    def calibrate(
        self,
        net: nn.Module,
        validation: tuple[tuple[np.ndarray, ...], np.ndarray],
        test: tuple[tuple[np.ndarray, ...], np.ndarray],
        settings: DictConfig,
    ) -> calibration.Calibration:
        """Fitted on `validation` (inputs, labels), only measured on `test`; `NONE` if the
        task has no calibration."""
        ...

    def write_plots(self, evaluation: Any, plots: Path) -> list[Path]: ...

    def explain(
        self,
        net: nn.Module,
        inputs: tuple[np.ndarray, ...],
        evaluation: Any,
        settings: DictConfig,
        seed: int,
        plots: Path,
    ) -> Path | None: ...

    def log(
        self, run: StageRun, result: dict[str, Any], metrics_path: Path, plots: Path, title: str
    ) -> None: ...


@dataclass(frozen=True)
class Classification:
    """Test figures with bootstrap CIs, ROC/PR/calibration/confusion plots, and a grid of
    correct and wrong cases per class (Grad-CAM over images and volumes, saliency over ECG
    beats with their RR features)."""

    kind: str
    headline: str = "auc"

    def predict(self, net: nn.Module, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        return predict.probabilities(net, inputs, self.kind)

    def score(
        self,
        names: list[str],
        y_true: np.ndarray,
        scores: np.ndarray,
        settings: DictConfig,
        seed: int,
        facts: Mapping[str, Any] | None = None,
    ) -> scoring.Evaluation:
        """Class names are all of the dataset facts that classification figures need."""
        return scoring.score(self.kind, names, y_true, scores, settings, seed)

    def calibrate(
        self,
        net: nn.Module,
        validation: tuple[tuple[np.ndarray, ...], np.ndarray],
        test: tuple[tuple[np.ndarray, ...], np.ndarray],
        settings: DictConfig,
    ) -> calibration.Calibration:
        """Temperature scaling of single-label models; none for multi-label ones."""
        if self.kind == "multi-label":
            return calibration.NONE
        (val_inputs, val_labels), (test_inputs, test_labels) = validation, test
        return calibration.calibrate(
            self.kind,
            predict.logits(net, val_inputs),
            val_labels,
            predict.logits(net, test_inputs),
            test_labels,
            settings.calibration_bins,
        )

    def write_plots(self, evaluation: scoring.Evaluation, plots: Path) -> list[Path]:
        return plot_files.write_plots(evaluation, plots)

    def explain(
        self,
        net: nn.Module,
        inputs: tuple[np.ndarray, ...],
        evaluation: scoring.Evaluation,
        settings: DictConfig,
        seed: int,
        plots: Path,
    ) -> Path | None:
        """`plots/gradcam.png` for an image or volume input, `plots/saliency.png` for beats."""
        per_outcome = settings.gradcam.per_class
        if len(inputs) == 1:
            return case_grids.explain(
                net, inputs[0], evaluation, self.kind, per_outcome, seed, plots / "gradcam.png"
            )
        beats, rr = inputs
        return case_grids.explain_beats(
            net, beats, rr, evaluation, per_outcome, seed, plots / "saliency.png"
        )

    def log(
        self, run: StageRun, result: dict[str, Any], metrics_path: Path, plots: Path, title: str
    ) -> None:
        run_summary.log(run, result, metrics_path, plots, title)


@dataclass(frozen=True)
class Segmentation:
    """Per-structure Dice, HD95 and mean surface distance in mm with bootstrap CIs over cases
    (`seg_scoring`); the predicted masks (PNG, NIfTI), the per-case figures and an overlay of
    the best, median and worst cases (`seg_figures`)."""

    kind: str
    headline: str = "dice"

    def predict(self, net: nn.Module, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
        return segment.probabilities(net, inputs[0])

    def score(
        self,
        names: list[str],
        y_true: np.ndarray,
        scores: np.ndarray,
        settings: DictConfig,
        seed: int,
        facts: Mapping[str, Any] | None = None,
    ) -> seg_scoring.SegEvaluation:
        return seg_scoring.score(names, y_true, scores, settings, seed, facts)

    def calibrate(
        self,
        net: nn.Module,
        validation: tuple[tuple[np.ndarray, ...], np.ndarray],
        test: tuple[tuple[np.ndarray, ...], np.ndarray],
        settings: DictConfig,
    ) -> calibration.Calibration:
        """None: per-pixel probabilities are not what a segmentation's user reads."""
        return calibration.NONE

    def write_plots(self, evaluation: seg_scoring.SegEvaluation, plots: Path) -> list[Path]:
        masks = seg_figures.write_masks(evaluation, plots / seg_figures.MASKS)
        return [seg_figures.per_case_csv(evaluation, plots / "per_case.csv"), *masks]

    def explain(
        self,
        net: nn.Module,
        inputs: tuple[np.ndarray, ...],
        evaluation: seg_scoring.SegEvaluation,
        settings: DictConfig,
        seed: int,
        plots: Path,
    ) -> Path | None:
        """`plots/overlays.png`: the contours say where a model fails better than a heatmap."""
        return seg_figures.overlays(evaluation, inputs[0], plots / "overlays.png")

    def log(
        self, run: StageRun, result: dict[str, Any], metrics_path: Path, plots: Path, title: str
    ) -> None:
        run_summary.log(run, result, metrics_path, plots, title, seg_scoring.FIGURES)


# What model.pt's `task` names -> the task; a new task adds its entry here (a test may add its own).
REGISTRY: dict[str, Callable[[str], EvaluationTask]] = {
    **dict.fromkeys(TASKS, Classification),
    SEGMENTATION: Segmentation,
}


def of(kind: str) -> EvaluationTask:
    """The evaluation half of the task a model was trained for."""
    if kind not in REGISTRY:
        raise ConfigError(f"unknown task {kind!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[kind](kind)
