"""Grad-CAM heat maps (MONAI) for any CNN, over a fixed, seeded sample of test images.

MONAI costs seconds to import, so it is imported inside `gradcam` only.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


def target_layer(net: nn.Module) -> str | None:
    """Name of the last 2-D or 3-D convolution: the deepest map that still has spatial layout.

    Found from the module tree, so it works for any CNN, on images or volumes, without
    per-network configuration.
    """
    convolutions = (nn.Conv2d, nn.Conv3d)
    names = [name for name, module in net.named_modules() if isinstance(module, convolutions)]
    return names[-1] if names else None


def _unit_scale(maps: torch.Tensor) -> torch.Tensor:
    """Each map to [0, 1], largest value 1 (MONAI's default normaliser flips the scale)."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values.view(-1, *[1] * (maps.dim() - 1))
    high = flat.max(dim=1).values.view(-1, *[1] * (maps.dim() - 1))
    return torch.where(
        high > low, (maps - low) / (high - low).clamp_min(1e-12), torch.zeros_like(maps)
    )


def gradcam(
    net: nn.Module,
    images: np.ndarray,
    targets: np.ndarray,
    layer: str | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Heat maps (N, *spatial) in [0, 1] of `images` (N, C, *spatial) for the class `targets[i]`
    each (images or volumes: MONAI upsamples the map to the input's grid).

    Works on a copy with in-place activations switched off: a backward hook on a layer whose
    output a later in-place ReLU overwrites fails in PyTorch. Images are grouped by target
    class because MONAI scores one class index per call.
    """
    from monai.visualize import GradCAM

    layer = layer or target_layer(net)
    if layer is None:
        raise ValueError("Grad-CAM needs a network with a Conv2d or Conv3d layer")
    work = copy.deepcopy(net).eval()
    for module in work.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    for parameter in work.parameters():
        parameter.requires_grad_(True)
    cam = GradCAM(nn_module=work, target_layers=layer, postprocessing=_unit_scale)
    heat = np.zeros((len(images), *images.shape[2:]), dtype=np.float32)
    with torch.enable_grad():
        for target in np.unique(targets):
            chosen = np.flatnonzero(targets == target)
            for start in range(0, len(chosen), batch_size):
                index = chosen[start : start + batch_size]
                x = torch.from_numpy(np.ascontiguousarray(images[index], dtype=np.float32))
                heat[index] = cam(x, class_idx=int(target))[:, 0].detach().numpy()
    return heat


def sample(member: np.ndarray, correct: np.ndarray, per_outcome: int, seed: int) -> list[int]:
    """Up to `per_outcome` correct then up to `per_outcome` wrong indices among `member`, seeded.

    The same seed and predictions give the same images, so grids of two runs compare.
    """
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for outcome in (True, False):
        pool = np.flatnonzero(member & (correct == outcome))
        take = rng.choice(pool, size=min(per_outcome, len(pool)), replace=False)
        picked += sorted(int(i) for i in take)
    return picked


def beat_saliency(
    net: nn.Module, beats: np.ndarray, rr: np.ndarray, targets: np.ndarray
) -> np.ndarray:
    """|d logit[target] / d beat| per sample, scaled to [0, 1] per beat.

    Recurrent and attention beat networks have no convolution map to project back, so the
    explanation is the plain input gradient: which samples of the window moved the decision.
    """
    net.eval()
    x = torch.from_numpy(np.ascontiguousarray(beats, dtype=np.float32)).requires_grad_(True)
    logits = net(x, torch.from_numpy(np.ascontiguousarray(rr, dtype=np.float32)))
    chosen = logits.gather(1, torch.as_tensor(targets, dtype=torch.long).view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(chosen, x)
    return _unit_scale(grad.abs().flatten(1)).reshape(grad.shape).numpy()
