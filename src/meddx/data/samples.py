"""One PNG grid of sample training images per class: the quickest check that labels and
pixels went together (a swapped class or an inverted DICOM is obvious at a glance).

Matplotlib's object API with the Agg canvas: no pyplot global state, no display needed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from meddx.io import atomic_path


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "class"


def class_members(labels: np.ndarray, task: str, k: int) -> np.ndarray:
    if task == "multi-label":
        return np.flatnonzero(labels.reshape(len(labels), -1)[:, k] == 1)
    return np.flatnonzero(labels.reshape(-1) == k)


def tile(images: np.ndarray, rows: int, cols: int, gap: int = 1) -> np.ndarray:
    """Up to rows x cols images in one array (one imshow is far cheaper than many axes)."""
    h, w = images.shape[1:3]
    mosaic = np.zeros(
        (rows * (h + gap) - gap, cols * (w + gap) - gap, *images.shape[3:]), dtype=np.uint8
    )
    for i, image in enumerate(images[: rows * cols]):
        r, c = divmod(i, cols)
        mosaic[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = image
    return mosaic


def write_class_grids(
    images: np.ndarray,
    labels: np.ndarray,
    task: str,
    class_names: list[str],
    out_dir: Path,
    seed: int,
    rows: int = 2,
    cols: int = 8,
) -> list[Path]:
    """`<out_dir>/<k>_<class>.png` per class, replacing the grids of a previous dataset."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.png"):
        stale.unlink()
    rng = np.random.default_rng(seed)
    written = []
    for k, name in enumerate(class_names):
        members = class_members(labels, task, k)
        chosen = np.sort(rng.choice(members, size=min(rows * cols, len(members)), replace=False))
        fig = Figure(figsize=(cols * 0.9, rows * 0.9 + 0.4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.0, 0.0, 1.0, rows * 0.9 / (rows * 0.9 + 0.4)))
        ax.set_axis_off()
        ax.set_title(f"{name}: {len(members)} training images", fontsize=9)
        mosaic = tile(images[chosen], rows, cols)
        ax.imshow(
            mosaic,
            cmap="gray" if mosaic.ndim == 2 else None,
            vmin=0,
            vmax=255,
            interpolation="nearest",
        )
        path = out_dir / f"{k}_{slug(name)}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        written.append(path)
    return written
