"""Inputs that fuzzing (tests/test_fuzz_readers.py) found escaping a reader, one test each.

Before its fix each raised an exception that was not meddx's own (or a DataError that named
no file); now each is a DataError naming the file (for labels.csv: the line).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import wfdb
from PIL import Image

from meddx.data.folder import read_labels
from meddx.data.mitbih import read_record, read_sums
from meddx.data.npz import SPLITS
from meddx.data.validate import read_image_file
from meddx.errors import DataError


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def _archive(path: Path, **replaced: bytes) -> Path:
    """A valid binary image archive with some members replaced (name -> bytes, b'' drops)."""
    rng = np.random.default_rng(0)
    members = {}
    for split in SPLITS:
        members[f"{split}_images.npy"] = _npy(rng.integers(0, 256, (2, 6, 6), dtype=np.uint8))
        members[f"{split}_labels.npy"] = _npy(np.array([[0], [1]]))
    members |= replaced
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            if data:
                archive.writestr(name, data)
    return path


def test_an_archive_member_that_is_not_npy_is_refused_by_name(tmp_path: Path) -> None:
    # numpy returned the member's raw bytes; validation then failed on bytes.ndim
    path = _archive(tmp_path / "x.npz", **{"train_images.npy": b"", "train_images": b"ab"})
    with pytest.raises(DataError, match=r"x\.npz holds members that are not \.npy.*train_images"):
        read_image_file(path, 2, "binary", 1)


def test_a_scalar_where_a_split_belongs_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _archive(tmp_path / "x.npz", **{"train_labels.npy": _npy(np.array(3))})  # was len()
    with pytest.raises(DataError, match=r"x\.npz: split 'train' holds a scalar"):
        read_image_file(path, 2, "binary", 1)


def test_images_without_pixels_are_refused_naming_the_file(tmp_path: Path) -> None:
    empty = _npy(np.zeros((2, 0, 6), dtype=np.uint8))
    path = _archive(
        tmp_path / "x.npz", **{f"{split}_images.npy": empty for split in SPLITS}
    )  # passed every check before
    with pytest.raises(DataError, match=r"x\.npz: train_images has shape \(2, 0, 6\)"):
        read_image_file(path, 2, "binary", 1)


def test_a_npy_header_with_a_nul_byte_is_refused_naming_the_file(tmp_path: Path) -> None:
    member = _npy(np.zeros((2, 6, 6), dtype=np.uint8))
    cut = member.index(b"), ") + 3
    broken = member[:cut] + b"\x00" + member[cut + 1 :]  # tokenize.TokenError from numpy
    path = _archive(tmp_path / "x.npz", **{"train_images.npy": broken})
    with pytest.raises(DataError, match=r"x\.npz is not a readable \.npz file"):
        read_image_file(path, 2, "binary", 1)


@pytest.fixture
def record_folder(tmp_path: Path) -> Path:
    signal = (np.sin(np.arange(720) / 20) * 300 + 1024).astype(np.int64)[:, None]
    common = {"fs": 360, "units": ["mV"], "sig_name": ["MLII"], "fmt": ["212"]}
    wfdb.wrsamp(
        "100", d_signal=signal, adc_gain=[200.0], baseline=[1024], write_dir=str(tmp_path), **common
    )
    wfdb.wrann("100", "atr", np.array([50, 300]), symbol=["N", "V"], write_dir=str(tmp_path))
    return tmp_path


def test_a_header_with_no_signal_is_refused_naming_it(record_folder: Path) -> None:
    header = record_folder / "100.hea"
    header.write_text(header.read_text().replace("100 1 360", "100 0 360"))  # ZeroDivisionError
    with pytest.raises(DataError, match=r"100\.hea cannot be read as a WFDB file"):
        read_record(record_folder, 100, "MLII", 360.0)


def test_an_empty_header_is_refused_naming_it(record_folder: Path) -> None:
    (record_folder / "100.hea").write_text("")  # "Cannot read record 100 from <folder>"
    with pytest.raises(DataError, match=r"100\.hea cannot be read"):
        read_record(record_folder, 100, "MLII", 360.0)


def test_a_cut_annotation_file_is_refused_naming_it(record_folder: Path) -> None:
    atr = record_folder / "100.atr"
    atr.write_bytes(atr.read_bytes()[:3])  # named the folder, not the file
    with pytest.raises(DataError, match=r"100\.atr cannot be read as a WFDB file"):
        read_record(record_folder, 100, "MLII", 360.0)


def test_a_checksum_list_that_is_not_text_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "SHA256SUMS.txt").write_bytes(b"\x80")  # UnicodeDecodeError
    with pytest.raises(DataError, match=r"SHA256SUMS\.txt is not a text file"):
        read_sums(tmp_path)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "a.png")
    return tmp_path


def _read(folder: Path, content: bytes) -> None:
    (folder / "labels.csv").write_bytes(content)
    read_labels(folder, "labels.csv", ["healthy", "sick"], "binary")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"file,label,split\r\n\x80", r"labels\.csv is not a UTF-8 CSV file"),
        (b"file,label\na.png,--1\n", r"labels\.csv line 2: label '--1' is not one of"),
        ("file,label\na.png,²\n".encode(), r"labels\.csv line 2: label '²' is not one of"),
        (b"file,label,split\na.png\n", r"labels\.csv line 2: the row has fewer cells"),
        (b"file,label\na.png\x00,0\n", r"labels\.csv line 2: .*not a usable path \(ValueError"),
        (b"file,label\n" + b"x" * 300 + b",0\n", r"labels\.csv line 2: .*not a usable path"),
    ],
    ids=["not-utf8", "double-minus", "superscript-digit", "short-row", "nul-byte", "long-name"],
)
def test_a_hostile_labels_file_is_refused_naming_it(
    image_folder: Path, content: bytes, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        _read(image_folder, content)


def test_a_dicom_stack_of_frames_claiming_zero_frames_is_refused(tmp_path: Path) -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    from meddx.data.dicom import read_pixels

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.NumberOfFrames, ds.Rows = "0", 64  # pydicom decodes 2 frames; was returned as one image
    ds.save_as(tmp_path / "x.dcm")
    with pytest.raises(DataError, match=r"labels\.csv line 2: .*shape \(2, 64, 128\), not one"):
        read_pixels(tmp_path / "x.dcm", "labels.csv line 2")
