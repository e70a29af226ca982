"""Grad-CAM: a generic target layer, image-sized maps, and maps that find the evidence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from meddx.evaluation.explain import gradcam, sample, target_layer
from meddx.models.cnn import BasicCNN

SIZE, PATCH = 28, 6


class Nested(nn.Module):
    """A CNN laid out differently from BasicCNN: named blocks, global pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True))
        self.body = nn.ModuleDict({"deep": nn.Conv2d(4, 8, 3, padding=1)})
        self.head = nn.Sequential(
            nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body["deep"](self.stem(x)))


def test_target_layer_is_the_last_convolution_of_any_cnn() -> None:
    assert target_layer(BasicCNN(1, 2, SIZE)) == "features.6"
    assert target_layer(Nested()) == "body.deep"
    assert target_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2))) is None


@pytest.mark.parametrize("net", [BasicCNN(1, 2, SIZE, channels=(4, 8)), Nested()])
def test_maps_have_the_image_size_and_unit_range(net: nn.Module) -> None:
    images = np.random.default_rng(0).normal(size=(5, 1, SIZE, SIZE)).astype(np.float32)
    heat = gradcam(net, images, np.array([0, 1, 1, 0, 1]))
    assert heat.shape == (5, SIZE, SIZE)
    assert heat.min() >= 0 and heat.max() <= 1


def test_sample_takes_correct_then_wrong_cases_reproducibly() -> None:
    member = np.array([1, 1, 1, 1, 0, 1], dtype=bool)
    correct = np.array([1, 0, 1, 1, 1, 0], dtype=bool)
    picked = sample(member, correct, 2, seed=1)
    assert picked == sample(member, correct, 2, seed=1)
    assert all(correct[i] for i in picked[:2]) and sorted(picked[2:]) == [1, 5]


def planted(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise images; odd ones carry a bright square patch at a random place: the only evidence."""
    x = rng.normal(0.3, 0.1, (n, 1, SIZE, SIZE)).astype(np.float32)
    y = np.arange(n) % 2
    corners = rng.integers(2, SIZE - PATCH - 2, (n, 2))
    for i in np.flatnonzero(y == 1):
        r, c = corners[i]
        x[i, 0, r : r + PATCH, c : c + PATCH] += 0.6
    return x, y, corners


@pytest.mark.slow
def test_gradcam_highlights_the_planted_patch() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x, y, _ = planted(384, rng)
    x_test, y_test, corners = planted(48, rng)
    net = BasicCNN(1, 2, SIZE, channels=(8, 16, 32), hidden=32, dropout=0.0)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(5):
        net.train()
        for batch in torch.randperm(len(inputs)).split(32):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(inputs[batch]), targets[batch]).backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            accuracy = (net(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
        if accuracy == 1.0:
            break
    assert accuracy >= 0.95, "the CNN must learn the patch before its maps can show it"
    positive = np.flatnonzero(y_test == 1)
    heat = gradcam(net, x_test[positive], np.ones(len(positive), dtype=np.int64))
    assert heat.shape == (len(positive), SIZE, SIZE)
    inside_share = []
    for h, (r, c) in zip(heat, corners[positive], strict=True):
        mask = np.zeros((SIZE, SIZE), dtype=bool)
        mask[r : r + PATCH, c : c + PATCH] = True
        peak_r, peak_c = np.unravel_index(h.argmax(), h.shape)
        assert r - 2 <= peak_r < r + PATCH + 2 and c - 2 <= peak_c < c + PATCH + 2
        inside_share.append(h[mask].mean() / max(h[~mask].mean(), 1e-6))
    assert np.median(inside_share) > 3
