"""`predict` for images: class probabilities of a PNG/JPEG, DICOM image or 2-D NIfTI file.

The file is read by the folder source's reader (`meddx.data.folder.read_image`: DICOM is
de-identified as it is read) and brought to the model's input by the preprocessing the model
carries (`meddx.data.image_spec`), so any image model takes any of these files. Per input two
files are written, each atomically, named by a hash of the file's bytes and never by its name
(clinical file names often carry patient names): `image-<hash>.csv` (one row) and
`image-<hash>.json`; with `predict.image.gradcam=true` also `image-<hash>.gradcam.png`.

The probabilities are the network's own (softmax or sigmoid), exactly `evaluate`'s. The
confidence is the predicted class's probability after the calibration the model stores: the
registered model carries the temperature `evaluate` fitted on the validation split
(`meddx.evaluation.calibration`), so its confidence is softmax(logits / T) of the predicted
class, and the calibrated probabilities of every class are given beside the raw ones. A model
file without one (train_cnn's own model.pt) gives the uncalibrated probability, and each file
says which it is.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from torch import nn

from meddx.data import folder
from meddx.data.image_spec import ImageSpec
from meddx.errors import DataError
from meddx.evaluation import calibration
from meddx.evaluation.figures import heatmap_overlay, peak_slices
from meddx.io import write_json, write_text
from meddx.metrics import predictions
from meddx.models import export
from meddx.models.predict import probabilities

KIND = "image"
SUFFIXES = folder.PIL_SUFFIXES + folder.DICOM_SUFFIXES + (".nii", ".gz")
MULTI_LABEL_CONFIDENCE = "none: multi-label calls are the per-class probabilities above 0.5"


def fits(info: dict[str, Any]) -> bool:
    """Whether a model classifies images (it carries their preprocessing)."""
    return isinstance(info.get("image"), dict)


def calls(
    scores: np.ndarray, task: str, names: list[str], stored: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Per row of class probabilities: label, confidence, the probabilities by class name and,
    with a `stored` calibration (model info's `calibration`), the calibrated ones.

    The label is decided as `evaluate` decides it (`meddx.metrics.predictions`); a temperature
    never changes it. The confidence is the calibrated probability of that label if there is
    a calibration, else the raw one; none for multi-label calls.
    """
    decided = predictions(task, scores)
    scaled = None if stored is None else calibration.scaled(scores, stored["temperature"])
    rows = []
    for i, (row, call) in enumerate(zip(scores, decided, strict=True)):
        by_name = {name: float(p) for name, p in zip(names, row, strict=True)}
        found: dict[str, Any] = {"probabilities": by_name}
        if task == "multi-label":
            label = ";".join(name for name, on in zip(names, call, strict=True) if on)
            confidence = None
        elif scaled is None:
            label, confidence = names[int(call)], float(row[int(call)])
        else:
            label, confidence = names[int(call)], float(scaled[i, int(call)])
            found["calibrated_probabilities"] = dict(zip(names, map(float, scaled[i]), strict=True))
        rows.append({"label": label, "confidence": confidence, **found})
    return rows


def confidence_kind(task: str, stored: dict[str, Any] | None = None) -> str:
    """What the confidence of a model's calls is, naming its temperature if it has one."""
    return MULTI_LABEL_CONFIDENCE if task == "multi-label" else calibration.confidence_kind(stored)


def image_id(path: Path) -> str:
    """`image-<12 hex>` from the file's bytes: stable, and no part of the file's name."""
    return "image-" + hashlib.blake2b(path.read_bytes(), digest_size=6).hexdigest()


@functools.cache
def _to_stored(
    size: int, channels: int, window: tuple[float, float] | None
) -> Callable[[np.ndarray, float | None], np.ndarray]:
    """The folder source's transform, built once per preprocessing (MONAI costs seconds)."""
    return folder.transform_for(size, channels, list(window) if window is not None else None)


def model_array(spec: ImageSpec, pixels: np.ndarray, full_scale: float | None) -> np.ndarray:
    """Pixels `(H, W)` or `(H, W, C)` -> `(C, size, size)` float32, as evaluate's arrays."""
    stored = _to_stored(spec.size, spec.channels, spec.window)(pixels, full_scale)
    return spec.from_stored(stored)


def model_input(
    path: Path, spec: ImageSpec, dataset_kwargs: dict[str, Any], where: str
) -> np.ndarray:
    """The file as the `(1, C, H, W)` array the network takes, or a DataError naming `where`."""
    pixels, full_scale = folder.read_image(path, where, middle_slice=False)
    try:
        x = model_array(spec, pixels, full_scale)[None]
    except DataError as exc:
        raise DataError(f"{where}: {exc} (the model takes {spec.channels} channel(s))") from None
    export.check_inputs(dataset_kwargs, x, where)
    return x


def _csv(name: str, call: dict[str, Any], names: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["image", "label", "confidence", *[f"p_{n}" for n in names]])
    confidence = call["confidence"]
    writer.writerow(
        [
            name,
            call["label"],
            "" if confidence is None else f"{confidence:.6f}",
            *[f"{call['probabilities'][n]:.6f}" for n in names],
        ]
    )
    return out.getvalue()


def predict(
    path: Path,
    net: nn.Module,
    info: dict[str, Any],
    model: str,
    options: DictConfig,
    out_dir: Path,
) -> dict[str, Any]:
    """Classify the image at `path`; write its files; the summary."""
    spec = ImageSpec.of_model(info, model)
    spec.check_2d(model)
    spec = spec.with_window(options.window)
    name = image_id(path)
    x = model_input(path, spec, info["dataset_kwargs"], f"input {name}")
    return answer(name, x, folder.kind_of(path), net, info, model, options.gradcam, out_dir)


def answer(
    name: str,
    x: np.ndarray,
    kind: str,
    net: nn.Module,
    info: dict[str, Any],
    model: str,
    gradcam: bool,
    out_dir: Path,
) -> dict[str, Any]:
    """Classify the model input `x` (`(1, C, *spatial)`) of input `name`, read from a file of
    `kind`; write its files; the summary. Images and volumes (meddx.evaluation.volume_predict)
    alike."""
    names, task = list(info["class_names"]), str(info["task"])
    scores = probabilities(net, (x,), task)
    stored = info.get("calibration")
    (call,) = calls(scores, task, names, stored)
    files = {"csv": out_dir / f"{name}.csv", "json": out_dir / f"{name}.json"}
    if gradcam:
        from meddx.evaluation.explain import gradcam as grad_cam

        target = int(np.argmax(scores[0]))
        image, heat = x[0], grad_cam(net, x, np.array([target]))[0]
        if heat.ndim == 3:  # a volume: the three orthogonal slices through the peak, as evaluate
            image, heat = peak_slices(image, heat)
        files["gradcam"] = out_dir / f"{name}.gradcam.png"
        heatmap_overlay(files["gradcam"], image, heat, f"{name}: Grad-CAM for {names[target]}")
    summary = {
        "image": name,
        "model": model,
        "dataset": str(info["image"]["name"]),
        "kind": kind,
        **call,
        "confidence_kind": confidence_kind(task, stored),
        "files": {what: str(file) for what, file in files.items()},
    }
    write_text(files["csv"], _csv(name, call, names))
    write_json(files["json"], summary)
    return summary
