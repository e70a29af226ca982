"""HC18 fetal head ultrasound (van den Heuvel et al. 2018): images, head masks, pixel sizes.

Each training image `X.png` has `X_Annotation.png`, the sonographer's head ellipse (an
outline in the release, filled in the mirror's copy); the head mask is the filled ellipse.
Images are brought to `data.image.size` (H, W) for training, so the millimetres per pixel
of each axis are recorded per image (`{split}_spacing`), with the reference head
circumference (`{split}_hc_mm`) and the file name (`{split}_ids`): evaluation measures in
mm from these, not from the resized pixels.
Files are read from the mirror only after their MD5 matches the folder's manifest; images
of one pregnancy (`010_HC.png`, `010_2HC.png`) share a group and so a split.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from meddx.data.group_splits import split_cases
from meddx.data.manifest import Manifest, dataset_folder, read_manifest
from meddx.data.npz import SPLITS
from meddx.errors import DataError

SUBDIR = "hc18"
CSV = "training_set_pixel_size_and_HC.csv"
COLUMNS = ("filename", "pixel size(mm)", "head circumference (mm)")
IMAGES = "training_set"
GROUP = re.compile(r"^(\d+)_")
SOLID_EROSION = 3  # px: thicker than a drawn outline, far thinner than any head


@dataclass(frozen=True)
class Case:
    """One image as the CSV lists it."""

    name: str  # e.g. "010_2HC.png"
    pixel_mm: float
    hc_mm: float

    @property
    def group(self) -> str:
        """The pregnancy: the number prefix every image of it shares."""
        match = GROUP.match(self.name)
        if match is None:
            raise DataError(f"{CSV}: {self.name!r} does not start with a '<number>_' prefix")
        return match.group(1)

    @property
    def annotation(self) -> str:
        return self.name.removesuffix(".png") + "_Annotation.png"


def read_cases(path: Path) -> list[Case]:
    """The CSV's rows, refusing a foreign header or a value that is not a positive number."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise DataError(f"{path}: expected the header {','.join(COLUMNS)}")
    cases = []
    for number, row in enumerate(rows[1:], start=2):
        try:
            name, pixel, hc = row
            case = Case(name, float(pixel), float(hc))
        except ValueError:
            raise DataError(f"{path}, line {number}: expected name,pixel_mm,hc_mm") from None
        if not (case.pixel_mm > 0 and case.hc_mm > 0):
            raise DataError(f"{path}, line {number}: pixel size and HC must be positive")
        cases.append(case)
    return cases


def _grey(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path} is not a readable PNG: {exc}") from None


def head_mask(annotation: np.ndarray, path: Path) -> np.ndarray:
    """The filled head ellipse: an outline annotation is filled, a filled one kept as it is.

    HC18's release draws outlines; the mirror's copy holds them already filled. Either way
    the result must be a solid region: an outline that does not close fills to nothing but
    its own thin curve, which erosion removes, and is refused rather than trained on.
    """
    filled = ndimage.binary_fill_holes(annotation > 0)
    solid = ndimage.binary_erosion(filled, iterations=SOLID_EROSION).sum()
    if solid < 0.5 * filled.sum() or not solid:
        raise DataError(f"{path}: the head annotation encloses no area (an outline not closed?)")
    return filled


def _resized(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear to (H, W): grey images stay uint8; a 0/255 mask is thresholded back at half."""
    image = Image.fromarray(pixels).resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(image)


def read_case(manifest: Manifest, case: Case, shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """(image uint8 (H, W), mask uint8 0/1 (H, W), mm per pixel (row, column)) of one case."""
    image_path = manifest.folder / IMAGES / case.name
    annotation_path = manifest.folder / IMAGES / case.annotation
    if image_path.is_file() and not annotation_path.is_file():
        raise DataError(f"{image_path} has no annotation: {annotation_path} is missing")
    image = _grey(manifest.path(f"{IMAGES}/{case.name}"))
    outline = _grey(manifest.path(f"{IMAGES}/{case.annotation}"))
    if outline.shape != image.shape:
        raise DataError(
            f"{annotation_path} is {outline.shape[1]}x{outline.shape[0]} px but its image "
            f"{image_path} is {image.shape[1]}x{image.shape[0]}: they must match"
        )
    mask = head_mask(outline, annotation_path).astype(np.uint8) * 255
    spacing = case.pixel_mm * np.array(image.shape, dtype=np.float64) / np.array(shape)
    return _resized(image, shape), (_resized(mask, shape) >= 128).astype(np.uint8), spacing


def load_hc18(spec: DictConfig, mirror: Path | None, limit: int | None = None) -> dict:
    """The dataset layout of HC18 (optionally its first `limit` CSV rows), split by pregnancy.

    Besides `{split}_images` / `{split}_labels` (masks, 1 = head), each split carries
    `_spacing` (mm per pixel, row and column, after resizing), `_hc_mm` (the reference head
    circumference) and `_ids` (file names); `split_rule` records how the split was drawn.
    """
    manifest = read_manifest(dataset_folder(mirror, SUBDIR, "HC18"), spec.manifest_sha256)
    cases = read_cases(manifest.path(CSV))[:limit]
    shape = (int(spec.size[0]), int(spec.size[1]))
    arrays = split_cases(
        [case.group for case in cases],
        [case.name for case in cases],
        spec.split,
        lambda i: read_case(manifest, cases[i], shape),
        "pregnancy (the number prefix)",
    )
    hc_mm = {case.name: case.hc_mm for case in cases}
    for split in SPLITS:
        arrays[f"{split}_hc_mm"] = np.array([hc_mm[str(n)] for n in arrays[f"{split}_ids"]])
    return arrays
