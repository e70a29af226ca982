"""PNG figures for people (MLflow artifacts, the report); DVC renders its own from the data files.

matplotlib runs headless (Agg) so stages work on servers and in CI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from meddx.io import atomic_path

DPI = 110


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def curves(
    path: Path,
    series: Mapping[str, Sequence[Mapping[str, float]]],
    x: str,
    y: str,
    title: str,
    diagonal: bool,
) -> Path:
    """One line per class (label -> points), e.g. ROC (fpr, tpr) or precision-recall."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for label, points in series.items():
        ax.plot([p[x] for p in points], [p[y] for p in points], label=label, linewidth=1.4)
    if diagonal:
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel=x, ylabel=y, title=title)
    ax.legend(fontsize=7, loc="lower right" if diagonal else "lower left")
    return _save(fig, path)


def confusion(path: Path, matrix: np.ndarray, names: list[str]) -> Path:
    """Counts with row-normalised shading: a rare class's errors show as well as a common one's."""
    rows = matrix.sum(axis=1, keepdims=True)
    shade = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    size = 1.2 + 0.7 * len(names)
    fig, ax = plt.subplots(figsize=(size + 0.8, size))
    image = ax.imshow(shade, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            str(count),
            ha="center",
            va="center",
            color="white" if shade[i, j] > 0.5 else "black",
            fontsize=8,
        )
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="actual", title="Confusion matrix (test)")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the actual class")
    return _save(fig, path)


def reliability(path: Path, bins: Sequence[Mapping[str, float]], ece: float) -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal of calibration."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    lows = [b["bin_low"] for b in bins]
    widths = [b["bin_high"] - b["bin_low"] for b in bins]
    accuracy = [b["accuracy"] for b in bins]
    ax.bar(
        lows,
        accuracy,
        width=widths,
        align="edge",
        edgecolor="black",
        linewidth=0.5,
        label="accuracy",
    )
    ax.bar(
        lows,
        [b["confidence"] - a for b, a in zip(bins, accuracy, strict=True)],
        bottom=accuracy,
        width=widths,
        align="edge",
        color="tab:red",
        alpha=0.3,
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence",
        ylabel="accuracy",
        title=f"Reliability (ECE {ece:.3f})",
    )
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def _display(image: np.ndarray) -> np.ndarray:
    """Channels-first image scaled to [0, 1] for imshow: (H, W) grey or (H, W, 3) colour."""
    shown = image[0] if image.shape[0] == 1 else np.moveaxis(image[:3], 0, -1)
    low, high = float(shown.min()), float(shown.max())
    return (shown - low) / (high - low) if high > low else np.zeros_like(shown)


def _case_grid(
    path: Path,
    cells: Sequence[Sequence[Mapping[str, Any] | None]],
    row_labels: list[str],
    title: str,
    draw: Callable[[Any, Mapping[str, Any]], None],
    cell_size: tuple[float, float],
) -> Path:
    """One row per class of explained cases, framed green (correct) or red (wrong).

    A cell is a mapping with `label`, `correct` and what `draw(ax, cell)` needs, or None.
    """
    n_rows, n_cols = len(cells), max(len(row) for row in cells)
    width, height = cell_size
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False
    )
    for r, row in enumerate(cells):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            cell = row[c] if c < len(row) else None
            if cell is None:
                ax.set_frame_on(False)  # not axis("off"): the row label lives on column 0
                continue
            draw(ax, cell)
            colour = "green" if cell["correct"] else "red"
            ax.set_title(cell["label"], fontsize=6, color=colour)
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(2)
        axes[r][0].set_ylabel(row_labels[r], fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def peak_slices(image: np.ndarray, heat: np.ndarray, gap: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A volume (C, D, H, W) and its map (D, H, W) as one strip of the three orthogonal slices
    through the map's peak (axial | coronal | sagittal), so it draws like an image; the gaps
    and the bottom padding hold NaN in the map (not drawn) and 0 in the image."""
    d, h, w = np.unravel_index(int(np.argmax(heat)), heat.shape)
    image_planes = [image[:, d], image[:, :, h], image[:, :, :, w]]
    heat_planes = [heat[d], heat[:, h], heat[:, :, w]]
    height = max(p.shape[0] for p in heat_planes)
    width = sum(p.shape[1] for p in heat_planes) + gap * 2
    strip = np.zeros((image.shape[0], height, width), dtype=np.float32)
    heat_strip = np.full((height, width), np.nan, dtype=np.float32)
    left = 0
    for picture, plane in zip(image_planes, heat_planes, strict=True):
        rows, cols = plane.shape
        strip[:, :rows, left : left + cols] = picture
        heat_strip[:rows, left : left + cols] = plane
        left += cols + gap
    return strip, heat_strip


def _draw_heatmap(ax: Any, cell: Mapping[str, Any]) -> None:
    image, heat = cell["image"], cell["heat"]
    if heat.ndim == 3:
        image, heat = peak_slices(image, heat)
    ax.imshow(_display(image), cmap="gray")
    ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)


def _draw_saliency(ax: Any, cell: Mapping[str, Any]) -> None:
    t = np.arange(len(cell["beat"]))
    ax.plot(t, cell["beat"], color="black", linewidth=0.6)
    ax.scatter(t, cell["beat"], c=cell["heat"], cmap="jet", vmin=0, vmax=1, s=3)


def heatmap_grid(
    path: Path,
    cells: Sequence[Sequence[Mapping[str, Any] | None]],
    row_labels: list[str],
    title: str,
) -> Path:
    """Images with their heat map overlaid; a cell is {image, heat, label, correct} or None.

    A volume's cell (image (C, D, H, W), heat (D, H, W)) shows its peak's three slices.
    """
    first = next((cell for row in cells for cell in row if cell is not None), None)
    volumes = first is not None and first["heat"].ndim == 3
    return _case_grid(
        path, cells, row_labels, title, _draw_heatmap, (3.6 if volumes else 1.6, 1.75)
    )


def saliency_grid(
    path: Path,
    cells: Sequence[Sequence[Mapping[str, Any] | None]],
    row_labels: list[str],
    title: str,
) -> Path:
    """Beat traces coloured by saliency; a cell is {beat, heat, label, correct} or None."""
    return _case_grid(path, cells, row_labels, title, _draw_saliency, (2.0, 1.4))


def ecg_strip(
    path: Path,
    signal: np.ndarray,
    fs: float,
    peaks: np.ndarray,
    labels: Sequence[str],
    class_names: Sequence[str],
    title: str,
) -> Path:
    """One lead with each R peak marked in its class's colour (grey: not classified)."""
    colours = dict(zip(class_names, plt.get_cmap("tab10").colors, strict=False))
    seconds = np.arange(len(signal)) / fs
    fig, ax = plt.subplots(figsize=(max(6.0, min(24.0, seconds[-1] * 1.2)), 2.6))
    ax.plot(seconds, signal, color="black", linewidth=0.7)
    for name in [*class_names, ""]:
        at = np.asarray([p for p, label in zip(peaks, labels, strict=True) if label == name])
        if at.size:
            ax.scatter(
                at / fs,
                signal[at],
                s=28,
                color=colours.get(name, "0.6"),
                label=name or "not classified",
                zorder=3,
            )
    ax.set(xlabel="time (s)", ylabel="mV (filtered)", title=title, xlim=(0, seconds[-1]))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    return _save(fig, path)


def heatmap_overlay(path: Path, image: np.ndarray, heat: np.ndarray, title: str) -> Path:
    """One image (C, H, W) beside it with its heat map (H, W) overlaid: `predict`'s Grad-CAM."""
    fig, (plain, overlaid) = plt.subplots(1, 2, figsize=(5.0, 2.8))
    plain.imshow(_display(image), cmap="gray")
    _draw_heatmap(overlaid, {"image": image, "heat": heat})
    for ax in (plain, overlaid):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=8)
    return _save(fig, path)
