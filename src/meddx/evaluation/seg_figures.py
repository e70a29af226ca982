"""What a segmentation evaluation writes besides its metrics: the predicted masks as files a
viewer opens (PNG for images, NIfTI for volumes), the per-case figures, and one PNG of the
best, median and worst test cases with the ground-truth and predicted contours.

A volume's mask is a NIfTI whose affine carries the voxel spacing the figures were measured
with (diagonal, in the arrays' axis order, origin 0: the npz layout keeps no orientation), so
a viewer shows it at the size the millimetres refer to. A PNG mask stores class indices as
grey values 0..C-1 (not scaled: the file is data, not a picture).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from meddx.evaluation.figures import _display, _save
from meddx.evaluation.seg_scoring import SegEvaluation, case_dice
from meddx.io import atomic_open, atomic_path, write_text

MASKS = "masks"
COLOURS = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33")


def write_masks(evaluation: SegEvaluation, out_dir: Path) -> list[Path]:
    """`<out_dir>/<case>.png` (2-D) or `<case>.nii.gz` (3-D) per test case, replacing old ones."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob("*.png"), *out_dir.glob("*.nii.gz")]:
        stale.unlink()
    volumes = evaluation.y_pred.ndim == 4
    digits = len(str(len(evaluation.y_pred) - 1))
    written = []
    for index, mask in enumerate(evaluation.y_pred):
        stem = out_dir / f"{index:0{digits}d}"
        path = stem.with_suffix(".nii.gz") if volumes else stem.with_suffix(".png")
        if volumes:
            write_nifti_mask(mask, np.diag([*evaluation.spacing[index], 1.0]), path)
        else:
            write_png_mask(mask, path)
        written.append(path)
    return written


def write_png_mask(mask: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(mask.astype(np.uint8), mode="L").save(tmp, format="PNG")


def write_nifti_mask(mask: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """A mask (voxel order as `affine` places it) as .nii.gz; gzip with mtime 0, so the same
    mask gives the same bytes."""
    import nibabel as nib

    image = nib.Nifti1Image(mask.astype(np.uint8), np.asarray(affine, dtype=np.float64))
    with atomic_open(path, "wb") as handle:
        handle.write(gzip.compress(image.to_bytes(), mtime=0))


def per_case_csv(evaluation: SegEvaluation, path: Path) -> Path:
    """One row per test case: each structure's Dice, HD95 and MSD (empty where undefined)."""
    structures = evaluation.names[1:]
    header = ["case"] + [f"{s}.{f}" for s in structures for f in evaluation.per_case]
    rows = [",".join(header)]
    for index in range(len(evaluation.y_true)):
        cells = [str(index)]
        for k in range(len(structures)):
            for values in evaluation.per_case.values():
                value = float(values[index, k])
                cells.append(f"{value:.6g}" if np.isfinite(value) else "")
        rows.append(",".join(cells))
    write_text(path, "\n".join(rows) + "\n")
    return path


def _shown_slice(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, ...]:
    """A 2-D case as is; a volume's axial slice with the most ground truth (else the centre)."""
    if truth.ndim == 2:
        return image, truth, pred
    area = (truth > 0).reshape(len(truth), -1).sum(axis=1)
    z = int(area.argmax()) if area.any() else len(truth) // 2
    return image[:, z], truth[z], pred[z]


def overlays(evaluation: SegEvaluation, images: np.ndarray, path: Path) -> Path | None:
    """Best, median and worst test case by mean Dice: image, ground truth (solid) and
    prediction (dashed) contours per structure. None when no case holds a structure."""
    import matplotlib.pyplot as plt

    dice = case_dice(evaluation.per_case)
    ranked = [int(i) for i in np.argsort(dice) if np.isfinite(dice[i])][::-1]
    if not ranked:
        return None
    picks = {
        "best": ranked[0],
        "median": ranked[len(ranked) // 2],
        "worst": ranked[-1],
    }
    fig, axes = plt.subplots(1, len(picks), figsize=(3.2 * len(picks), 3.6), squeeze=False)
    for ax, (label, index) in zip(axes[0], picks.items(), strict=True):
        image, truth, pred = _shown_slice(
            images[index], evaluation.y_true[index], evaluation.y_pred[index]
        )
        ax.imshow(_display(image), cmap="gray", interpolation="nearest")
        for k, name in enumerate(evaluation.names[1:], start=1):
            colour = COLOURS[(k - 1) % len(COLOURS)]
            for mask, style in ((truth, "solid"), (pred, "dashed")):
                if (mask == k).any():
                    ax.contour(mask == k, levels=[0.5], colors=colour, linestyles=style)
            ax.plot([], [], color=colour, label=name)
        ax.set_title(f"{label}: case {index}, Dice {dice[index]:.3f}", fontsize=8)
        ax.axis("off")
    axes[0][0].legend(fontsize=6, loc="lower left")
    fig.suptitle(f"{evaluation.dataset} test: ground truth solid, prediction dashed", fontsize=9)
    return _save(fig, path)
