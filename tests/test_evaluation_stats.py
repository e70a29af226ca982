"""Evaluation statistics: bootstrap intervals, calibration error, curves, per-class figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats as scipy_stats
from sklearn import metrics as skm

from meddx import metrics
from meddx.evaluation import run_summary, scoring, stats

SETTINGS = OmegaConf.create({"bootstrap": 200, "confidence": 0.95, "calibration_bins": 10})


def test_bootstrap_interval_of_a_proportion_matches_the_binomial_quantiles() -> None:
    # Resampling n Bernoulli outcomes with k successes: the resampled proportion is exactly
    # Binomial(n, k/n)/n, so the percentile interval must be its 2.5% and 97.5% quantiles.
    n, k = 400, 320
    outcomes = np.r_[np.ones(k), np.zeros(n - k)]
    intervals = stats.bootstrap_ci(lambda idx: {"acc": outcomes[idx].mean()}, n, 4000, seed=0)
    low, high = intervals["acc"]
    expected = scipy_stats.binom.ppf([0.025, 0.975], n, k / n) / n
    assert low == pytest.approx(expected[0], abs=1.5 / n)
    assert high == pytest.approx(expected[1], abs=1.5 / n)


def test_bootstrap_is_seeded_and_degenerate_for_a_constant_statistic() -> None:
    values = np.linspace(0, 1, 50)
    first = stats.bootstrap_ci(lambda idx: {"m": values[idx].mean()}, 50, 100, seed=3)
    assert first == stats.bootstrap_ci(lambda idx: {"m": values[idx].mean()}, 50, 100, seed=3)
    assert stats.bootstrap_ci(lambda idx: {"c": 0.7}, 50, 100, seed=3)["c"] == (0.7, 0.7)


def test_bootstrap_leaves_out_resamples_where_a_value_is_undefined() -> None:
    y = np.r_[1, np.zeros(9)]  # most resamples miss the single positive: AUC undefined there
    score = np.linspace(1, 0, 10)
    low, high = stats.bootstrap_ci(
        lambda idx: {"auc": metrics.binary_auc(y[idx], score[idx])}, 10, 300, seed=0
    )["auc"]
    assert (low, high) == (1.0, 1.0)


def test_expected_calibration_error_matches_a_hand_computed_example() -> None:
    confidence = np.array([0.95, 0.85, 0.65, 0.62, 0.55])
    correct = np.array([1, 0, 1, 1, 0], dtype=bool)
    # 5 bins of width 0.2. (0.8, 1]: conf 0.90, acc 0.5, 2 of 5 -> 0.4 * 0.4 = 0.160
    # (0.6, 0.8]: conf 0.635, acc 1 -> 0.365 * 0.4 = 0.146; (0.4, 0.6]: 0.55 * 0.2 = 0.110
    assert stats.expected_calibration_error(confidence, correct, 5) == pytest.approx(0.416)


def test_calibration_bins_are_right_closed_and_a_calibrated_model_has_zero_error() -> None:
    bins = stats.calibration_bins(
        np.array([0.8, 0.8, 0.8, 0.8, 0.81]), np.array([1, 1, 1, 0, 1], dtype=bool), 5
    )
    assert [(b["bin_high"], b["count"]) for b in bins] == [(0.8, 4), (1.0, 1)]
    assert stats.expected_calibration_error(
        np.full(4, 0.75), np.array([1, 1, 1, 0], bool), 10
    ) == pytest.approx(0.0)


def test_top_label_confidence_is_the_probability_of_the_predicted_class() -> None:
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    confidence, correct = stats.top_label("multi-class", np.array([0, 1]), scores)
    assert confidence.tolist() == [0.7, 0.6]
    assert correct.tolist() == [True, False]


def test_average_precision_matches_a_hand_computed_example() -> None:
    # Thresholds 0.9, 0.8, 0.7, 0.1: (recall, precision) = (.5, 1), (.5, .5), (1, 2/3), (1, .5)
    ap = stats.average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]))
    assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_roc_and_pr_curves_span_their_axes() -> None:
    y, s = np.array([0, 1, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8, 0.9])
    roc = stats.roc_points(y, s)
    assert (roc[0]["fpr"], roc[0]["tpr"]) == (0, 0) and (roc[-1]["fpr"], roc[-1]["tpr"]) == (1, 1)
    assert stats.pr_points(y, s)[-1]["recall"] == 1.0


def test_curves_hold_every_point_of_scikit_learns_and_ap_is_its_figure() -> None:
    rng = np.random.default_rng(5)
    y = rng.random(400) < 0.3
    s = np.round(np.clip(rng.normal(0.4 + 0.3 * y, 0.2), 0, 1), 2).astype(np.float32)
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    precision, recall, _ = skm.precision_recall_curve(y, s)
    roc, pr = stats.roc_points(y, s), stats.pr_points(y, s)
    assert [(p["fpr"], p["tpr"]) for p in roc] == list(zip(fpr, tpr, strict=True))
    assert [(p["recall"], p["precision"]) for p in pr] == list(zip(recall, precision, strict=True))[
        ::-1
    ]
    assert stats.average_precision(y, s) == pytest.approx(
        skm.average_precision_score(y, s), abs=1e-15
    )


def test_average_precision_is_undefined_without_positives() -> None:
    assert math.isnan(stats.average_precision(np.zeros(4, bool), np.array([0.1, 0.2, 0.3, 0.4])))


def test_a_perfect_classifier_scores_one_with_a_degenerate_interval() -> None:
    y = np.repeat(np.arange(3), 20)
    scores = np.eye(3)[y] * 0.9 + 0.1 / 3
    evaluation = scoring.score("multi-class", ["a", "b", "c"], y, scores, SETTINGS, seed=0)
    m = evaluation.metrics
    assert (m["test_auc"], m["test_auc_ci_low"], m["test_auc_ci_high"]) == (1.0, 1.0, 1.0)
    assert m["test_acc"] == m["test_balanced_acc"] == 1.0
    assert m["test_ece"] == pytest.approx(1 - (0.9 + 0.1 / 3))
    assert set(m["per_class"]) == {"a", "b", "c"}
    assert m["per_class"]["b"]["auc"] == 1.0 and m["per_class"]["b"]["support"] == 20
    assert set(evaluation.roc) == {"a", "b", "c", "micro-average"}


def test_interval_brackets_the_point_estimate_of_a_noisy_binary_classifier() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.25, 300), 0.01, 0.99)
    m = scoring.score("binary", ["neg", "pos"], y, np.c_[1 - p, p], SETTINGS, seed=0).metrics
    for key in ("auc", "acc", "balanced_acc", "ece"):
        assert m[f"test_{key}_ci_low"] <= m[f"test_{key}"] <= m[f"test_{key}_ci_high"]
        assert m[f"test_{key}_ci_high"] - m[f"test_{key}_ci_low"] < 0.2
    assert all(math.isfinite(v) for v in run_summary.flat_metrics(m).values())
    assert set(m["per_class"]) == {"neg", "pos"}
