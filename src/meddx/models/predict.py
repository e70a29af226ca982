"""Batched inference without Lightning: evaluation, reports and ensemble validation scores."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def probabilities(
    net: nn.Module, inputs: tuple[np.ndarray, ...], task: str, batch_size: int = 512
) -> np.ndarray:
    net.eval()
    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in inputs]
    chunks = []
    for start in range(0, len(tensors[0]), batch_size):
        logits = net(*(t[start : start + batch_size] for t in tensors))
        chunks.append(torch.sigmoid(logits) if task == "multi-label" else logits.softmax(dim=1))
    return torch.cat(chunks).numpy()
