"""The beat classifiers selectable with rnn=<name>: built from conf/, trainable, data-sized."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from meddx.config import compose
from meddx.data.ecg_beat_extraction import RR_FEATURES
from meddx.errors import ConfigError
from meddx.models.export import build_net

CONF = Path(__file__).resolve().parents[1] / "conf"
NETWORKS = sorted(p.stem for p in (CONF / "rnn").glob("*.yaml"))
SIZES = {"in_channels": 1, "num_classes": 5, "window": 96, "n_rr": len(RR_FEATURES)}


def test_every_required_network_is_selectable() -> None:
    assert {"lstm", "gru", "bilstm", "conv_attention"} <= set(NETWORKS)


@pytest.mark.parametrize("name", NETWORKS)
def test_forward_backward_on_synthetic_beats(name: str) -> None:
    torch.manual_seed(0)
    net = build_net(compose([f"rnn={name}"], conf_dir=CONF).rnn.net, **SIZES)
    beats, rr = torch.randn(6, 1, SIZES["window"]), torch.rand(6, SIZES["n_rr"])
    logits = net(beats, rr)
    assert logits.shape == (6, 5)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3, 4, 0])).backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_rr_features_change_the_prediction() -> None:
    """RR intervals reach the head: the same beat with another rhythm gets other logits."""
    torch.manual_seed(0)
    net = build_net(compose(["rnn=gru"], conf_dir=CONF).rnn.net, **SIZES).eval()
    beat = torch.randn(1, 1, SIZES["window"]).repeat(2, 1, 1)
    # RR_FEATURES order: prev, next, local, 3 ratios, 5-minute mean, 3 ratios to it.
    regular = [0.8, 0.8, 0.8, 1.0, 1.0, 1.0, 0.8, 1.0, 1.0, 1.0]
    premature = [0.4, 1.2, 0.8, 0.5, 1.5, 0.33, 0.8, 0.5, 1.5, 1.0]
    rr = torch.tensor([regular, premature])
    logits = net(beat, rr)
    assert not torch.allclose(logits[0], logits[1])


def test_an_unknown_cell_is_a_config_error() -> None:
    cfg = compose(["rnn=lstm", "rnn.net.cell=transformer"], conf_dir=CONF)
    with pytest.raises(ConfigError, match="transformer"):
        build_net(cfg.rnn.net, **SIZES)


@pytest.mark.skipif(
    not (CONF / "data" / "ecg" / "mitbih.yaml").is_file(),
    reason="the ECG data configs (conf/data/ecg/) are not on this branch yet",
)
def test_the_mitbih_recipe_composes_onto_the_real_data() -> None:
    cfg = compose(["+experiment=mitbih_interpatient"], conf_dir=CONF)
    assert cfg.rnn.name == "lstm" and cfg.rnn.loss.class_weights == "balanced"
