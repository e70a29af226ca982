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
    zooms, optional intensity jitter and optional cutout, per sample, vectorised, for images
    (N, C, H, W) and volumes (N, C, D, H, W) alike: the spatial axes are read from the batch.

    `hflip` mirrors the last axis (W), `vflip` the one before (H), `dflip` the depth axis of
    a volume (D). `rotate` (degrees) and `scale` (fraction) resample the image (bilinear;
    trilinear for volumes, rotated about each axis by up to `rotate`), so they are for
    datasets where the exact pixel grid carries nothing: a few degrees of probe tilt on an
    ultrasound, say. With both at 0 the shifts stay exact pixel moves.

    `intensity_scale` and `intensity_shift` multiply each sample by 1 + U(-s, s) and add
    U(-t, t) (MONAI's RandScaleIntensity and RandShiftIntensity, batched): scanner gain and
    offset vary between sites, the anatomy does not.

    `cutout` (DeVries & Taylor, 2017) sets one square (a cube in a volume) of that side to 0,
    the value shifts pad with, centred anywhere (so it may be clipped by the border): a
    regulariser for small training sets, where a network otherwise leans on a few pixels.

    A segmentation batch goes through `pair`, which moves each image's mask with it.

    Batched torch rather than MONAI's per-sample transforms: it runs inside the training step
    on whole batches, and `import monai.transforms` alone costs seconds per process.
    """

    def __init__(
        self,
        shift: int = 0,
        hflip: bool = False,
        vflip: bool = False,
        rotate: float = 0.0,
        scale: float = 0.0,
        cutout: int = 0,
        dflip: bool = False,
        intensity_scale: float = 0.0,
        intensity_shift: float = 0.0,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        for name, pixels in (("shift", shift), ("cutout", cutout)):
            if not isinstance(pixels, int) or pixels < 0:
                raise ConfigError(f"data.image.augment.{name}={pixels!r}: whole pixels, >= 0")
        if not 0 <= rotate <= 180:
            raise ConfigError(f"data.image.augment.rotate={rotate!r}: degrees in [0, 180]")
        if not 0 <= scale < 1:
            raise ConfigError(f"data.image.augment.scale={scale!r}: a fraction in [0, 1)")
        for name, value in (
            ("intensity_scale", intensity_scale),
            ("intensity_shift", intensity_shift),
        ):
            if not value >= 0:
                raise ConfigError(f"data.image.augment.{name}={value!r}: a magnitude >= 0")
        if dflip and spatial_dims != 3:
            raise ConfigError(
                "data.image.augment.dflip mirrors the depth axis of volumes; this dataset holds "
                f"{spatial_dims}-D images: set it to false"
            )
        self.shift = shift
        self.hflip = hflip
        self.vflip = vflip
        self.dflip = dflip
        self.rotate = rotate
        self.scale = scale
        self.cutout = cutout
        self.intensity_scale = float(intensity_scale)
        self.intensity_shift = float(intensity_shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pair(x)[0]

    def pair(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`x` augmented, and its `mask` (N, *spatial) of class indices moved with it.

        The geometric transforms (flips, shifts, rotations, zooms) move the image and the mask
        by the same draw, the mask resampled by nearest neighbour (a class index has no
        in-between) with background padding; intensity jitter and cutout change the image
        only, since the anatomy under a darker or hidden patch is still there. The mask takes
        no random draws of its own: an image augmented with or without one is the same image.
        """
        n, dims = x.shape[0], x.dim() - 2
        per_sample = (n,) + (1,) * (x.dim() - 1)
        for axis, enabled in ((-1, self.hflip), (-2, self.vflip), (-3, self.dflip)):
            if enabled:
                flip = torch.rand(n, device=x.device) < 0.5
                x = torch.where(flip.view(per_sample), x.flip(axis), x)
                if mask is not None:
                    mask = torch.where(flip.view(per_sample[:-1]), mask.flip(axis), mask)
        if self.shift:
            steps = torch.randint(-self.shift, self.shift + 1, (n, dims), device=x.device)
            theta = torch.zeros(n, dims, dims + 1, device=x.device, dtype=x.dtype)
            for i in range(dims):  # grid axis i runs along tensor axis -1 - i (x = W, y = H, z = D)
                theta[:, i, i] = 1
                theta[:, i, dims] = steps[:, dims - 1 - i].to(x.dtype) * 2 / x.shape[-1 - i]
            x = _resample(x, theta, "nearest")
            mask = _resample_mask(mask, theta)
        if self.rotate or self.scale:
            theta = self._rotation_and_zoom(x) if dims == 2 else self._rotation_and_zoom_volume(x)
            x = _resample(x, theta, "bilinear")  # trilinear on a 5-D batch
            mask = _resample_mask(mask, theta)
        if self.intensity_scale or self.intensity_shift:
            x = self._jitter(x, per_sample)
        if self.cutout:
            x = self._cut_out(x)
        return x, mask

    def _rotation_and_zoom(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample affine maps of a rotation by up to `rotate` and a zoom by up to `scale`."""
        n = x.shape[0]
        angle = (torch.rand(n, device=x.device, dtype=x.dtype) * 2 - 1) * self.rotate
        angle = torch.deg2rad(angle)
        zoom = 1 + (torch.rand(n, device=x.device, dtype=x.dtype) * 2 - 1) * self.scale
        theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = torch.cos(angle) / zoom
        theta[:, 0, 1] = -torch.sin(angle) / zoom
        theta[:, 1, 0] = torch.sin(angle) / zoom
        theta[:, 1, 1] = torch.cos(angle) / zoom
        return theta

    def _rotation_and_zoom_volume(self, x: torch.Tensor) -> torch.Tensor:
        """A rotation about each of the three axes by up to `rotate`, then one zoom."""
        n = x.shape[0]
        angles = torch.deg2rad(
            (torch.rand(n, 3, device=x.device, dtype=x.dtype) * 2 - 1) * self.rotate
        )
        zoom = 1 + (torch.rand(n, device=x.device, dtype=x.dtype) * 2 - 1) * self.scale
        rotation = torch.eye(3, device=x.device, dtype=x.dtype).expand(n, 3, 3)
        for axis in range(3):
            cos, sin = torch.cos(angles[:, axis]), torch.sin(angles[:, axis])
            turn = torch.eye(3, device=x.device, dtype=x.dtype).repeat(n, 1, 1)
            a, b = [i for i in range(3) if i != axis]
            turn[:, a, a], turn[:, a, b], turn[:, b, a], turn[:, b, b] = cos, -sin, sin, cos
            rotation = turn @ rotation
        theta = torch.zeros(n, 3, 4, device=x.device, dtype=x.dtype)
        theta[:, :, :3] = rotation / zoom[:, None, None]
        return theta

    def _jitter(self, x: torch.Tensor, per_sample: tuple[int, ...]) -> torch.Tensor:
        n = x.shape[0]
        gain = 1 + (torch.rand(n, device=x.device, dtype=x.dtype) * 2 - 1) * self.intensity_scale
        offset = (torch.rand(n, device=x.device, dtype=x.dtype) * 2 - 1) * self.intensity_shift
        return x * gain.view(per_sample) + offset.view(per_sample)

    def _cut_out(self, x: torch.Tensor) -> torch.Tensor:
        n, sides = x.shape[0], x.shape[2:]
        dims = len(sides)
        inside = torch.ones((n, *sides), dtype=torch.bool, device=x.device)
        for axis, side in enumerate(sides):
            start = torch.randint(0, side, (n,) + (1,) * dims, device=x.device) - self.cutout // 2
            shape = [1] * (dims + 1)
            shape[axis + 1] = side
            coords = torch.arange(side, device=x.device).view(shape)
            inside &= (coords >= start) & (coords < start + self.cutout)
        return x.masked_fill(inside[:, None], 0)


def _resample(x: torch.Tensor, theta: torch.Tensor, mode: str) -> torch.Tensor:
    """Apply per-sample affine maps (zero padding outside the image)."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def _resample_mask(mask: torch.Tensor | None, theta: torch.Tensor) -> torch.Tensor | None:
    """A class-index mask (N, *spatial) moved by `theta`: nearest neighbour, background outside."""
    if mask is None:
        return None
    moved = _resample(mask[:, None].to(theta.dtype), theta, "nearest")
    return moved[:, 0].round().to(mask.dtype)
