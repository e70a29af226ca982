"""Batched segmentation inference without Lightning: per-pixel class probabilities.

Every prediction goes through MONAI's `sliding_window_inference`, so an input larger than the
window a network was trained on is tiled (Gaussian-weighted overlapping windows) rather than
fed whole to a network that never saw its size. The window is `roi_size` when given, else the
input's own size: the image datasets of this project store every split at one size and train
on whole images, so the test images are one window each, and a larger input (a prediction on
a full-resolution scan) is tiled with the training size as its window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

OVERLAP = 0.25  # MONAI's default fraction of a window shared with its neighbour


@torch.no_grad()
def probabilities(
    net: nn.Module,
    images: np.ndarray,
    batch_size: int = 16,
    roi_size: Sequence[int] | None = None,
) -> np.ndarray:
    """Softmax probabilities `(N, C, *spatial)` (float32) of channel-first `images`."""
    from monai.inferers import sliding_window_inference

    net.eval()
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    window = tuple(roi_size) if roi_size is not None else tuple(tensor.shape[2:])
    chunks = []
    for start in range(0, len(tensor), batch_size):
        logits = sliding_window_inference(
            tensor[start : start + batch_size],
            roi_size=window,
            sw_batch_size=batch_size,
            predictor=net,
            overlap=OVERLAP,
            mode="gaussian",
        )
        chunks.append(logits.softmax(dim=1))
    return torch.cat(chunks).numpy()
