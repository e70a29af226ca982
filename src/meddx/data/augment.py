"""Training-only augmentation applied to whole batches (on the device, inside the training step).

Which flips are allowed is a per-dataset choice (a chest X-ray has a left and a right; an
ultrasound or a pathology tile does not care), so every operation is off unless configured.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from meddx.errors import ConfigError


class BatchAugment(nn.Module):
    """Random integer shifts (zero padded), optional flips, optional small rotations and
    zooms, and optional cutout, per sample, vectorised.

    `rotate` (degrees) and `scale` (fraction) resample the image (bilinear), so they are for
    datasets where the exact pixel grid carries nothing: a few degrees of probe tilt on an
    ultrasound, say. With both at 0 the shifts stay exact pixel moves.

    `cutout` (DeVries & Taylor, 2017) sets one square of that side to 0, the value shifts pad
    with, centred anywhere in the image (so it may be clipped by the border): a regulariser for
    small training sets, where a network otherwise leans on a few pixels of each image.
    """

    def __init__(
        self,
        shift: int = 0,
        hflip: bool = False,
        vflip: bool = False,
        rotate: float = 0.0,
        scale: float = 0.0,
        cutout: int = 0,
    ) -> None:
        super().__init__()
        for name, pixels in (("shift", shift), ("cutout", cutout)):
            if not isinstance(pixels, int) or pixels < 0:
                raise ConfigError(f"data.image.augment.{name}={pixels!r}: whole pixels, >= 0")
        if not 0 <= rotate <= 180:
            raise ConfigError(f"data.image.augment.rotate={rotate!r}: degrees in [0, 180]")
        if not 0 <= scale < 1:
            raise ConfigError(f"data.image.augment.scale={scale!r}: a fraction in [0, 1)")
        self.shift = shift
        self.hflip = hflip
        self.vflip = vflip
        self.rotate = rotate
        self.scale = scale
        self.cutout = cutout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if self.hflip:
            mask = torch.rand(n, device=x.device) < 0.5
            x = torch.where(mask[:, None, None, None], x.flip(-1), x)
        if self.vflip:
            mask = torch.rand(n, device=x.device) < 0.5
            x = torch.where(mask[:, None, None, None], x.flip(-2), x)
        if self.shift:
            h, w = x.shape[-2:]
            steps = torch.randint(-self.shift, self.shift + 1, (n, 2), device=x.device)
            theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
            theta[:, 0, 0] = 1
            theta[:, 1, 1] = 1
            theta[:, 0, 2] = steps[:, 1].to(x.dtype) * 2 / w
            theta[:, 1, 2] = steps[:, 0].to(x.dtype) * 2 / h
            x = _resample(x, theta, "nearest")
        if self.rotate or self.scale:
            x = self._rotate_and_zoom(x)
        if self.cutout:
            x = self._cut_out(x)
        return x

    def _rotate_and_zoom(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        angle = (torch.rand(n, device=x.device, dtype=x.dtype) * 2 - 1) * self.rotate
        angle = torch.deg2rad(angle)
        zoom = 1 + (torch.rand(n, device=x.device, dtype=x.dtype) * 2 - 1) * self.scale
        theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = torch.cos(angle) / zoom
        theta[:, 0, 1] = -torch.sin(angle) / zoom
        theta[:, 1, 0] = torch.sin(angle) / zoom
        theta[:, 1, 1] = torch.cos(angle) / zoom
        return _resample(x, theta, "bilinear")

    def _cut_out(self, x: torch.Tensor) -> torch.Tensor:
        n, (h, w) = x.shape[0], x.shape[-2:]
        top = torch.randint(0, h, (n, 1, 1), device=x.device) - self.cutout // 2
        left = torch.randint(0, w, (n, 1, 1), device=x.device) - self.cutout // 2
        rows = torch.arange(h, device=x.device)[None, :, None]
        cols = torch.arange(w, device=x.device)[None, None, :]
        inside = (rows >= top) & (rows < top + self.cutout) & (cols >= left)
        inside &= cols < left + self.cutout
        return x.masked_fill(inside[:, None], 0)


def _resample(x: torch.Tensor, theta: torch.Tensor, mode: str) -> torch.Tensor:
    """Apply per-sample affine maps (zero padding outside the image)."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)
