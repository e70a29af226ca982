"""The user's own images (`data/image=folder`): PNG/JPEG, DICOM or NIfTI plus `labels.csv`,
or their own volumes (`data/image=folder3d`, `spatial_dims: 3`): NIfTI files and DICOM series
folders, read by meddx.data.volume_readers and standardised by meddx.data.standardise.

`labels.csv` has the columns `file,label[,split]`: `file` relative to the folder, `label` a
class name from `data.image.class_names` or its index (multi-label: several joined by `;`),
`split` one of train/val/test. Without a split column the split is drawn per class with the
run's seed (stratified), so it is the same on every run.

Each image becomes one uint8 sample of the MedMNIST layout, with MONAI transforms:
channel-first, intensity to [0, 1] (8/16-bit PNG/JPEG by their bit depth; DICOM and NIfTI
by the fixed `window` in modality units when given, e.g. a CT window in HU, else by the
image's own 0.5-99.5 percentiles), a centred square crop (as MedMNIST does), resize to
`size` with anti-aliasing, and the configured channel count. MONAI costs ~7-15 s to import
here, paid only by this one-off conversion, never by the MedMNIST path.

Errors name the labels.csv line, never the file name: file names of clinical exports often
carry patient names, and error messages end up in MLflow tags.

Only files inside the folder are read: a listed path that leads out of it (`..`, an absolute
path, a symbolic link to elsewhere) is refused before anything opens it, so a labels.csv
cannot make the pipeline read, and store as training data, files it was not given.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from meddx.data.npz import SPLITS
from meddx.data.volume_readers import NIFTI_SUFFIXES
from meddx.errors import ConfigError, DataError

PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom")


@dataclass(frozen=True)
class Row:
    line: int
    path: Path
    label: np.ndarray  # (1,) class index, or (num_classes,) multi-hot
    split: str | None

    @property
    def where(self) -> str:
        return f"labels.csv line {self.line}"


def kind_of(path: Path) -> str:
    if path.is_dir():
        return "series"
    name = path.name.lower()
    for kind, suffixes in (
        ("pil", PIL_SUFFIXES),
        ("dicom", DICOM_SUFFIXES),
        ("nifti", NIFTI_SUFFIXES),
    ):
        if name.endswith(suffixes):
            return kind
    return "unknown"


def _parse_label(text: str, class_names: list[str], task: str, where: str) -> np.ndarray:
    def index(token: str) -> int:
        token = token.strip()
        if token in class_names:
            return class_names.index(token)
        if re.fullmatch(r"-?[0-9]+", token):  # str.isdigit also takes "²", which int() refuses
            value = int(token)
            if 0 <= value < len(class_names):
                return value
            raise DataError(
                f"{where}: label {value} is out of range 0..{len(class_names) - 1} "
                f"(classes: {class_names})"
            )
        raise DataError(f"{where}: label {token!r} is not one of {class_names}")

    if task == "multi-label":
        hot = np.zeros(len(class_names), dtype=np.int64)
        for token in filter(None, (t.strip() for t in text.split(";"))):
            hot[index(token)] = 1
        return hot
    return np.array([index(text)], dtype=np.int64)


def inside(folder: Path, listed: str, where: str) -> Path:
    """`folder / listed` when it resolves (symbolic links followed) inside `folder`."""
    path = folder / listed
    if not path.resolve().is_relative_to(folder.resolve()):
        raise DataError(
            f"{where}: the file it names lies outside the image folder (through '..', an "
            "absolute path or a symbolic link); copy the file into the folder and list it "
            "by its path relative to the folder"
        )
    return path


def _rows(
    reader: csv.DictReader, folder: Path, csv_path: Path, class_names: list[str], task: str
) -> list[Row]:
    missing = {"file", "label"} - set(reader.fieldnames or ())
    if missing:
        raise DataError(
            f"{csv_path} lacks the column(s) {sorted(missing)}; expected file,label[,split]"
        )
    has_split = "split" in (reader.fieldnames or ())
    rows: list[Row] = []
    for record in reader:
        where = f"labels.csv line {reader.line_num}"
        cells = {key: record.get(key) for key in ("file", "label", "split")}
        if (
            cells["file"] is None
            or cells["label"] is None
            or (has_split and cells["split"] is None)
        ):
            raise DataError(f"{where}: the row has fewer cells than the header")
        split = cells["split"].strip() if has_split else None
        if has_split and split not in SPLITS:
            raise DataError(f"{where}: split {split!r} is not one of {list(SPLITS)}")
        try:  # the error holds no name: the name may be a patient's
            path = inside(folder, cells["file"].strip(), where)
            if path.resolve() == folder.resolve():  # an empty cell, ".", "sub/.."
                raise DataError(
                    f"{where}: the file cell names the image folder itself; give a file "
                    "(or a DICOM series folder) inside it"
                )
            found = path.is_file() or path.is_dir()  # a folder: one DICOM series
        except (ValueError, OSError) as exc:  # a NUL byte, a name too long for the system
            raise DataError(
                f"{where}: the file name it gives is not a usable path ({type(exc).__name__})"
            ) from None
        if not found:
            raise DataError(f"{where}: the file it names does not exist in {folder}")
        rows.append(
            Row(
                reader.line_num, path, _parse_label(cells["label"], class_names, task, where), split
            )
        )
    return rows


def read_labels(folder: Path, labels_file: str, class_names: list[str], task: str) -> list[Row]:
    csv_path = folder / labels_file
    if not csv_path.is_file():
        raise DataError(
            f"{csv_path} is missing: the folder source needs a labels file with "
            "the columns file,label[,split]"
        )
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            rows = _rows(csv.DictReader(handle), folder, csv_path, class_names, task)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(
            f"{csv_path} is not a UTF-8 CSV file ({type(exc).__name__}: {exc}); save it as "
            "UTF-8 CSV with the columns file,label[,split]"
        ) from None
    if not rows:
        raise DataError(f"{csv_path} lists no images")
    return rows


def assign_splits(
    rows: list[Row], val_fraction: float, test_fraction: float, seed: int
) -> list[str]:
    """The csv's splits, else a seeded split per class (first positive label for multi-label)."""
    if rows[0].split is not None:
        return [row.split for row in rows]  # type: ignore[misc]
    if min(val_fraction, test_fraction) < 0 or val_fraction + test_fraction >= 1:
        raise ConfigError("data.image.folder.val_fraction + test_fraction must be within [0, 1)")
    strata = np.array(
        [int(np.argmax(row.label)) if len(row.label) > 1 else int(row.label[0]) for row in rows]
    )
    splits = np.full(len(rows), "train", dtype=object)
    rng = np.random.default_rng(seed)
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        n_test = round(len(members) * test_fraction)
        n_val = round(len(members) * val_fraction)
        splits[members[:n_test]] = "test"
        splits[members[n_test : n_test + n_val]] = "val"
    return list(splits)


def check_listed_once(rows: list[Row], splits: list[str]) -> None:
    """A file listed on two lines would count twice (one split) or leak (two splits)."""
    first: dict[Path, tuple[int, str]] = {}
    for row, split in zip(rows, splits, strict=True):
        line, first_split = first.setdefault(row.path.resolve(), (row.line, split))
        if line != row.line:
            where = f"split {split}" if split == first_split else f"splits {first_split}, {split}"
            raise DataError(
                f"labels.csv line {row.line} lists the same file as line {line} ({where}): "
                "list each file once"
            )


def _digest(path: Path) -> str:
    """A file's bytes, or a series folder's files whatever their names and order."""
    if path.is_dir():
        parts = sorted(_digest(p) for p in path.iterdir() if p.is_file())
        return hashlib.blake2b("".join(parts).encode(), digest_size=16).hexdigest()
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def check_duplicate_files(rows: list[Row], splits: list[str]) -> None:
    """Byte-identical files (or series folders) in two splits, by csv line, before decoding."""
    first: dict[str, tuple[int, str]] = {}
    clashes = []
    for row, split in zip(rows, splits, strict=True):
        digest = _digest(row.path)
        seen = first.setdefault(digest, (row.line, split))
        if seen[1] != split:
            clashes.append(f"line {seen[0]} ({seen[1]}) = line {row.line} ({split})")
    if clashes:
        raise DataError(
            "labels.csv puts identical files in more than one split (leakage): "
            + ", ".join(clashes[:10])
        )


def load_image(row: Row) -> tuple[np.ndarray, float | None]:
    """Finite pixels `(H, W)` or `(H, W, 3)` and their full-scale value (None: modality units)."""
    return read_image(row.path, row.where)


def read_image(
    path: Path, where: str, middle_slice: bool = True
) -> tuple[np.ndarray, float | None]:
    """`load_image` for a file outside a labels.csv (`predict`); `where` names it in errors
    without its path, which may hold a patient name. `middle_slice=False` refuses a 3-D
    NIfTI volume instead of taking its middle slice (`predict` with a 2-D model: a volume
    is not one of its images)."""
    pixels, full_scale = _decode(path, where, middle_slice)
    if not np.isfinite(pixels).all():
        raise DataError(f"{where}: the image holds NaN or infinite values")
    return pixels, full_scale


def _decode(path: Path, where: str, middle_slice: bool = True) -> tuple[np.ndarray, float | None]:
    kind = kind_of(path)
    if kind == "series":
        raise DataError(
            f"{where}: names a folder (a DICOM series); volumes need "
            "data.image.spatial_dims=3 (see conf/data/image/folder3d.yaml)"
        )
    if kind == "dicom":
        from meddx.data.dicom import read_pixels

        return read_pixels(path, where), None
    if kind == "nifti":
        import nibabel as nib

        try:
            volume = nib.as_closest_canonical(nib.load(path)).get_fdata(dtype=np.float32)
        except Exception as exc:  # nibabel raises many types for broken files
            raise DataError(f"{where}: not a readable NIfTI file ({type(exc).__name__})") from None
        volume = np.squeeze(volume)
        if volume.ndim == 3 and not middle_slice:
            raise DataError(
                f"{where}: is a 3-D NIfTI volume of shape {volume.shape}, but the model takes "
                "2-D images: give a 2-D image, or choose a model trained on volumes "
                "(data.image.spatial_dims: 3)"
            )
        if volume.ndim == 3:  # a 2D pipeline takes the middle axial slice, anterior up
            volume = volume[:, :, volume.shape[2] // 2]
        if volume.ndim != 2:
            raise DataError(f"{where}: NIfTI data of shape {volume.shape} is not 2D or 3D")
        return np.rot90(volume).copy(), None
    if kind == "pil":
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                    return np.asarray(image, dtype=np.float32), 65535.0
                image = image.convert("RGB" if image.mode in ("RGB", "RGBA", "P", "CMYK") else "L")
                return np.asarray(image, dtype=np.float32), 255.0
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{where}: not a readable image ({type(exc).__name__})") from None
    raise DataError(
        f"{where}: unsupported file type; supported: "
        f"{', '.join(PIL_SUFFIXES + DICOM_SUFFIXES + NIFTI_SUFFIXES)}"
    )


def transform_for(
    size: int, channels: int, window: list[float] | None
) -> Callable[[np.ndarray, float | None], np.ndarray]:
    """Pixels and their full scale -> one stored uint8 sample: the folder source's images and
    `predict`'s inputs go through this one function (meddx.data.image_spec)."""
    from monai.transforms import (
        CenterSpatialCrop,
        EnsureChannelFirst,
        RepeatChannel,
        Resize,
        ScaleIntensityRange,
        ScaleIntensityRangePercentiles,
    )

    resize = Resize((size, size), mode="bilinear", anti_aliasing=True)
    repeat = RepeatChannel(channels)

    def apply(pixels: np.ndarray, full_scale: float | None) -> np.ndarray:
        x = EnsureChannelFirst(channel_dim=-1 if pixels.ndim == 3 else "no_channel")(pixels)
        if full_scale is not None:
            x = ScaleIntensityRange(0.0, full_scale, 0.0, 1.0, clip=True)(x)
        elif window is not None:
            x = ScaleIntensityRange(window[0], window[1], 0.0, 1.0, clip=True)(x)
        else:
            x = ScaleIntensityRangePercentiles(0.5, 99.5, 0.0, 1.0, clip=True)(x)
        side = min(x.shape[1:])
        x = resize(CenterSpatialCrop((side, side))(x))
        x = np.asarray(x, dtype=np.float32)
        if x.shape[0] == 3 and channels == 1:  # ITU-R BT.601 luma
            x = np.tensordot(np.array([0.299, 0.587, 0.114], dtype=np.float32), x, axes=1)[None]
        elif x.shape[0] == 1 and channels > 1:
            x = np.asarray(repeat(x))
        elif x.shape[0] != channels:
            raise DataError(f"cannot turn {x.shape[0]} channel(s) into {channels}")
        out = np.clip(np.round(x * 255), 0, 255).astype(np.uint8)
        return out[0] if channels == 1 else out.transpose(1, 2, 0)

    return apply


Sampler = Callable[[Row], np.ndarray]
Described = Callable[[], dict[str, str]]  # what the samples read so far were, as tags


def _image_sampler(spec: DictConfig) -> tuple[Sampler, tuple[int, ...], Described]:
    """One uint8 image per row, the shape of one, and (nothing) to record about them."""
    window = list(spec.folder.window) if spec.folder.window is not None else None
    transform = transform_for(spec.size, spec.channels, window)

    def sample(row: Row) -> np.ndarray:
        pixels, full_scale = load_image(row)
        try:
            return transform(pixels, full_scale)
        except DataError as exc:
            raise DataError(f"{row.where}: {exc}") from None

    shape = (spec.size, spec.size) + ((spec.channels,) if spec.channels > 1 else ())
    return sample, shape, dict


def _volume_sampler(spec: DictConfig) -> tuple[Sampler, tuple[int, ...], Described]:
    """One standardised uint8 volume per row (meddx.data.standardise), the shape of one, and
    the modalities and spacings of the volumes as read."""
    from meddx.data.standardise import standardisation, transform
    from meddx.data.volume import Source, describe
    from meddx.data.volume_readers import read_volume

    if int(spec.channels) != 1:
        raise ConfigError(f"data.image.channels={spec.channels}: volumes have 1 channel")
    if spec.folder.window is not None:
        raise ConfigError(
            "data.image.folder.window is the 2-D images' window; for volumes set "
            "data.image.standardise.window (CT, in HU) and leave folder.window null"
        )
    standardise = transform(standardisation(spec))
    read: list[Source] = []

    def sample(row: Row) -> np.ndarray:
        volume = read_volume(row.path, row.where)
        read.append((volume.modality, volume.spacing))
        return standardise(volume, row.where)

    return sample, (spec.size,) * 3, lambda: describe(read)


def load_folder(
    spec: DictConfig, seed: int, root: Path
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The folder described by `spec.folder` as arrays in the MedMNIST layout, and tags that
    say what was read (volumes: modalities, spacing range).

    `data.image.spatial_dims: 3` reads volumes (NIfTI files, DICOM series folders) instead
    of images; the labels, splits and checks are the same.
    """
    options = spec.folder
    if not options.path:
        raise ConfigError(
            "data.image.folder.path is not set: point it at the folder that "
            "holds your images and labels.csv"
        )
    folder = Path(options.path).expanduser()
    folder = folder if folder.is_absolute() else root / folder
    if not folder.is_dir():
        raise ConfigError(f"data.image.folder.path={options.path!r}: no such folder")
    class_names = list(spec.class_names)
    rows = read_labels(folder, options.labels, class_names, spec.task)
    splits = assign_splits(rows, options.val_fraction, options.test_fraction, seed)
    check_listed_once(rows, splits)
    check_duplicate_files(rows, splits)
    volumes = int(spec.get("spatial_dims", 2)) == 3
    sample, shape, described = (_volume_sampler if volumes else _image_sampler)(spec)
    images: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    labels: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    for row, split in zip(rows, splits, strict=True):
        images[split].append(sample(row))
        labels[split].append(row.label)
    arrays: dict[str, np.ndarray] = {}
    width = len(class_names) if spec.task == "multi-label" else 1
    for split in SPLITS:
        arrays[f"{split}_images"] = (
            np.stack(images[split]) if images[split] else np.zeros((0, *shape), dtype=np.uint8)
        )
        arrays[f"{split}_labels"] = (
            np.stack(labels[split]) if labels[split] else np.zeros((0, width), dtype=np.int64)
        )
    return arrays, described()
