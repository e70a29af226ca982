"""Clinical measurements from masks, in mm: head circumference (HC18) and structure volumes.

A Dice of 0.97 says little to a sonographer; the head circumference in mm, set against the
annotated one (mean absolute difference, mean difference and Bland-Altman limits of
agreement), is what they would act on. The head is the largest connected component of the
mask; its ellipse comes from the component's second moments in mm (the ellipse
scikit-image's `regionprops` reports, computed here with the pixel spacing of each axis,
since resized HC18 pixels are not square), and its circumference from Ramanujan's
approximation, which HC18's own reference values use. Volumes are voxel counts times the
voxel volume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from meddx.io import atomic_path

LOA_Z = 1.96  # Bland-Altman: mean difference +- 1.96 SD holds ~95% of differences


def ramanujan_perimeter(a: float, b: float) -> float:
    """The perimeter of an ellipse with semi-axes `a`, `b` (Ramanujan's first approximation)."""
    return math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest connected foreground region (a stray blob is not part of the head)."""
    labelled, count = ndimage.label(mask > 0)
    if count <= 1:
        return labelled > 0
    sizes = np.bincount(labelled.ravel())[1:]
    return labelled == 1 + int(np.argmax(sizes))


def ellipse_semi_axes(mask: np.ndarray, spacing: Sequence[float]) -> tuple[float, float]:
    """Semi-axes (mm) of the ellipse with the same second moments as the mask's largest region.

    A uniform ellipse of semi-axis a has variance a^2/4 along that axis, hence a = 2 sqrt(var).
    """
    region = ndimage.binary_fill_holes(largest_component(mask))  # a hole is still head
    points = np.argwhere(region) * np.asarray(spacing, dtype=np.float64)
    if len(points) < 3:
        return math.nan, math.nan
    variances = np.linalg.eigvalsh(np.cov(points, rowvar=False))
    minor, major = 2 * np.sqrt(np.clip(variances, 0, None))
    return float(major), float(minor)


def head_circumference(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """HC in mm of a 2-D head mask with `spacing` = mm per pixel (row, column); NaN if empty."""
    return ramanujan_perimeter(*ellipse_semi_axes(mask, spacing))


def structure_volumes(
    mask: np.ndarray, spacing: Sequence[float], labels: Sequence[int]
) -> dict[int, float]:
    """mm^3 of each label in an integer mask with voxel `spacing` (mm per axis)."""
    voxel = float(np.prod(spacing))
    return {label: float((mask == label).sum()) * voxel for label in labels}


def agreement(measured: Sequence[float], reference: Sequence[float]) -> dict[str, float]:
    """Measured against reference: MAD, mean difference (bias), SD and 95% limits of agreement.

    Cases without a measurement (NaN: nothing segmented) are counted, not silently dropped.
    """
    measured_a = np.asarray(measured, dtype=np.float64)
    reference_a = np.asarray(reference, dtype=np.float64)
    diff = measured_a - reference_a
    ok = np.isfinite(diff)
    d = diff[ok]
    sd = float(d.std(ddof=1)) if len(d) > 1 else math.nan
    mean = float(d.mean()) if len(d) else math.nan
    return {
        "n": int(ok.sum()),
        "n_unmeasured": int((~ok).sum()),
        "mad": float(np.abs(d).mean()) if len(d) else math.nan,
        "mean_difference": mean,
        "sd_difference": sd,
        "loa_low": mean - LOA_Z * sd,
        "loa_high": mean + LOA_Z * sd,
    }


def head_circumference_agreement(
    masks: np.ndarray, spacing: np.ndarray, reference_mm: np.ndarray
) -> tuple[dict[str, float], np.ndarray]:
    """HC of each predicted mask `(N, H, W)` (mm, `spacing` `(N, 2)`) against the reference."""
    measured = np.array([head_circumference(m, s) for m, s in zip(masks, spacing, strict=True)])
    return agreement(measured, reference_mm), measured


def volume_agreement(
    predicted: np.ndarray, truth: np.ndarray, spacing: np.ndarray, names: Sequence[str]
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Per structure (every class but the background, `names[0]`): the agreement of predicted
    and labelled volumes (mm^3), and both volumes per case."""
    labels = range(1, len(names))
    cases = zip(predicted, truth, spacing, strict=True)
    pairs = [
        (structure_volumes(p, s, labels), structure_volumes(t, s, labels)) for p, t, s in cases
    ]
    volumes = {names[k]: np.array([[p[k], t[k]] for p, t in pairs]).reshape(-1, 2) for k in labels}
    return {name: agreement(v[:, 0], v[:, 1]) for name, v in volumes.items()}, volumes


def bland_altman(
    path: Path, measured: Sequence[float], reference: Sequence[float], quantity: str, unit: str
) -> Path:
    """A Bland-Altman plot (difference against mean, bias and limits of agreement) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m, r = np.asarray(measured, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    ok = np.isfinite(m) & np.isfinite(r)
    stats = agreement(m, r)
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.scatter((m[ok] + r[ok]) / 2, m[ok] - r[ok], s=10, alpha=0.6)
    for key, style in (("mean_difference", "-"), ("loa_low", "--"), ("loa_high", "--")):
        ax.axhline(stats[key], color="k", linestyle=style, linewidth=1)
        ax.annotate(f"{stats[key]:+.2f}", (1.0, stats[key]), xycoords=("axes fraction", "data"))
    ax.set_xlabel(f"mean of measured and reference {quantity} ({unit})")
    ax.set_ylabel(f"measured - reference ({unit})")
    ax.set_title(f"{quantity}: MAD {stats['mad']:.2f} {unit}, n={stats['n']}")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
