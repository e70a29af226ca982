"""`predict` for volumes: class probabilities of a NIfTI volume or a DICOM series folder.

A volume model (trained on `spatial_dims: 3` data: the offline volume pipeline, AdrenalMNIST3D,
the user's own volumes) carries its standardisation (`meddx.data.image_spec`): the file is
read by the folder source's reader (`meddx.data.volume_readers`: a NIfTI file, or a folder
of DICOM slices as ONE series, ordered by position, in HU by the rescale tags, de-identified
slice by slice) and standardised by the very transform that made the training volumes
(`meddx.data.standardise.transform`), then brought to the processed scale as a 2-D image
is. The answer's files are an image's (meddx.evaluation.image_predict.answer), named
`volume-<hash>`: of the file's bytes, or of a series' slice files' bytes in sorted order,
so never of a name (series folders and slice files are often named after the patient).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from torch import nn

from meddx.data import folder
from meddx.data.image_spec import ImageSpec
from meddx.data.standardise import Standardisation, transform
from meddx.data.volume import Volume
from meddx.data.volume_readers import NIFTI_SUFFIXES, read_volume
from meddx.evaluation import image_predict
from meddx.models import export

KIND = "volume"
SUFFIXES = NIFTI_SUFFIXES
SERIES = folder.DICOM_SUFFIXES  # a folder holding these files is one series: one volume


def fits(info: dict[str, Any]) -> bool:
    """Whether a model classifies volumes (it carries their preprocessing)."""
    image = info.get("image")
    return isinstance(image, dict) and int(image.get("spatial_dims", 2)) == 3


def volume_id(path: Path) -> str:
    """`volume-<12 hex>` of the file's bytes, or of a series folder's files' bytes sorted (so
    neither the names nor their order count)."""
    digest = hashlib.blake2b(digest_size=6)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for content in sorted(p.read_bytes() for p in files):
        digest.update(len(content).to_bytes(8, "little"))
        digest.update(content)
    return "volume-" + digest.hexdigest()


@functools.cache
def _standardise(std: Standardisation) -> Callable[[Volume, str], np.ndarray]:
    """The standardisation's transform, built once per standardisation (MONAI costs seconds)."""
    return transform(std)


def model_input(
    path: Path, spec: ImageSpec, std: Standardisation, dataset_kwargs: dict[str, Any], where: str
) -> tuple[np.ndarray, Volume]:
    """The volume as the `(1, 1, D, H, W)` array the network takes, and the volume as read."""
    volume = read_volume(path, where)
    x = spec.from_stored(_standardise(std)(volume, where))[None]
    export.check_inputs(dataset_kwargs, x, where)
    return x, volume


def standardisation(
    info: dict[str, Any], model: str, options: DictConfig
) -> tuple[ImageSpec, Standardisation]:
    """The model's spec and its volume standardisation, with `options.window` if given."""
    spec = ImageSpec.of_model(info, model)
    return spec, spec.volume_standardisation(model).with_window(options.window)


def predict(
    path: Path,
    net: nn.Module,
    info: dict[str, Any],
    model: str,
    options: DictConfig,
    out_dir: Path,
) -> dict[str, Any]:
    """Classify the volume at `path` (a NIfTI file or a series folder); write its files."""
    spec, std = standardisation(info, model, options)
    name = volume_id(path)
    x, _ = model_input(path, spec, std, info["dataset_kwargs"], f"input {name}")
    return image_predict.answer(
        name, x, folder.kind_of(path), net, info, model, options.gradcam, out_dir
    )
