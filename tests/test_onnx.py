"""Every image network of conf/cnn exports to ONNX and onnxruntime gives PyTorch's logits
(max abs difference <= 1e-4, the registry's tolerance), on images and on volumes.

Untrained, seeded networks on the offline synthetic test split (real pipeline data, generated):
the exporter's translation of each operator is what is checked, and training does not change
which operators a network has. `evaluate` checks the trained network on its real test split.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import CONF
from meddx.config import compose
from meddx.data import synthetic_images, synthetic_volumes
from meddx.data.intensity import channel_first
from meddx.evaluation.registry import ONNX_TOLERANCE
from meddx.models import export, onnx_export

NETWORKS = sorted(path.stem for path in (CONF / "cnn").glob("*.yaml"))
SIZES = {"train": 2, "val": 2, "test": 16}


def synthetic_test_split(spatial_dims: int) -> np.ndarray:
    if spatial_dims == 2:
        # 32 px, not the offline set's 28: the segmentation nets halve it three times
        stored = synthetic_images.generate(2, SIZES, 32, 1, 0.08, seed=0)["test_images"]
    else:
        stored = synthetic_volumes.generate(2, SIZES, 16, 0.08, seed=0)["test_images"]
    return channel_first(stored, spatial_dims)


@pytest.mark.slow
@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("network", NETWORKS)
def test_the_onnx_copy_of_a_network_gives_its_logits(network, spatial_dims, tmp_path):
    cfg = compose([f"cnn={network}"], conf_dir=CONF)
    images = synthetic_test_split(spatial_dims)
    sizes = {
        "in_channels": 1,
        "num_classes": 2,
        "image_size": images.shape[-1],
        "spatial_dims": spatial_dims,
    }
    torch.manual_seed(0)
    net = export.build_net(cfg.cnn.net, **sizes).eval()
    path = onnx_export.export(net, images, tmp_path / "model.onnx")
    assert onnx_export.max_abs_difference(path, net, images) <= ONNX_TOLERANCE
    # any batch size; a segmentation net's logits are a map per class
    assert onnx_export.logits(path, images).shape[:2] == (len(images), 2)
