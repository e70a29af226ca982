"""The image preprocessing a classifier was trained with, carried in its model.pt, and applied
to a new image file or array.

`train_cnn` copies the dataset facts that `preprocess_images` wrote (size, channels, spatial
axes, the intensity `normalization`) and the folder source's fixed `window` into the exported
model (`info["image"]`), so a model says itself how a new image must be read. A new image takes
the folder source's path to a stored uint8 sample (`meddx.data.folder.transform_for`: intensity
to [0, 1], centred square crop, resize, channels; applied by meddx.evaluation.image_predict,
so that training does not depend on the readers) and then `preprocess_images`' path to the
processed scale (`ImageSpec.from_stored`). For a stored test image written
out as an 8-bit PNG both are exact, so `predict` sees the very array `evaluate` sees.

A volume model carries its `standardise` instead of a window: the user's own volumes'
(`data.image.standardise`, as preprocess_images recorded it: spacing, CT window or MRI
normalisation, size), or for volumes stored as uint8 cubes (synthetic, MedMNIST 3D) their
0..255 scale (`meddx.data.standardise.stored_scale`). A new volume file goes through
`meddx.data.standardise.transform` with it, the very function that made the training volumes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from omegaconf import DictConfig

from meddx.data.intensity import stored_to_processed
from meddx.data.standardise import Standardisation, stored_scale
from meddx.errors import DataError

FACTS = ("name", "size", "channels", "spatial_dims", "normalization")


def facts(meta: dict[str, Any], spec: DictConfig) -> dict[str, Any]:
    """What a model must carry about its images: `meta` is preprocess_images' images.json,
    `spec` the `data.image` config (the folder source's window lives only there)."""
    window = spec.folder.window if spec.source == "folder" else None
    found = {key: meta[key] for key in FACTS} | {
        "window": [float(v) for v in window] if window is not None else None
    }
    if int(meta["spatial_dims"]) == 3:
        found["standardise"] = meta.get("standardise") or _stored_cubes(spec, int(meta["size"]))
    return found


def _stored_cubes(spec: DictConfig, size: int) -> dict[str, Any] | None:
    """The 0..255 standardisation of a source that stores its volumes as uint8 cubes (synthetic,
    MedMNIST 3D: `size` is one side). None for a source of its own rule (MSD Hippocampus: a
    per-case window, then zero-padding into a box), whose inverse predict does not have: such
    a model is refused for new volumes rather than fed by a rule it was not trained with."""
    return stored_scale(size).facts() if isinstance(spec.get("size"), int) else None


def pixels_of_array(array: np.ndarray) -> tuple[np.ndarray, float | None]:
    """A raw image array as the folder reader's (pixels, full scale): integers by their
    type's range (uint8: 255, uint16: 65535, as PNG bit depths), floats in modality units."""
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float32), float(np.iinfo(array.dtype).max)
    if not np.isfinite(array).all():
        raise DataError("the image array holds NaN or infinite values")
    return array.astype(np.float32), None


@dataclass(frozen=True)
class ImageSpec:
    dataset: str
    size: int
    channels: int
    spatial_dims: int
    normalization: dict[str, list[float]]
    window: tuple[float, float] | None
    standardise: Standardisation | None = None  # volumes: how a volume file becomes a sample

    @classmethod
    def of_model(cls, info: dict[str, Any], model: str) -> ImageSpec:
        """The spec stored in a model's info; a clear error for a model without one."""
        image = info.get("image")
        if not isinstance(image, dict):
            raise DataError(
                f"model {model} carries no image preprocessing (it was trained by "
                f"{info.get('stage', 'an unknown stage')}, or by a train_cnn older than "
                "`predict`): choose an image model, or retrain it with `dvc repro train_cnn`"
            )
        window, standardise = image.get("window"), image.get("standardise")
        return cls(
            dataset=str(image["name"]),
            size=int(image["size"]),
            channels=int(image["channels"]),
            spatial_dims=int(image["spatial_dims"]),
            normalization={k: list(v) for k, v in image["normalization"].items()},
            window=(float(window[0]), float(window[1])) if window is not None else None,
            standardise=Standardisation.of_facts(standardise) if standardise else None,
        )

    def with_window(self, window: list[float] | None) -> ImageSpec:
        """The spec with another intensity window (None keeps the model's own)."""
        if window is None:
            return self
        return replace(self, window=(float(window[0]), float(window[1])))

    def check_2d(self, model: str) -> None:
        if self.spatial_dims != 2:
            raise DataError(
                f"model {model} takes {self.spatial_dims}-D volumes; give it NIfTI volumes "
                "(.nii, .nii.gz) or DICOM series folders, or choose a 2-D image model"
            )

    def volume_standardisation(self, model: str) -> Standardisation:
        """How a volume file becomes this model's input; a clear error for a model that
        does not say (a 2-D model, or a volume model exported before `predict` read volumes)."""
        if self.spatial_dims != 3:
            raise DataError(
                f"model {model} takes 2-D images (PNG/JPEG, DICOM images, 2-D NIfTI), not "
                "volumes: choose a model trained on volumes (data.image.spatial_dims: 3)"
            )
        if self.standardise is None:
            raise DataError(
                f"model {model} carries no volume standardisation predict can apply to a new "
                "file: its volumes were prepared by their source's own rule (MSD Hippocampus: "
                "a per-case window and zero-padding), or a train_cnn older than `predict` on "
                "volumes exported it; predict volumes with a model trained on data.image="
                "folder3d (its data.image.standardise) or on volumes stored as cubes"
            )
        return self.standardise

    def from_stored(self, stored: np.ndarray) -> np.ndarray:
        """One stored uint8 sample `(H, W[, C])` -> `(C, H, W)` float32 on the processed scale."""
        return stored_to_processed(stored[None], self.normalization, self.spatial_dims)[0]
