"""meddx's numpy metrics agree with scikit-learn, i.e. with how MedMNIST scores its tables."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn import metrics as skm

from meddx import metrics


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_average_ranks_are_scipys_rankdata_bit_for_bit(rng: np.random.Generator) -> None:
    # Hand-written only for bootstrap speed (its docstring): the ranks must stay rankdata's.
    for scores in (rng.random(500), np.round(rng.random(500), 2), np.zeros(7), np.arange(3.0)):
        ranks = metrics._average_ranks(scores)
        assert np.array_equal(ranks, scipy_stats.rankdata(scores, method="average"))


def test_binary_auc_and_acc_match_sklearn(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 300)
    logits = rng.normal(size=(300, 2)) + np.eye(2)[y] * 0.8
    score = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    score[:20, 1] = 0.5  # ties must count half, as in sklearn
    score[:20, 0] = 0.5
    assert metrics.auc("binary", y, score) == pytest.approx(skm.roc_auc_score(y, score[:, 1]))
    assert metrics.accuracy("binary", y, score) == pytest.approx(
        skm.accuracy_score(y, score[:, 1] > 0.5)
    )


def test_multiclass_auc_is_the_mean_one_vs_rest_auc(rng: np.random.Generator) -> None:
    y = rng.integers(0, 4, 400)
    score = rng.dirichlet(np.ones(4), 400) + np.eye(4)[y] * 0.3
    score /= score.sum(1, keepdims=True)
    assert metrics.auc("multi-class", y, score) == pytest.approx(
        skm.roc_auc_score(y, score, multi_class="ovr", average="macro")
    )
    assert metrics.accuracy("ordinal", y, score) == pytest.approx(
        skm.accuracy_score(y, score.argmax(1))
    )


def test_multilabel_auc_and_acc_match_sklearn(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, (200, 5))
    score = np.clip(rng.uniform(size=(200, 5)) + 0.3 * y - 0.15, 0, 1)
    assert metrics.auc("multi-label", y, score) == pytest.approx(
        skm.roc_auc_score(y, score, average="macro")
    )
    assert metrics.accuracy("multi-label", y, score) == pytest.approx(((score > 0.5) == y).mean())


def test_per_class_rates_and_balanced_accuracy_match_sklearn(rng: np.random.Generator) -> None:
    y = rng.integers(0, 3, 500)
    score = rng.dirichlet(np.ones(3), 500) + np.eye(3)[y] * 0.4
    pred = score.argmax(1)
    report = metrics.per_class_report("multi-class", y, score, ["a", "b", "c"])
    recall = skm.recall_score(y, pred, average=None)
    precision = skm.precision_score(y, pred, average=None)
    f1 = skm.f1_score(y, pred, average=None)
    for k, name in enumerate("abc"):
        specificity = skm.recall_score(y != k, pred != k)
        assert report[name]["sensitivity"] == pytest.approx(recall[k])
        assert report[name]["specificity"] == pytest.approx(specificity)
        assert report[name]["ppv"] == pytest.approx(precision[k])
        assert report[name]["f1"] == pytest.approx(f1[k])
    assert metrics.summary("multi-class", y, score)["balanced_acc"] == pytest.approx(
        skm.balanced_accuracy_score(y, pred)
    )


def test_multilabel_report_scores_each_label_as_yes_or_no(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, (100, 2))
    score = rng.uniform(size=(100, 2))
    report = metrics.per_class_report("multi-label", y, score, ["x", "y"])
    assert report["y"]["sensitivity"] == pytest.approx(skm.recall_score(y[:, 1], score[:, 1] > 0.5))
    assert report["y"]["f1"] == pytest.approx(skm.f1_score(y[:, 1], score[:, 1] > 0.5))
