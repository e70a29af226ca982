"""Standardising volumes per modality (`data.image.standardise`), with MONAI transforms.

Volumes from different scanners differ in voxel spacing, matrix and intensity scale; a
network sees them alike only after three configured steps, in this order:
1. spacing (`spacing: [d, h, w]` mm, or null to keep the scanner's voxels): MONAI `Spacing`
   resamples trilinearly to it;
2. intensity per modality, on the whole volume before any padding, so padding cannot shift
   a percentile or a mean:
   - `ct`: the HU window `window: [low, high]` to [0, 1], clipped (MONAI
     `ScaleIntensityRange`): HU are absolute, so one window means the same tissue everywhere;
   - `mri`: MRI intensities have no absolute unit, so each volume is normalised on its own:
     `mri_norm: percentile` maps its `percentiles` (default 0.5, 99.5) to [0, 1], clipped
     (`ScaleIntensityRangePercentiles`); `zscore` gives it mean 0 and sd 1
     (`NormalizeIntensity`), then maps -3..3 sd to [0, 1], clipped, to fit the stored uint8;
   - `other`: per-volume percentiles, as `mri: percentile`;
3. size: `resize: resize` scales the whole volume to `data.image.size` voxels a side (MONAI
   `Resize`, the aspect ratio follows) in `area` mode: shrinking averages the voxels each
   output voxel covers, which is the anti-aliasing. Not `trilinear` with `anti_aliasing`:
   its Gaussian pre-filter pads with zeros and darkens the faces (measured: a uniform 40 HU
   volume resampled to 2 mm and resized to 8^3 came out at 28 HU on its faces, uint8 120
   instead of 128); `pad_crop` centre-crops or pads it
   (`ResizeWithPadOrCrop`, padding with 0 = the window's low end) and keeps the spacing,
   `null` requires it to be that size already, and a volume that is not is a DataError.
The volumes are cubes of `data.image.size`: every network and the MedMNIST 3D layout take
cubes. The result is stored as uint8 in [0, 255], like every other dataset.

MONAI is imported inside `transform` only: importing it costs seconds, which the MedMNIST
and synthetic paths never pay. The configuration is parsed (and refused with a ConfigError
naming the key) when the dataset facts are read, before any file is opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from meddx.data.volume import Volume
from meddx.errors import ConfigError, DataError

MODALITIES = ("ct", "mri", "other")
MRI_NORMS = ("percentile", "zscore")
RESIZES = ("resize", "pad_crop", None)
ZSCORE_SPAN = 3.0  # z-scores -3..3 are mapped to [0, 1]
DICOM_MODALITY = {"ct": "CT", "mri": "MR"}  # what a DICOM series of that config must say
KEY = "data.image.standardise"


@dataclass(frozen=True)
class Standardisation:
    modality: str
    size: int
    spacing: tuple[float, float, float] | None
    resize: str | None
    window: tuple[float, float] | None
    mri_norm: str | None
    percentiles: tuple[float, float]

    def facts(self) -> dict[str, Any]:
        """What `images.json` (and so MLflow) records about how the volumes were made."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def of_facts(cls, facts: dict[str, Any]) -> Standardisation:
        """The standardisation `facts()` recorded (in images.json, or in a model's info)."""

        def pair(value: Any) -> Any:
            return tuple(float(v) for v in value) if value is not None else None

        return cls(
            str(facts["modality"]),
            int(facts["size"]),
            pair(facts["spacing"]),
            facts["resize"],
            pair(facts["window"]),
            facts["mri_norm"],
            pair(facts["percentiles"]),
        )

    def with_window(self, window: list[float] | None) -> Standardisation:
        """The standardisation with another intensity window (None keeps this one's)."""
        if window is None:
            return self
        return replace(self, window=(float(window[0]), float(window[1])))


def stored_scale(size: int) -> Standardisation:
    """What a volume dataset stored as uint8 cubes (synthetic, MedMNIST 3D) did to its voxels,
    as a standardisation: none beyond the 0..255 voxel scale and the cube's side. A new volume
    in those units (a NIfTI copy of a stored volume) comes out as the stored one, voxel for
    voxel; another volume is resized to the cube, and other units need their own window."""
    return Standardisation("other", size, None, "resize", (0.0, 255.0), None, (0.5, 99.5))


def _pair(value: Any, key: str, low: float = -np.inf, high: float = np.inf) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2 or not value[0] < value[1]:
        raise ConfigError(f"{KEY}.{key}={value}: give [low, high] with low < high")
    if value[0] < low or value[1] > high:
        raise ConfigError(f"{KEY}.{key}={value}: both bounds must lie within {low}..{high}")
    return float(value[0]), float(value[1])


def standardisation(spec: DictConfig) -> Standardisation:
    """The standardisation `spec` (`cfg.data.image`) configures, or a ConfigError naming the key."""
    options = spec.get("standardise")
    if options is None:
        raise ConfigError(
            f"{KEY} is missing: volumes of your own need it (spacing, resize, modality and "
            "its intensity rule); start from conf/data/image/folder3d.yaml"
        )
    given = OmegaConf.to_container(options, resolve=True)
    assert isinstance(given, dict)
    known = {"modality", "spacing", "resize", "window", "mri_norm", "percentiles"}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"{KEY} has unknown key(s) {unknown}; known: {sorted(known)}")
    modality = given.get("modality")
    if modality not in MODALITIES:
        raise ConfigError(f"{KEY}.modality={modality!r} is not one of {list(MODALITIES)}")
    resize = given.get("resize")
    if resize not in RESIZES:
        raise ConfigError(f"{KEY}.resize={resize!r} is not one of {list(RESIZES)}")
    spacing = given.get("spacing")
    if spacing is not None and (
        not isinstance(spacing, list) or len(spacing) != 3 or min(spacing) <= 0
    ):
        raise ConfigError(f"{KEY}.spacing={spacing}: give [d, h, w] mm, each > 0, or null")
    window = _pair(given.get("window"), "window") if modality == "ct" else None
    mri_norm = given.get("mri_norm") if modality == "mri" else None
    if modality == "mri" and mri_norm not in MRI_NORMS:
        raise ConfigError(f"{KEY}.mri_norm={mri_norm!r} is not one of {list(MRI_NORMS)}")
    percentiles = _pair(given.get("percentiles", [0.5, 99.5]), "percentiles", 0.0, 100.0)
    return Standardisation(
        modality,
        int(spec.size),
        tuple(float(s) for s in spacing) if spacing is not None else None,  # type: ignore[arg-type]
        resize,
        window,
        mri_norm,
        percentiles,
    )


def transform(std: Standardisation) -> Callable[[Volume, str], np.ndarray]:
    """`(volume, where) -> (size, size, size)` uint8: the standardised voxels of one volume."""
    import torch
    from monai.data import MetaTensor
    from monai.transforms import (
        NormalizeIntensity,
        Resize,
        ResizeWithPadOrCrop,
        ScaleIntensityRange,
        ScaleIntensityRangePercentiles,
        Spacing,
    )

    cube = (std.size,) * 3
    resample = Spacing(pixdim=std.spacing, mode="bilinear") if std.spacing else None
    if std.window is not None:
        intensity = [ScaleIntensityRange(*std.window, 0.0, 1.0, clip=True)]
    elif std.mri_norm == "zscore":
        intensity = [
            NormalizeIntensity(),
            ScaleIntensityRange(-ZSCORE_SPAN, ZSCORE_SPAN, 0.0, 1.0, clip=True),
        ]
    else:
        intensity = [ScaleIntensityRangePercentiles(*std.percentiles, 0.0, 1.0, clip=True)]
    sizing = {
        "resize": Resize(cube, mode="area"),
        "pad_crop": ResizeWithPadOrCrop(cube),
        None: None,
    }[std.resize]

    def apply(volume: Volume, where: str) -> np.ndarray:
        expected = DICOM_MODALITY.get(std.modality)
        if volume.modality is not None and expected and volume.modality != expected:
            raise DataError(
                f"{where}: the DICOM series is {volume.modality}, but {KEY}.modality="
                f"{std.modality} (expects {expected}); list one modality per dataset"
            )
        affine = torch.diag(torch.tensor([*volume.spacing, 1.0], dtype=torch.float64))
        x: Any = MetaTensor(torch.from_numpy(volume.voxels[None]), affine=affine)
        if resample is not None:
            x = resample(x)
        for step in intensity:
            x = step(x)
        if sizing is not None:
            x = sizing(x)
        out = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)[0]
        if out.shape != cube:
            raise DataError(
                f"{where}: the volume is {'x'.join(map(str, out.shape))} voxels after "
                f"standardisation, but data.image.size={std.size} wants "
                f"{'x'.join(map(str, cube))} and {KEY}.resize is null; set resize to resize "
                "or pad_crop, or give volumes of that size"
            )
        return np.clip(np.round(np.clip(out, 0.0, 1.0) * 255), 0, 255).astype(np.uint8)

    return apply
