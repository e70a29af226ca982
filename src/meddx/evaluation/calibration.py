"""Temperature scaling (Guo et al. 2017): one scalar T fitted on the validation split's logits,
so that `softmax(logits / T)` minimises the validation negative log-likelihood.

Why a temperature: it divides every logit by the same number, so the predicted class (argmax,
and the binary 0.5 threshold) and every ranking figure (AUC, AP) stay exactly as they were;
only the confidence moves, which is what a user reads. Why not scikit-learn's
`CalibratedClassifierCV`: it calibrates a scikit-learn estimator by refitting it (or wrapping a
prefit one) with a sigmoid or isotonic map per class, not the one temperature of a trained
network's logits; the one-parameter fit is a bounded scalar minimisation, scipy's
`minimize_scalar` on log T (T > 0 by construction). Multi-label models (independent
sigmoids) get no calibration: the stored model says so and `predict` reports their
per-label probabilities as they are.

The fit never sees the test split; the test figures before and after (ECE with the project's
own bins, `stats.expected_calibration_error`, and NLL) only measure what it did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from meddx.evaluation import stats

METHOD = "temperature scaling"
SPLIT = "val"
LOG_T_BOUNDS = (-4.0, 4.0)  # T in [0.018, 55]: far beyond the 0.5-5 seen for trained nets
UNCALIBRATED = "uncalibrated (this model file stores no calibration; the evaluated model does)"
NOT_FITTED = (
    "No calibration is fitted: a multi-label model's per-label sigmoids are independent "
    "decisions, not the one softmax a temperature rescales."
)


@dataclass(frozen=True)
class Calibration:
    """What evaluation measured (`metrics`, into the metrics file and MLflow) and what the
    model file stores (`stored`: None when no calibration was fitted)."""

    metrics: dict[str, float]
    stored: dict[str, Any] | None


NONE = Calibration({}, None)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true classes under softmax(logits / T)."""
    log_p = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-log_p[np.arange(len(log_p)), np.asarray(labels).reshape(-1)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the NLL of `labels` (validation) under softmax(logits / T)."""
    found = minimize_scalar(
        lambda log_t: nll(logits, labels, float(np.exp(log_t))),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(found.x))


def scaled(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) from softmax(logits): log p is the logits up to a per-row constant,
    which a softmax ignores (a class whose probability underflowed to 0 stays 0)."""
    with np.errstate(divide="ignore"):
        log_p = np.log(np.asarray(probabilities, dtype=np.float64))
    return softmax(log_p / temperature, axis=1)


def describe(stored: dict[str, Any]) -> str:
    """How a stored calibration was made, naming its temperature."""
    split = "validation" if stored["split"] == SPLIT else stored["split"]
    return f"temperature-scaled on the {split} split (T={stored['temperature']:.4g})"


def confidence_kind(stored: dict[str, Any] | None) -> str:
    """What a single-label model's confidence (the predicted class's probability) is."""
    how = UNCALIBRATED if stored is None else describe(stored)
    return f"probability of the predicted class, {how}"


def _ece(task: str, labels: np.ndarray, probabilities: np.ndarray, bins: int) -> float:
    return stats.expected_calibration_error(*stats.top_label(task, labels, probabilities), bins)


def calibrate(
    task: str,
    val_logits: np.ndarray,
    val_labels: np.ndarray,
    test_logits: np.ndarray,
    test_labels: np.ndarray,
    bins: int,
) -> Calibration:
    """T fitted on validation; validation and test NLL before and after it, and the test ECE
    after it (before it is `test_ece` of the scoring, with its bootstrap interval)."""
    t = fit_temperature(val_logits, val_labels)
    figures = {
        "calibration_temperature": t,
        "val_nll": nll(val_logits, val_labels),
        "val_nll_calibrated": nll(val_logits, val_labels, t),
        "test_nll": nll(test_logits, test_labels),
        "test_nll_calibrated": nll(test_logits, test_labels, t),
        "test_ece_calibrated": _ece(task, test_labels, softmax(test_logits / t, axis=1), bins),
    }
    stored = {"method": METHOD, "temperature": t, "split": SPLIT, "n": len(val_labels)}
    return Calibration(figures, stored)
