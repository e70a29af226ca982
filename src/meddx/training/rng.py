"""Random-number state inside Lightning checkpoints, for every module that trains in meddx.

A run resumed from `last.ckpt` must draw the same dropout masks, augmentations and GAN noise
as one that never stopped; Lightning restores weights and optimisers but not the global RNGs.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


class RngInCheckpoints:
    """Mixin for a LightningModule: save and restore the torch, numpy and python RNG states."""

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Tensors and plain numbers only: Lightning resumes with torch.load(weights_only=True),
        # which refuses numpy arrays (numpy's raw state tuple would make every resume fail).
        name, keys, pos, has_gauss, cached = np.random.get_state()
        checkpoint["meddx_rng"] = {
            "torch": torch.get_rng_state(),
            "numpy": [
                name,
                torch.from_numpy(keys.astype(np.int64)),
                int(pos),
                int(has_gauss),
                float(cached),
            ],
            "python": random.getstate(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("meddx_rng")
        if state:
            torch.set_rng_state(state["torch"])
            name, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
            random.setstate(state["python"])
