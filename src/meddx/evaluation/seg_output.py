"""What `predict` writes for a segmentation model: the mask on the input's own grid and the
measurements in mm.

The network segments the model's input (the file brought to the training size, as `evaluate`'s
arrays are) through `meddx.models.segment.probabilities`, evaluate's own sliding-window
inference with the training size as its window. The mask is then taken back to the input's
grid by the inverse of the resizing (nearest neighbour, so it stays a label map): an image's
centred square crop is padded back with background, a volume is resized back to its voxels
(a `pad_crop` standardisation's inverse is not built: refused). So the mask file overlays
the input: a PNG of the image's size (class indices as grey values, as evaluate writes them),
or a NIfTI in the input's voxel order with the input's affine (the NIfTI file's, or the
DICOM series' geometry). The measurements are per structure the area (mm^2, 2-D) or volume
(mm^3, 3-D) at the input's spacing, and for a model of HC18 the head circumference by
evaluation's ellipse fit (meddx.evaluation.measurements). Where the file states no spacing,
1.0 mm per pixel is assumed and each output says so.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from meddx.data.standardise import Standardisation
from meddx.data.volume import Volume
from meddx.errors import DataError
from meddx.evaluation import seg_figures
from meddx.evaluation.measurements import head_circumference, structure_volumes
from meddx.io import write_json, write_text
from meddx.models import segment

HC_DATASETS = ("hc18",)  # models of these datasets also measure the head circumference
ASSUMED = "none stated by the file: 1.0 mm per pixel assumed"


def model_mask(net: nn.Module, x: np.ndarray, size: int) -> np.ndarray:
    """The class-index mask `(*spatial)` uint8 of the model input `x` `(1, C, *spatial)`."""
    scores = segment.probabilities(net, x, roi_size=(size,) * (x.ndim - 2))
    return scores[0].argmax(axis=0).astype(np.uint8)


def _nearest(mask: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    from monai.transforms import Resize

    if tuple(mask.shape) == tuple(shape):
        return mask
    resized = Resize(tuple(shape), mode="nearest")(mask[None].astype(np.float32))
    return np.asarray(resized)[0].astype(np.uint8)


def on_image_grid(mask: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A model-grid mask on the grid of an image of `shape` (H, W): the inverse of the folder
    source's centred square crop and resize (meddx.data.folder.transform_for)."""
    from monai.transforms import CenterSpatialCrop

    side = min(shape)
    out = np.zeros(tuple(shape), dtype=np.uint8)
    out[CenterSpatialCrop((side, side)).compute_slices(tuple(shape))] = _nearest(mask, (side, side))
    return out


def on_volume_grid(
    mask: np.ndarray, volume: Volume, std: Standardisation, where: str
) -> np.ndarray:
    """A model-grid mask on `volume`'s voxels (D, H, W): the inverse of the resizing."""
    if std.resize == "pad_crop":
        raise DataError(
            f"{where}: the model's volumes were centre-cropped or padded (standardise.resize="
            "pad_crop); predict writes masks back only for resized volumes: retrain with "
            "resize: resize"
        )
    return _nearest(mask, volume.voxels.shape)


def measurements(
    mask: np.ndarray, spacing: Sequence[float], names: list[str], dataset: str
) -> list[dict[str, Any]]:
    """Rows of (measurement, value, unit): each structure's area or volume, and the HC."""
    unit = "mm2" if mask.ndim == 2 else "mm3"
    quantity = "area" if mask.ndim == 2 else "volume"
    sizes = structure_volumes(mask, spacing, range(1, len(names)))
    rows = [
        {"measurement": f"{name}.{quantity}", "value": sizes[k], "unit": unit}
        for k, name in enumerate(names[1:], start=1)
    ]
    if dataset in HC_DATASETS and mask.ndim == 2:
        rows.append(
            {
                "measurement": "head_circumference",
                "value": head_circumference(mask, spacing),
                "unit": "mm",
            }
        )
    return rows


def _csv(name: str, rows: list[dict[str, Any]], spacing: Sequence[float], source: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["image", "measurement", "value", "unit", "spacing_mm", "spacing_source"])
    for row in rows:
        value = row["value"]
        writer.writerow(
            [
                name,
                row["measurement"],
                f"{value:.6g}" if np.isfinite(value) else "",
                row["unit"],
                " x ".join(f"{s:.6g}" for s in spacing),
                source,
            ]
        )
    return out.getvalue()


def write(
    name: str,
    mask: np.ndarray,
    spacing: Sequence[float],
    spacing_source: str,
    info: dict[str, Any],
    model: str,
    kind: str,
    out_dir: Path,
    affine: np.ndarray | None = None,
) -> dict[str, Any]:
    """Write the mask (PNG for an image; NIfTI for a volume, `mask` then already in the
    source's voxel order, placed by `affine`), `<name>.json` and `<name>.csv`; the summary."""
    names, dataset = list(info["class_names"]), str(info["image"]["name"])
    if affine is None:
        files = {"mask": out_dir / f"{name}.mask.png"}
        seg_figures.write_png_mask(mask, files["mask"])
    else:
        files = {"mask": out_dir / f"{name}.mask.nii.gz"}
        seg_figures.write_nifti_mask(mask, affine, files["mask"])
    files |= {"csv": out_dir / f"{name}.csv", "json": out_dir / f"{name}.json"}
    rows = measurements(mask, spacing, names, dataset)
    summary = {
        "image": name,
        "model": model,
        "dataset": dataset,
        "kind": kind,
        "task": "segmentation",
        "shape": list(mask.shape),
        "labels": {str(k): n for k, n in enumerate(names)},
        "voxels": {n: int((mask == k).sum()) for k, n in enumerate(names)},
        "measurements": rows,
        "spacing_mm": [float(s) for s in spacing],
        "spacing_source": spacing_source,
        "files": {what: str(file) for what, file in files.items()},
    }
    write_text(files["csv"], _csv(name, rows, spacing, spacing_source))
    write_json(files["json"], summary)
    return summary
