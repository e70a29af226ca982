"""The registered model served by the real `mlflow models serve` answers as `meddx predict`:
the same label, raw probabilities, calibrated probabilities and calibrated confidence.

The model is the `pneumonia` fixture's (conftest: one real PneumoniaMNIST epoch, registered by
`evaluate` as the pyfunc of meddx.evaluation.serving).
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

from image_files import raw_test_images, write_png
from meddx import cli
from meddx.evaluation.image_predict import image_id
from servers import model_server

MODEL = "models:/meddx-cnn-pneumoniamnist@best"
NAMES = ("normal", "pneumonia")


def invoke(url: str, images: np.ndarray) -> list[dict]:
    """POST raw uint8 images as MLflow's JSON `inputs`; the answer's predictions."""
    body = json.dumps({"inputs": images.tolist()}).encode()
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())["predictions"]


@pytest.mark.slow
@pytest.mark.mirror
def test_the_served_model_answers_a_test_image_as_predict_does(pneumonia, tmp_path):
    images = raw_test_images(pneumonia)[:3]
    files = [write_png(tmp_path / "in" / f"case{i}.png", im) for i, im in enumerate(images)]
    out = tmp_path / "out"
    code = cli.main(
        [
            "predict",
            f"paths.root={pneumonia.paths.root}",
            f"tracking.uri={pneumonia.tracking.uri}",
            f"predict.input={tmp_path / 'in'}",
            f"predict.model={MODEL}",
            f"predict.output={out}",
        ]
    )
    assert code == 0
    with model_server(MODEL, pneumonia.tracking.uri, tmp_path) as url:
        answers = invoke(url, images)
    for file, answer in zip(files, answers, strict=True):
        predicted = json.loads((out / f"{image_id(file)}.json").read_text())
        assert answer["label"] == predicted["label"]
        served = [answer[f"p_{name}"] for name in NAMES]
        assert (
            np.abs(np.array(served) - [predicted["probabilities"][n] for n in NAMES]).max() <= 1e-6
        )
        calibrated = [answer[f"calibrated_p_{name}"] for name in NAMES]
        expected = [predicted["calibrated_probabilities"][n] for n in NAMES]
        assert np.abs(np.array(calibrated) - expected).max() <= 1e-6
        assert abs(answer["confidence"] - predicted["confidence"]) <= 1e-6
