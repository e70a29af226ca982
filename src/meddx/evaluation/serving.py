"""The registered image model as an MLflow pyfunc: raw image arrays in, class calls out.

`mlflow models serve -m models:/meddx-cnn-<dataset>@best --env-manager local` answers REST
requests with it. Its input is what a user has, raw images, `uint8` `(N, H, W)` (or
`(N, H, W, C)` for colour models; `uint16` and float arrays are taken too, by their range as
`predict` takes 16-bit PNGs and DICOM). The preprocessing is the model's own
(`meddx.data.image_spec`, the code `meddx predict` runs), the network is model.pt's, so the
REST answer is `predict`'s: `confidence` the calibrated probability of the label and
`calibrated_p_<class>` beside the raw `p_<class>` when the model stores a calibration (the
registered model does: `evaluate` fits it on the validation split). The package meddx must be
importable where it is served (the project's venv: `--env-manager local`); the other
requirements are logged with the model.

Imported only by the registry and by MLflow when it loads the model: mlflow costs seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from meddx.data.image_spec import ImageSpec, pixels_of_array
from meddx.errors import DataError
from meddx.evaluation.image_predict import calls, model_array
from meddx.models import export
from meddx.models.predict import probabilities

MODEL_FILE = "model.pt"
CALIBRATED = "calibrated_"


def columns(names: list[str], calibrated: bool) -> list[str]:
    """The REST answer's columns (and the logged signature's)."""
    raw = [f"p_{name}" for name in names]
    return ["label", "confidence", *raw, *([CALIBRATED + c for c in raw] if calibrated else [])]


def table(
    scores: np.ndarray, task: str, names: list[str], stored: dict[str, Any] | None = None
) -> pd.DataFrame:
    """The REST answer: one row per image, label, confidence (NaN: multi-label), p_<class>
    and, with a `stored` calibration, calibrated_p_<class>."""
    rows = [
        {
            "label": call["label"],
            "confidence": np.nan if call["confidence"] is None else call["confidence"],
            **{f"p_{name}": p for name, p in call["probabilities"].items()},
            **{
                f"{CALIBRATED}p_{name}": p
                for name, p in call.get("calibrated_probabilities", {}).items()
            },
        }
        for call in calls(scores, task, names, stored)
    ]
    calibrated = stored is not None and task != "multi-label"
    return pd.DataFrame(rows, columns=columns(names, calibrated))


class ImageClassifier(mlflow.pyfunc.PythonModel):
    """model.pt (an artifact of the logged model) behind MLflow's pyfunc interface."""

    def load_context(self, context: Any) -> None:
        self.net, self.info = export.load(Path(context.artifacts[MODEL_FILE]))
        self.spec = ImageSpec.of_model(self.info, "the served model")

    # No type hints: MLflow would read them as the input schema; the signature is logged.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """Class calls of a batch of raw images (the signature's uint8 tensor)."""
        images = np.asarray(model_input)
        if images.ndim not in (3, 4):
            raise DataError(
                f"the model takes a batch of images (N, H, W) or (N, H, W, C), not an array of "
                f"shape {images.shape}"
            )
        x = np.stack([model_array(self.spec, *pixels_of_array(image)) for image in images])
        export.check_inputs(self.info["dataset_kwargs"], x, "the request's images")
        names, task = list(self.info["class_names"]), str(self.info["task"])
        scores = probabilities(self.net, (x,), task)
        return table(scores, task, names, self.info.get("calibration"))
