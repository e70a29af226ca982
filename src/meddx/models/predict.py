"""Batched inference without Lightning: evaluation, reports and ensemble validation scores."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def _outputs(
    net: nn.Module, inputs: tuple[np.ndarray, ...], task: str | None, batch_size: int
) -> np.ndarray:
    """The network's outputs in batches: logits (`task` None) or the task's probabilities."""
    net.eval()
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in inputs]
    chunks = []
    for start in range(0, len(tensors[0]), batch_size):
        out = net(*(t[start : start + batch_size] for t in tensors))
        if task is not None:
            out = torch.sigmoid(out) if task == "multi-label" else out.softmax(dim=1)
        chunks.append(out)
    return torch.cat(chunks).numpy()


def probabilities(
    net: nn.Module, inputs: tuple[np.ndarray, ...], task: str, batch_size: int = 512
) -> np.ndarray:
    return _outputs(net, inputs, task, batch_size)


def logits(net: nn.Module, inputs: tuple[np.ndarray, ...], batch_size: int = 512) -> np.ndarray:
    """The raw outputs, what temperature scaling divides (`meddx.evaluation.calibration`)."""
    return _outputs(net, inputs, None, batch_size)
