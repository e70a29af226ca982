"""Imbalance handling chosen by config: class weights, focal loss, minority oversampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from meddx.errors import ConfigError
from meddx.training import imbalance
from meddx.training.batches import EpochBatchSampler

LABELS = np.array([0] * 60 + [1] * 30 + [2] * 10)


def test_balanced_weights_follow_training_counts() -> None:
    counts = imbalance.class_counts("multi-class", LABELS, 3)
    weights = imbalance.class_weights(counts, "balanced")
    np.testing.assert_allclose(weights.numpy(), [100 / 180, 100 / 90, 100 / 30], rtol=1e-6)
    np.testing.assert_allclose(
        imbalance.class_weights(counts, "sqrt").numpy(), np.sqrt(weights.numpy()), rtol=1e-6
    )


def test_count_floor_bounds_only_the_rarest_classes_weight() -> None:
    counts = imbalance.class_counts("multi-class", LABELS, 3)
    weights = imbalance.class_weights(counts, "balanced", count_floor=20)
    np.testing.assert_allclose(weights.numpy(), [100 / 180, 100 / 90, 100 / 60], rtol=1e-6)


def test_a_negative_count_floor_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="count_floor"):
        imbalance.build_loss(
            "multi-class", {"class_weights": "balanced", "count_floor": -1}, LABELS, 3
        )


def test_a_class_absent_from_training_gets_no_weight() -> None:
    weights = imbalance.class_weights(np.array([5.0, 0.0, 5.0]), "balanced")
    assert weights.tolist() == [1.0, 0.0, 1.0]


def test_defaults_keep_plain_cross_entropy() -> None:
    for cfg in (None, {"name": "ce", "class_weights": "none"}):
        loss = imbalance.build_loss("multi-class", cfg, LABELS, 3)
        assert isinstance(loss, nn.CrossEntropyLoss) and loss.weight is None


def test_focal_with_gamma_zero_is_weighted_cross_entropy() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(32, 3), torch.randint(0, 3, (32,))
    weight = torch.tensor([0.5, 1.0, 3.0])
    focal = imbalance.FocalLoss(gamma=0.0, weight=weight)
    expected = nn.functional.cross_entropy(logits, target, weight=weight)
    torch.testing.assert_close(focal(logits, target), expected)


def test_focal_loss_discounts_easy_examples_more_than_hard_ones() -> None:
    easy, hard = torch.tensor([[4.0, 0.0, 0.0]]), torch.tensor([[0.5, 0.0, 0.0]])
    target = torch.tensor([0])
    focal, ce = imbalance.FocalLoss(gamma=2.0), nn.CrossEntropyLoss()
    assert focal(easy, target) / ce(easy, target) < focal(hard, target) / ce(hard, target) < 1


def test_oversampling_draws_minority_classes_about_as_often_as_the_majority() -> None:
    weights = imbalance.sample_weights("multi-class", LABELS, 3, "balanced")
    assert len(weights) == len(LABELS)  # one weight per TRAINING example: nothing else is drawn
    sampler = EpochBatchSampler(weights, batch_size=50, shuffle=True, seed=0)
    drawn = np.concatenate(
        [
            LABELS[batch]
            for epoch in range(20)
            for batch in (sampler.set_epoch(epoch), list(sampler))[1]
        ]
    )
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    assert np.all(np.abs(shares - 1 / 3) < 0.05), shares
    assert np.bincount(LABELS)[2] / len(LABELS) == 0.1  # against 10% under plain shuffling


def test_plain_shuffling_needs_no_weights() -> None:
    assert imbalance.sample_weights("multi-class", LABELS, 3, "shuffle") is None


@pytest.mark.parametrize(
    "cfg", [{"name": "hinge"}, {"class_weights": "inverse"}, {"name": "focal", "gamma": -1.0}]
)
def test_an_unknown_setting_is_a_config_error(cfg: dict) -> None:
    with pytest.raises(ConfigError):
        imbalance.build_loss("multi-class", cfg, LABELS, 3)
