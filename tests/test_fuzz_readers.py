"""Property-based fuzzing of every reader of outside data (hypothesis).

The property, for each reader: whatever the bytes, the reader either returns valid arrays
or raises the project's own error (meddx.errors.MeddxError) with a message naming the file
(for the folder source: the labels.csv line, which stands for the file without printing
a name that may be a patient's). Any other exception fails the test with the input that
caused it (hypothesis shrinks it). Readers return values and write nothing, so "no
partial output" is "no value without every check passed": each example checks the value
against the layout's contract.

Inputs are mutations of a valid file (bytes flipped, cut or appended; fields set to
hostile values), plus wholly random bytes. Runs are deterministic (`derandomize`), with no
example database, so CI sees the same cases as a developer. MEDDX_FUZZ_EXAMPLES scales
every reader's budget (benchmarks/fuzz_readers.py runs more); CASES counts what ran.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest
import wfdb
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.data import get_testdata_file

from meddx.data.folder import Row, load_image, read_labels
from meddx.data.mitbih import read_record, read_sums
from meddx.data.npz import KEYS, SPLITS
from meddx.data.validate import read_image_file
from meddx.errors import MeddxError

SCALE = float(os.environ.get("MEDDX_FUZZ_EXAMPLES", "1"))
# Examples per reader in the test suite; the whole file runs in about 20 s on 2 cores.
BUDGET = {"npz": 120, "wfdb": 120, "sha256sums": 60, "labels_csv": 150, "dicom": 80, "nifti": 80}
CASES: Counter[str] = Counter()  # reader -> examples run (".loaded" / ".refused" by outcome)
CLASSES = ["healthy", "sick"]
WHERE = "labels.csv line 2"


def fuzz(reader: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return settings(
        max_examples=max(1, int(BUDGET[reader] * SCALE)),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder per example (pytest's tmp_path is one per test, not per example)."""
    folder = Path(tempfile.mkdtemp(prefix="meddx-fuzz-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def outcome(reader: str, read: Callable[[], Any], names: tuple[str, ...]) -> Any:
    """The reader's value, or None after a MeddxError naming one of `names`."""
    CASES[reader] += 1
    try:
        value = read()
    except MeddxError as exc:
        CASES[f"{reader}.refused"] += 1
        assert any(name in str(exc) for name in names), f"the error names no file: {exc}"
        return None
    CASES[f"{reader}.loaded"] += 1
    return value


def mutated(original: bytes) -> st.SearchStrategy[bytes]:
    """`original` with a few bytes replaced, then cut short or extended; or random bytes."""
    size = len(original)
    if not size:
        return st.binary(max_size=256)

    @st.composite
    def edit(draw: st.DrawFn) -> bytes:
        data = bytearray(original)
        for position, value in draw(
            st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 255)), max_size=6)
        ):
            data[position] = value
        cut = draw(st.none() | st.integers(0, size))
        if cut is not None:
            del data[cut:]
        return bytes(data) + draw(st.binary(max_size=32))

    return edit() | st.binary(max_size=256)


# --- MedMNIST npz -------------------------------------------------------------------------------

HOSTILE_ARRAYS = st.sampled_from(
    [
        np.array(3),
        np.zeros(0, dtype=np.uint8),
        np.zeros((2, 0, 6), dtype=np.uint8),
        np.zeros((0, 1), dtype=np.int64),
        np.full((2, 6, 6), np.nan, dtype=np.float32),
        np.ones((2, 6, 6), dtype=bool),
        np.ones((2, 6, 6), dtype=np.complex64),
        np.array(["a", "b"]),
        np.zeros(2, dtype=[("x", "i4")]),
        np.array([[5], [-1]]),
        np.array([[0, 1], [1, 0]]),
        np.ones((2, 6, 6, 2), dtype=np.uint8),
        np.array([None, 1], dtype=object),
    ]
)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


@st.composite
def image_archives(draw: st.DrawFn) -> bytes:
    """A valid binary MedMNIST-layout archive (2+ images per split), then mutated."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    members: dict[str, bytes] = {}
    for split in SPLITS:
        n = draw(st.integers(1, 3))
        members[f"{split}_images.npy"] = _npy(rng.integers(0, 256, (n, 6, 6), dtype=np.uint8))
        members[f"{split}_labels.npy"] = _npy(rng.integers(0, 2, (n, 1)))
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=3)):
        change = draw(st.sampled_from(["drop", "array", "raw", "bytes"]))
        name = f"{key}.npy"
        if change == "drop":
            members.pop(name, None)
        elif change == "array":
            members[name] = _npy(draw(HOSTILE_ARRAYS))
        elif change == "raw":  # a member that is not .npy: numpy hands back its bytes
            members.pop(name, None)
            members[key] = draw(st.binary(max_size=40))
        else:
            members[name] = draw(mutated(members.get(name, _npy(np.zeros(1)))))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    whole = buffer.getvalue()
    return draw(mutated(whole)) if draw(st.booleans()) else whole


def check_image_layout(arrays: dict[str, np.ndarray]) -> None:
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        assert isinstance(images, np.ndarray) and isinstance(labels, np.ndarray)
        assert images.ndim == 3 and min(images.shape) >= 1
        assert len(labels) == len(images)
        assert np.isin(labels.reshape(len(labels)), [0, 1]).all()


@fuzz("npz")
@given(image_archives())
def test_an_image_archive_loads_valid_or_is_refused_naming_the_file(archive: bytes) -> None:
    with scratch() as folder:
        path = folder / "images.npz"
        path.write_bytes(archive)
        loaded = outcome("npz", lambda: read_image_file(path, 2, "binary", 1), (str(path),))
        if loaded is not None:
            check_image_layout(loaded[0])


# --- MIT-BIH WFDB header / signal / annotations ---------------------------------------------------

RECORD = 100


@pytest.fixture(scope="module")
def wfdb_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """One short, valid record in MIT-BIH's formats (212 signal, MIT annotations)."""
    folder = tmp_path_factory.mktemp("wfdb")
    signal = (np.sin(np.arange(720) / 20) * 300 + 1024).astype(np.int64)[:, None]
    wfdb.wrsamp(
        str(RECORD),
        fs=360,
        units=["mV"],
        sig_name=["MLII"],
        d_signal=signal,
        fmt=["212"],
        adc_gain=[200.0],
        baseline=[1024],
        write_dir=str(folder),
    )
    wfdb.wrann(
        str(RECORD), "atr", np.array([50, 300, 600]), symbol=["N", "V", "N"], write_dir=str(folder)
    )
    return {ext: (folder / f"{RECORD}.{ext}").read_bytes() for ext in ("hea", "dat", "atr")}


HEADER_VALUES = st.sampled_from(
    ["0", "-1", "2", "999999999", "1e9", "nan", "abc", "", "16", "8", "80", "310", "360/0"]
)


@st.composite
def headers(draw: st.DrawFn, original: bytes) -> bytes:
    """The header with some fields (whitespace-separated tokens) set to hostile values."""
    lines = [line.split(" ") for line in original.decode().splitlines()]
    for _ in range(draw(st.integers(1, 4))):
        line = draw(st.integers(0, len(lines) - 1))
        token = draw(st.integers(0, len(lines[line]) - 1))
        lines[line][token] = draw(HEADER_VALUES | st.text(max_size=6))
    if draw(st.booleans()):
        lines.pop(draw(st.integers(0, len(lines) - 1)))
    return "\n".join(" ".join(line) for line in lines).encode("utf-8", "surrogatepass") + b"\n"


@st.composite
def records(draw: st.DrawFn, files: dict[str, bytes]) -> dict[str, bytes]:
    """The record with its header, signal or annotation file (or several) mutated."""
    changed = dict(files)
    for ext in draw(st.sets(st.sampled_from(["hea", "dat", "atr"]), min_size=1)):
        if ext == "hea" and draw(st.booleans()):
            changed[ext] = draw(headers(files["hea"]))
        else:
            changed[ext] = draw(mutated(files[ext]))
    return changed


def check_record(record: Any) -> None:
    n = len(record.signal)
    assert record.signal.dtype == np.int16 and record.signal.ndim == 1 and n >= 1
    assert np.isfinite(record.gain) and record.gain != 0
    assert len(record.ann_sample) == len(record.ann_symbol)
    assert ((record.ann_sample >= 0) & (record.ann_sample < n)).all()


@fuzz("wfdb")
@given(data=st.data())
def test_a_wfdb_record_reads_valid_or_is_refused_naming_the_file(
    wfdb_files: dict[str, bytes], data: st.DataObject
) -> None:
    files = data.draw(records(wfdb_files))
    with scratch() as folder:
        for ext, content in files.items():
            (folder / f"{RECORD}.{ext}").write_bytes(content)
        names = tuple(f"{RECORD}.{ext}" for ext in ("hea", "dat", "atr"))
        record = outcome("wfdb", lambda: read_record(folder, RECORD, "MLII", 360.0), names)
        if record is not None:
            check_record(record)


@fuzz("sha256sums")
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_a_checksum_list_reads_or_is_refused_naming_the_file(content: bytes) -> None:
    with scratch() as folder:
        (folder / "SHA256SUMS.txt").write_bytes(content)
        sums = outcome("sha256sums", lambda: read_sums(folder), ("SHA256SUMS.txt",))
        if sums is not None:
            assert all(isinstance(name, str) and name for name in sums)


# --- labels.csv of the folder source --------------------------------------------------------------


def mostly(valid: list[str], hostile: list[str], width: int) -> st.SearchStrategy[str]:
    """A valid cell four times in five, else a hostile one or random text."""
    return st.integers(0, 4).flatmap(
        lambda roll: (
            st.sampled_from(valid) if roll else st.sampled_from(hostile) | st.text(max_size=width)
        )
    )


FILE_CELLS = mostly(
    ["a.png", "b.png", "sub/../b.png"],
    ["../outside.png", "/etc/passwd", "", "missing.png", "a.png\x00", "x" * 300, "sub",
     "link.png", "sub/../../images/a.png"],
    8,
)  # fmt: skip
LABEL_CELLS = mostly(
    ["healthy", "sick", "0", "1", " 1 ", "healthy;sick"],
    ["2", "-1", "--1", "²", "", ";", "1.0", "sick;;x"],
    5,
)
SPLIT_CELLS = mostly(["train", "val", "test"], ["", "TRAIN", "x", " val "], 5)
HEADERS = mostly(["file,label,split", "file,label", "label,file,split,extra"], ["label", ""], 12)


@st.composite
def label_files(draw: st.DrawFn) -> bytes:
    """A labels.csv of a few rows, mostly well-formed, some cells or rows hostile."""
    header = draw(HEADERS).split(",")
    rows = []
    for _ in range(draw(st.integers(0, 4))):
        cells = {"file": draw(FILE_CELLS), "label": draw(LABEL_CELLS), "split": draw(SPLIT_CELLS)}
        row = [cells.get(name, "") for name in header]
        rows.append(row if draw(st.integers(0, 5)) else row[: draw(st.integers(0, len(row)))])
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "latin-1", "utf-16"]))
    encoded = buffer.getvalue().encode(encoding, "replace")
    return draw(mutated(encoded)) if draw(st.integers(0, 4)) == 0 else encoded


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two PNGs, a subfolder (a series folder may be listed, the folder itself not), and a
    symbolic link to a PNG outside the folder."""
    root = tmp_path_factory.mktemp("labels")
    folder = root / "images"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((4, 4), 7, dtype=np.uint8)).save(folder / name)
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(root / "outside.png")
    (folder / "link.png").symlink_to(root / "outside.png")
    return folder


@fuzz("labels_csv")
@given(content=label_files(), task=st.sampled_from(["binary", "multi-label"]))
def test_a_labels_file_reads_valid_rows_or_is_refused_naming_it(
    image_folder: Path, content: bytes, task: str
) -> None:
    (image_folder / "labels.csv").write_bytes(content)
    rows = outcome(
        "labels_csv",
        lambda: read_labels(image_folder, "labels.csv", CLASSES, task),
        ("labels.csv",),
    )
    if rows is None:
        return
    assert rows
    for row in rows:
        assert row.path.is_file() or row.path.is_dir()  # a folder: a DICOM series
        assert row.path.resolve().is_relative_to(image_folder.resolve())
        assert row.path.resolve() != image_folder.resolve()
        assert row.split in (*SPLITS, None)
        width = len(CLASSES) if task == "multi-label" else 1
        assert row.label.shape == (width,)
        assert np.isin(row.label, [0, 1]).all() if width > 1 else 0 <= row.label[0] < 2


# --- DICOM and NIfTI images of the folder source ------------------------------------------------


def check_pixels(loaded: tuple[np.ndarray, float | None]) -> None:
    pixels, _ = loaded
    assert pixels.ndim in (2, 3) and min(pixels.shape[:2]) >= 1
    assert pixels.ndim == 2 or pixels.shape[2] == 3
    assert np.isfinite(pixels).all()


DICOM_FIELDS = {
    "Rows": st.sampled_from([0, 1, 2, 65535]),
    "Columns": st.sampled_from([0, 1, 2, 65535]),
    "BitsAllocated": st.sampled_from([0, 1, 7, 8, 32, 64]),
    "BitsStored": st.sampled_from([0, 1, 12, 40]),
    "SamplesPerPixel": st.sampled_from([0, 2, 3, 4]),
    "NumberOfFrames": st.sampled_from(["0", "-1", "2", "1000", "abc"]),
    "PixelRepresentation": st.sampled_from([0, 1, 2]),
    "PhotometricInterpretation": st.sampled_from(["MONOCHROME1", "RGB", "PALETTE COLOR", "X"]),
    "RescaleSlope": st.sampled_from(["0", "nan", "inf", "1e308", "-1"]),
    "RescaleIntercept": st.sampled_from(["nan", "-1e308", "5"]),
    "PixelData": st.binary(max_size=64),
}


@st.composite
def dicom_files(draw: st.DrawFn, original: bytes) -> bytes:
    if draw(st.booleans()):
        return draw(mutated(original))
    ds = pydicom.dcmread(io.BytesIO(original))
    buffer = io.BytesIO()
    try:  # pydicom refuses to set or write some values: not an input a reader can get
        for keyword in draw(st.sets(st.sampled_from(sorted(DICOM_FIELDS)), min_size=1, max_size=3)):
            setattr(ds, keyword, draw(DICOM_FIELDS[keyword]))
        ds.save_as(buffer)
    except (ValueError, TypeError, OverflowError, AttributeError):
        assume(False)
    return buffer.getvalue()


@fuzz("dicom")
@given(data=st.data())
def test_a_dicom_file_decodes_valid_or_is_refused_naming_its_line(data: st.DataObject) -> None:
    content = data.draw(dicom_files(Path(get_testdata_file("CT_small.dcm")).read_bytes()))
    with scratch() as folder:
        path = folder / "image.dcm"
        path.write_bytes(content)
        loaded = outcome("dicom", lambda: load_image(Row(2, path, np.zeros(1), None)), (WHERE,))
        if loaded is not None:
            check_pixels(loaded)


@pytest.fixture(scope="module")
def nifti_bytes() -> bytes:
    volume = np.random.default_rng(0).normal(size=(8, 8, 3)).astype(np.float32)
    return nib.Nifti1Image(volume, np.eye(4)).to_bytes()


@fuzz("nifti")
@given(data=st.data(), compressed=st.booleans())
def test_a_nifti_file_decodes_valid_or_is_refused_naming_its_line(
    nifti_bytes: bytes, data: st.DataObject, compressed: bool
) -> None:
    content = data.draw(mutated(nifti_bytes))
    with scratch() as folder:
        path = folder / ("image.nii.gz" if compressed else "image.nii")
        if compressed:
            import gzip

            content = gzip.compress(content) if data.draw(st.booleans()) else content
        path.write_bytes(content)
        loaded = outcome("nifti", lambda: load_image(Row(2, path, np.zeros(1), None)), (WHERE,))
        if loaded is not None:
            check_pixels(loaded)
