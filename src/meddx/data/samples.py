"""One PNG grid of sample training images per class: the quickest check that labels and
pixels went together (a swapped class or an inverted DICOM is obvious at a glance). A volume
is shown as its three orthogonal central slices side by side (axial | coronal | sagittal).

Pillow rather than matplotlib: a grid is one enlarged mosaic under a title, and importing
matplotlib alone costs about half a second of every preprocessing run.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from meddx.data import tasks
from meddx.io import atomic_path


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "class"


def central_slices(volumes: np.ndarray, gap: int = 1) -> np.ndarray:
    """(N, D, H, W[, C]) -> (N, max(H, D), W + W + H + 2 gap[, C]): the slices through the
    centre across each axis, bottom-padded to one height, so a volume tiles like an image."""
    n, d, h, w = volumes.shape[:4]
    planes = [volumes[:, d // 2], volumes[:, :, h // 2], volumes[:, :, :, w // 2]]
    height = max(h, d)
    width = sum(p.shape[2] for p in planes) + gap * (len(planes) - 1)
    strip = np.zeros((n, height, width, *volumes.shape[4:]), dtype=volumes.dtype)
    left = 0
    for plane in planes:
        strip[:, : plane.shape[1], left : left + plane.shape[2]] = plane
        left += plane.shape[2] + gap
    return strip


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


def _grid_png(mosaic: np.ndarray, title: str, scale: int, path: Path) -> None:
    """The mosaic enlarged `scale` times (nearest neighbour: pixels stay pixels) under a title."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(
        mosaic.squeeze(-1) if mosaic.ndim == 3 and mosaic.shape[-1] == 1 else mosaic
    )
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    font = ImageFont.load_default(size=12)
    banner = 20
    canvas = Image.new(
        image.mode,
        (image.width, image.height + banner),
        color=255 if image.mode == "L" else (255, 255, 255),
    )
    canvas.paste(image, (0, banner))
    ImageDraw.Draw(canvas).text(
        (4, 3), title, fill=0 if image.mode == "L" else (0, 0, 0), font=font
    )
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")


def write_class_grids(
    images: np.ndarray,
    labels: np.ndarray,
    task: str,
    class_names: list[str],
    out_dir: Path,
    seed: int,
    rows: int = 2,
    cols: int = 8,
    scale: int = 3,
    spatial_dims: int = 2,
) -> list[Path]:
    """`<out_dir>/<k>_<class>.png` per class, replacing the grids of a previous dataset."""
    if spatial_dims == 3:
        images = central_slices(images)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.png"):
        stale.unlink()
    rules = tasks.of(task)  # which samples a class's grid may show
    rng = np.random.default_rng(seed)
    written = []
    for k, name in enumerate(class_names):
        members = rules.members(labels, k)
        chosen = np.sort(rng.choice(members, size=min(rows * cols, len(members)), replace=False))
        path = out_dir / f"{k}_{slug(name)}.png"
        mosaic = tile(images[chosen], rows, cols)
        _grid_png(mosaic, f"{name}: {len(members)} training images", scale, path)
        written.append(path)
    return written
