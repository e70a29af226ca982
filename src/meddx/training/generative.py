"""How good, and how private, a set of generated images is: numpy/torch only, no Lightning.

- `frechet_distance`: the Frechet distance between Gaussians fitted to two feature sets.
  The features are the penultimate layer of the PIPELINE'S OWN CNN trained on the real
  training split (`penultimate_features`), so the figure is domain-specific: it is NOT
  comparable with ImageNet-Inception FID values, only with other runs that use the same
  classifier (same dataset, config and seed).
- `precision_recall`: Kynkaanniemi et al. 2019. Each set spans a manifold made of balls
  around its points with radius the distance to the k-th nearest neighbour in the set.
  Precision = share of generated points inside the real manifold (fidelity); recall = share
  of real points inside the generated manifold (diversity).
- `memorisation`: pixel-space distance from each generated image to its nearest training
  image, against the typical nearest-neighbour distance between real training images.
  See `memorisation` for the rule and why its thresholds are what they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from meddx.io import atomic_path


def image_grid(images: np.ndarray, rows: int, pad: int = 2) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> one uint8 image (rows x ceil(N/rows) tiles), (H, W[, C])."""
    n, c, h, w = images.shape
    cols = math.ceil(n / rows)
    grid = np.ones((c, rows * (h + pad) + pad, cols * (w + pad) + pad), dtype=np.float32)
    for i, image in enumerate(images):
        r, q = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top : top + h, left : left + w] = image
    out = np.clip(np.rint(grid * 255), 0, 255).astype(np.uint8)
    return out[0] if c == 1 else out.transpose(1, 2, 0)


def save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


@torch.no_grad()
def penultimate_features(net: nn.Module, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The input of the network's last linear layer (the classifier head) for each image."""
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(net).__name__} has no linear layer to take features before")
    captured: list[torch.Tensor] = []
    hook = linears[-1].register_forward_hook(
        lambda _module, inputs, _output: captured.append(inputs[0].detach().flatten(1))
    )
    net.eval()
    try:
        tensor = torch.from_numpy(np.ascontiguousarray(images))
        for start in range(0, len(tensor), batch_size):
            net(tensor[start : start + batch_size])
    finally:
        hook.remove()
    return torch.cat(captured).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)), via symmetric eigendecompositions
    (tr (S_a S_b)^(1/2) = sum of sqrt eigenvalues of S_a^(1/2) S_b S_a^(1/2)), which stays
    real and stable when the covariances are singular (fewer samples than features)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = root_a @ cov_b @ root_a
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    distance = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross
    return float(max(distance, 0.0))


def _as_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1))


def nearest(
    query: np.ndarray, reference: np.ndarray, exclude_self: bool = False, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query row to its nearest reference row, and its index.

    `exclude_self`: query IS reference; each row's own zero distance is skipped (leave-one-out).
    """
    q, r = _as_tensor(query), _as_tensor(reference)
    distances, indices = [], []
    for start in range(0, len(q), chunk):
        d = torch.cdist(q[start : start + chunk], r)
        if exclude_self:
            rows = torch.arange(len(d))
            d[rows, rows + start] = float("inf")
        best = d.min(dim=1)
        distances.append(best.values)
        indices.append(best.indices)
    return torch.cat(distances).numpy(), torch.cat(indices).numpy()


def _kth_neighbour_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    d = torch.cdist(x, x)
    return d.kthvalue(k + 1, dim=1).values  # +1: the point itself is at distance 0


def _covered(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    return float((torch.cdist(points, centres) <= radii[None, :]).any(dim=1).float().mean())


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of `generated` against `real`."""
    if min(len(real), len(generated)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set")
    r, g = _as_tensor(real), _as_tensor(generated)
    precision = _covered(g, r, _kth_neighbour_radii(r, k))
    recall = _covered(r, g, _kth_neighbour_radii(g, k))
    return precision, recall


@dataclass
class Memorisation:
    typical_distance: float  # median leave-one-out NN distance between real training images
    threshold: float  # closer than this to a training image: a near-copy
    distances: np.ndarray  # per generated image: distance to its nearest training image
    nearest_index: np.ndarray  # per generated image: index of that training image
    share: float  # share of generated images that are near-copies
    reference_share: float  # the same for held-out REAL images (what a faithful sampler shows)
    limit: float  # the share above which the check fails

    @property
    def near_copy(self) -> np.ndarray:
        return self.distances < self.threshold

    @property
    def passed(self) -> bool:
        return self.share <= self.limit


def memorisation(
    train: np.ndarray,
    generated: np.ndarray,
    held_out: np.ndarray,
    ratio: float = 0.5,
    tolerance: float = 0.05,
) -> Memorisation:
    """Near-copies of training images among `generated` (all arrays in [0, 1] units).

    A near-copy lies closer to its nearest training image than `ratio` times the median
    distance between a real training image and its nearest OTHER training image. Copies
    (distance ~0) and lightly perturbed copies fall far below that; on PneumoniaMNIST,
    ratio 0.5 (distance < 1.06 in [0, 1] pixel units, median 2.11) covers 1.0% of training
    and 2.1% of validation images, so the region is almost empty for genuinely new images.

    Real datasets contain near-duplicates of their own (several images of one patient):
    39.7% of BreastMNIST validation images are near-copies of a training image by this rule.
    So the share is judged against the share of held-out real images (`held_out`, the
    validation split), which is what a generator that samples the data distribution without
    copying would show. The check fails when the generated share exceeds it by more than
    `tolerance` (5 points: one generated image in 20 copying a patient is already a privacy
    finding worth stopping for) plus two binomial standard errors of the reference share
    (78 validation images in BreastMNIST leave +-5.5 points of noise on it).
    """
    loo, _ = nearest(train, train, exclude_self=True)
    typical = float(np.median(loo))
    threshold = ratio * typical
    distances, index = nearest(generated, train)
    share = float((distances < threshold).mean())
    reference_distances, _ = nearest(held_out, train)
    reference = float((reference_distances < threshold).mean())
    noise = 2 * math.sqrt(reference * (1 - reference) / len(held_out))
    return Memorisation(
        typical_distance=typical,
        threshold=threshold,
        distances=distances,
        nearest_index=index,
        share=share,
        reference_share=reference,
        limit=min(1.0, reference + tolerance + noise),
    )
