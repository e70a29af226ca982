"""Learning-rate schedules whose milestones follow the run's length.

`Classifier.configure_optimizers` passes `max_epochs` to a scheduler factory that accepts it,
so a recipe written as "x0.1 at 50% and 75% of training" stays right when `cnn.max_epochs`
is overridden (the MedMNIST protocol shortened for time, a 2-epoch test), which a
literal `milestones: [50, 75]` would not.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, MultiStepLR


def multistep(
    optimizer: torch.optim.Optimizer,
    max_epochs: int,
    fractions: Sequence[float] = (0.5, 0.75),
    gamma: float = 0.1,
) -> LRScheduler:
    """MultiStepLR with milestones at these fractions of `max_epochs` (per-epoch interval)."""
    milestones = sorted({max(1, round(f * max_epochs)) for f in fractions})
    return MultiStepLR(optimizer, milestones=milestones, gamma=gamma)


def cosine(optimizer: torch.optim.Optimizer, max_epochs: int, eta_min: float = 0.0) -> LRScheduler:
    """Cosine annealing from the optimizer's learning rate to `eta_min` over the whole run."""
    return CosineAnnealingLR(optimizer, T_max=max_epochs, eta_min=eta_min)
