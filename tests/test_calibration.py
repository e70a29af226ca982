"""Temperature scaling: T is fitted on the validation split's logits (never on test), lowers
the validation NLL, is stored with the registered model, and `predict` reports
softmax(logits / T) of the predicted class as the confidence while the probabilities stay raw.

The model is the `pneumonia` fixture's (conftest: one real PneumoniaMNIST epoch, evaluated
and registered).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.special import softmax

from image_files import raw_test_images, write_png
from meddx import cli
from meddx.data.npz import load_npz
from meddx.evaluation import calibration, model_card, tasks
from meddx.evaluation.image_predict import image_id
from meddx.evaluation.model_source import model_file
from meddx.models import export
from meddx.models.predict import logits
from meddx.paths import Layout

MODEL = "meddx-cnn-pneumoniamnist@best"
N_PNG = 8


def _logits_and_labels(cfg, split: str) -> tuple[np.ndarray, np.ndarray]:
    layout = Layout.of(cfg)
    net, _ = export.load(layout.model_dir("cnn") / "model.pt")
    keys = (f"{split}_images", f"{split}_labels")
    arrays = load_npz(layout.processed_images, keys=keys)
    return logits(net, (arrays[keys[0]],)), arrays[keys[1]]


def _evaluated(cfg) -> dict:
    return json.loads(Layout.of(cfg).metrics("evaluate").read_text())


def test_the_fitted_temperature_minimises_the_nll_of_logits_drawn_at_a_known_one():
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 4.0, (4000, 3))
    labels = np.array([rng.choice(3, p=p) for p in softmax(z / 2.5, axis=1)])
    t = calibration.fit_temperature(z, labels)
    assert t == pytest.approx(2.5, rel=0.1)
    assert calibration.nll(z, labels, t) < min(
        calibration.nll(z, labels, t * 1.05), calibration.nll(z, labels, t / 1.05)
    )


def test_the_test_labels_do_not_change_the_temperature():
    rng = np.random.default_rng(1)
    val, test = rng.normal(0.0, 3.0, (500, 2)), rng.normal(0.0, 3.0, (300, 2))
    y_val, y_test = rng.integers(0, 2, 500), rng.integers(0, 2, 300)
    fitted = calibration.calibrate("binary", val, y_val, test, y_test, 15)
    shuffled = calibration.calibrate("binary", val, y_val, test, 1 - y_test, 15)
    assert fitted.stored == shuffled.stored
    assert fitted.metrics["test_nll"] != shuffled.metrics["test_nll"]


def test_a_multi_label_model_gets_no_calibration():
    assert tasks.of("multi-label").calibrate(None, None, None, None) is calibration.NONE


@pytest.mark.slow
@pytest.mark.mirror
def test_the_temperature_evaluate_records_lowers_the_validation_nll_of_the_real_model(pneumonia):
    val_logits, val_labels = _logits_and_labels(pneumonia, "val")
    found = _evaluated(pneumonia)
    t = found["calibration_temperature"]
    assert t == pytest.approx(calibration.fit_temperature(val_logits, val_labels), rel=1e-6)
    assert calibration.nll(val_logits, val_labels, t) < calibration.nll(val_logits, val_labels)
    assert found["val_nll_calibrated"] < found["val_nll"]
    assert found["test_ece_calibrated"] >= 0 and found["test_nll_calibrated"] > 0


@pytest.mark.slow
@pytest.mark.mirror
def test_predict_on_the_registered_model_gives_softmax_of_logits_over_t(pneumonia, tmp_path):
    images = raw_test_images(pneumonia)[:N_PNG]
    files = [write_png(tmp_path / "in" / f"case{i}.png", im) for i, im in enumerate(images)]
    out = tmp_path / "out"
    args = [f"paths.root={pneumonia.paths.root}", f"tracking.uri={pneumonia.tracking.uri}"]
    args += [f"predict.input={tmp_path / 'in'}", f"predict.model={MODEL}", f"predict.output={out}"]
    assert cli.main(["predict", *args]) == 0
    t = _evaluated(pneumonia)["calibration_temperature"]
    test_logits = _logits_and_labels(pneumonia, "test")[0][:N_PNG]
    expected = softmax(test_logits.astype(np.float64) / t, axis=1)
    raw = torch.from_numpy(test_logits).softmax(dim=1).numpy()
    for i, file in enumerate(files):
        found = json.loads((out / f"{image_id(file)}.json").read_text())
        assert found["confidence"] == pytest.approx(expected[i].max(), abs=1e-5)
        assert list(found["calibrated_probabilities"].values()) == pytest.approx(
            expected[i], abs=1e-5
        )
        assert list(found["probabilities"].values()) == pytest.approx(raw[i], abs=1e-5)
        assert found["confidence_kind"].endswith(
            f"temperature-scaled on the validation split (T={t:.4g})"
        )
    assert not np.allclose(expected.max(axis=1), raw.max(axis=1), atol=1e-3)  # T moved them


@pytest.mark.slow
@pytest.mark.mirror
def test_the_registered_model_file_stores_the_temperature_fitted_by_evaluate(pneumonia):
    with model_file(MODEL, pneumonia) as path:
        _, info = export.load(path)
    stored = info["calibration"]
    assert stored["temperature"] == _evaluated(pneumonia)["calibration_temperature"]
    assert stored["split"] == "val" and stored["n"] > 0


@pytest.mark.slow
@pytest.mark.mirror
def test_the_model_card_states_the_temperature_and_the_ece_before_and_after(pneumonia):
    layout = Layout.of(pneumonia)
    card = model_card.card_path(layout, "evaluate").read_text()
    found = _evaluated(pneumonia)
    section = card.split("## Calibration")[1].split("##")[0]
    assert f"T={found['calibration_temperature']:.4g}" in section
    assert "ECE" in section and "->" in section and "validation" in section
