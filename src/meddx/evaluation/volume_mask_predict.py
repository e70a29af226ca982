"""`predict` for 3-D segmentation models: the mask and the structure volumes of a NIfTI volume
or a DICOM series folder.

The volume is read and standardised as a volume classifier's is
(meddx.evaluation.volume_predict); the mask goes back to the volume's voxels and is written
as NIfTI in the input's voxel order with the input's affine (a NIfTI file's own, a series'
geometry), so it overlays the input in any viewer; volumes are in mm^3 at the input's
spacing, which both formats state (meddx.evaluation.seg_output).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from torch import nn

from meddx.data import folder, tasks
from meddx.evaluation import seg_output, volume_predict

KIND = "volume"
SUFFIXES = volume_predict.SUFFIXES
SERIES = volume_predict.SERIES


def fits(info: dict[str, Any]) -> bool:
    """Whether a model segments volumes."""
    return volume_predict.fits(info) and info.get("task") == tasks.SEGMENTATION


def predict(
    path: Path,
    net: nn.Module,
    info: dict[str, Any],
    model: str,
    options: DictConfig,
    out_dir: Path,
) -> dict[str, Any]:
    """Segment the volume at `path`; write its mask and measurements; the summary."""
    spec, std = volume_predict.standardisation(info, model, options)
    name = volume_predict.volume_id(path)
    where = f"input {name}"
    x, volume = volume_predict.model_input(path, spec, std, info["dataset_kwargs"], where)
    mask = seg_output.on_volume_grid(seg_output.model_mask(net, x, spec.size), volume, std, where)
    kind = folder.kind_of(path)
    return seg_output.write(
        name,
        volume.in_source_order(mask),
        volume.spacing,
        "the file (NIfTI header or DICOM geometry)",
        info,
        model,
        kind,
        out_dir,
        affine=volume.affine,
    )
