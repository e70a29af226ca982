"""`predict` for 2-D segmentation models: the mask and the measurements of an image file.

The image is read and brought to the model's input as a classifier's is
(meddx.evaluation.image_predict); the mask goes back to the image's own pixel grid and is
measured at the file's pixel size: DICOM PixelSpacing or the NIfTI header
(meddx.data.pixel_size), else `predict.image.pixel_size_mm` (HC18's PNGs state theirs only in
a CSV), else 1.0 mm assumed, said in the outputs (meddx.evaluation.seg_output). Files are
named by the image's content hash, as a classifier's are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch import nn

from meddx.data import folder, tasks
from meddx.data.image_spec import ImageSpec
from meddx.data.pixel_size import pixel_size_mm
from meddx.evaluation import image_predict, seg_output
from meddx.models import export

KIND = "image"
SUFFIXES = image_predict.SUFFIXES


def fits(info: dict[str, Any]) -> bool:
    """Whether a model segments images."""
    image = info.get("image")
    return (
        isinstance(image, dict)
        and int(image.get("spatial_dims", 2)) == 2
        and info.get("task") == tasks.SEGMENTATION
    )


def spacing(path: Path, options: DictConfig, where: str) -> tuple[tuple[float, float], str]:
    """(row, column) mm per pixel and where it came from: the file, the option, or assumed."""
    stated = pixel_size_mm(path, where)
    if stated is not None:
        return stated, "the file (DICOM PixelSpacing or NIfTI header)"
    if options.pixel_size_mm is not None:
        size = float(options.pixel_size_mm)
        return (size, size), "predict.image.pixel_size_mm"
    return (1.0, 1.0), seg_output.ASSUMED


def predict(
    path: Path,
    net: nn.Module,
    info: dict[str, Any],
    model: str,
    options: DictConfig,
    out_dir: Path,
) -> dict[str, Any]:
    """Segment the image at `path`; write its mask and measurements; the summary."""
    spec = ImageSpec.of_model(info, model).with_window(options.window)
    name = image_predict.image_id(path)
    where = f"input {name}"
    pixels, full_scale = folder.read_image(path, where, middle_slice=False)
    x = image_predict.model_array(spec, pixels, full_scale)[None]
    export.check_inputs(info["dataset_kwargs"], x, where)
    mask = seg_output.on_image_grid(seg_output.model_mask(net, x, spec.size), pixels.shape[:2])
    mm, source = spacing(path, options, where)
    return seg_output.write(name, mask, mm, source, info, model, folder.kind_of(path), out_dir)
