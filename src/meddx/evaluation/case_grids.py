"""Which test cases to explain and how they sit in a grid: per class, a seeded sample of
correct then wrong predictions, one row per class.

The layout is shared by every explanation (Grad-CAM over images or volumes, saliency over ECG
beats); only the per-cell content and the drawing differ.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from meddx.evaluation import figures
from meddx.evaluation.scoring import Evaluation


def _picks(
    evaluation: Evaluation, task: str, per_outcome: int, seed: int
) -> tuple[list[list[tuple[int, bool]]], list[int], list[int]]:
    """Per class, a seeded sample of correct then wrong test cases, and the class to explain.

    Single-label cases are explained for the predicted class (why the model said what it
    said); multi-label rows for the row's label on cases that carry it.
    """
    from meddx.evaluation import explain as cam

    y_true, y_pred = evaluation.y_true, evaluation.y_pred
    rows, picks, targets = [], [], []
    for k in range(len(evaluation.names)):
        if task == "multi-label":
            member, correct = y_true[:, k] == 1, y_pred[:, k] == 1
            target = np.full(len(y_true), k)
        else:
            flat = y_true.reshape(-1)
            member, correct, target = flat == k, y_pred == flat, y_pred
        chosen = cam.sample(member, correct, per_outcome, seed + k)
        rows.append([(i, bool(correct[i])) for i in chosen])
        picks += chosen
        targets += [int(target[i]) for i in chosen]
    return rows, picks, targets


def _cells(
    rows: list[list[tuple[int, bool]]],
    per_outcome: int,
    evaluation: Evaluation,
    task: str,
    content: Callable[[int], dict[str, Any]],
) -> list[list[dict[str, Any] | None]]:
    """Grid rows: correct cases, padding, then wrong ones, each cell `content(i)` + its label."""
    names, y_pred = evaluation.names, evaluation.y_pred
    grid = []
    for k, row in enumerate(rows):
        right = [i for i, ok in row if ok]
        wrong = [i for i, ok in row if not ok]
        padded = right + [None] * (per_outcome - len(right)) + wrong
        grid.append(
            [
                None
                if i is None
                else content(i)
                | {
                    "correct": i in right,
                    "label": (
                        f"pred {names[int(y_pred[i])]}"
                        if task != "multi-label"
                        else f"{names[k]}: {'yes' if y_pred[i, k] else 'no'}"
                    ),
                }
                for i in padded
            ]
        )
    return grid


def explain(
    net: nn.Module,
    images: np.ndarray,
    evaluation: Evaluation,
    task: str,
    per_outcome: int,
    seed: int,
    path: Path,
) -> Path | None:
    """Grad-CAM grid: per class, correct then wrong test predictions; None for non-CNNs.

    Images (N, C, H, W) or volumes (N, C, D, H, W); a volume's cell shows the three
    orthogonal slices through the peak of its map (`figures.heatmap_grid`).
    """
    from meddx.evaluation import explain as cam

    layer = cam.target_layer(net)
    if layer is None or images.ndim not in (4, 5):
        return None
    rows, picks, targets = _picks(evaluation, task, per_outcome, seed)
    if not picks:
        return None
    heat = dict(zip(picks, cam.gradcam(net, images[picks], np.array(targets), layer), strict=True))
    cells = _cells(
        rows, per_outcome, evaluation, task, lambda i: {"image": images[i], "heat": heat[i]}
    )
    return figures.heatmap_grid(
        path,
        cells,
        evaluation.names,
        f"Grad-CAM ({layer}): {per_outcome} correct | wrong per class",
    )


def explain_beats(
    net: nn.Module,
    beats: np.ndarray,
    rr: np.ndarray,
    evaluation: Evaluation,
    per_outcome: int,
    seed: int,
    path: Path,
) -> Path | None:
    """Input-gradient saliency over a few test beats per class, correct then wrong."""
    from meddx.evaluation import explain as cam

    rows, picks, targets = _picks(evaluation, "multi-class", per_outcome, seed)
    if not picks:
        return None
    heat = cam.beat_saliency(net, beats[picks], rr[picks], np.array(targets))
    saliency = dict(zip(picks, heat, strict=True))
    cells = _cells(
        rows,
        per_outcome,
        evaluation,
        "multi-class",
        lambda i: {"beat": beats[i][0], "heat": saliency[i].max(axis=0)},
    )
    return figures.saliency_grid(
        path,
        cells,
        evaluation.names,
        f"Saliency |d logit / d beat|: {per_outcome} correct | wrong per class",
    )
