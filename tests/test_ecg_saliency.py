"""ECG explanations: input-gradient saliency points at the samples the decision depends on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from meddx.evaluation import case_grids, scoring
from meddx.evaluation.explain import beat_saliency


class OneSampleNet(nn.Module):
    """Logits depend on beat sample 30 only (and not on the RR features)."""

    def forward(self, beats: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
        x = beats[:, 0, 30:31]
        return torch.cat([x, -x, 0.5 * x], dim=1) + 0.0 * rr.sum(dim=1, keepdim=True)


def test_saliency_has_the_beat_shape_and_peaks_where_the_decision_is_made() -> None:
    beats = np.random.default_rng(0).normal(size=(4, 1, 90)).astype(np.float32)
    rr = np.ones((4, 4), dtype=np.float32)
    saliency = beat_saliency(OneSampleNet(), beats, rr, np.array([0, 1, 2, 0]))
    assert saliency.shape == beats.shape
    assert (saliency.argmax(axis=-1) == 30).all()
    assert saliency.max() == 1.0


def test_beat_explanations_are_drawn_per_class(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    beats = rng.normal(size=(30, 1, 90)).astype(np.float32)
    rr = np.ones((30, 4), dtype=np.float32)
    y_true = np.arange(30) % 3
    scores = torch.softmax(OneSampleNet()(torch.from_numpy(beats), torch.from_numpy(rr)), 1)
    settings = {"bootstrap": 0, "calibration_bins": 5, "confidence": 0.95}
    evaluation = scoring.score(
        "multi-class", ["N", "S", "V"], y_true, scores.numpy(), OmegaConf.create(settings), 0
    )
    path = case_grids.explain_beats(
        OneSampleNet(), beats, rr, evaluation, 2, 0, tmp_path / "saliency.png"
    )
    assert path is not None and path.stat().st_size > 0
