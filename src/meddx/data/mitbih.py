"""MIT-BIH Arrhythmia records: find the WFDB files, verify them, read one lead with `wfdb`.

Order of sources per record: the mirror (`<mirror>/mitbih/`), then the download cache, then
PhysioNet. Every file used is checked against the SHA256SUMS.txt of the folder it comes from
when that list is there (PhysioNet publishes one), so a corrupt or foreign file fails here,
naming itself, rather than as odd beats three stages later.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from meddx.data.ecg_records import EcgRecord
from meddx.errors import DataError
from meddx.io import atomic_path, file_digest

EXTENSIONS = ("hea", "dat", "atr")
SUMS_FILE = "SHA256SUMS.txt"
MIRROR_SUBDIR = "mitbih"
# Bytes per sample of the WFDB storage formats MIT-BIH uses (212: two 12-bit samples in 3 bytes).
BYTES_PER_SAMPLE = {"212": 1.5, "16": 2.0, "80": 1.0}
ATTEMPTS = 3
TIMEOUT_S = 20


@dataclass(frozen=True)
class Source:
    """Where the files come from, for the error that says how to supply a missing one."""

    mirror: Path | None  # <mirror>/mitbih, or None when no mirror is configured
    cache: Path  # downloads land here
    url: str | None  # PhysioNet folder URL, or None to never download


def read_sums(folder: Path) -> dict[str, str]:
    """`file name -> sha256` from the folder's SHA256SUMS.txt; empty when there is none."""
    sums_file = folder / SUMS_FILE
    if not sums_file.is_file():
        return {}
    sums = {}
    for line in sums_file.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def verify(path: Path, sums: dict[str, str]) -> bool:
    """True when checked, False when the list has no entry; DataError on a mismatch."""
    expected = sums.get(path.name)
    if expected is None:
        return False
    actual = file_digest(path, "sha256")
    if actual != expected:
        raise DataError(
            f"SHA-256 mismatch for {path}: expected {expected}, got {actual} "
            f"(from {path.parent / SUMS_FILE}); the file is corrupt or not the PhysioNet "
            "original: replace it, or delete it to download it again"
        )
    return True


def _fetch(url: str, target: Path, sums: dict[str, str]) -> None:
    """Download to a temporary file that becomes `target` only once complete and verified."""
    last: Exception | None = None
    for attempt in range(ATTEMPTS):
        try:
            with atomic_path(target) as tmp:
                with (urllib.request.urlopen(url, timeout=TIMEOUT_S) as response,
                      open(tmp, "wb") as out):
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                expected = sums.get(target.name)
                actual = file_digest(tmp, "sha256")
                if expected is not None and actual != expected:
                    raise DataError(
                        f"SHA-256 mismatch for {url}: expected {expected}, got {actual}; "
                        "nothing was kept"
                    )
            return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise
            last = exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            last = exc
        if attempt + 1 < ATTEMPTS:
            time.sleep(2**attempt)
    assert last is not None
    raise last


def _missing_error(record: int, name: str, source: Source, failure: str | None) -> DataError:
    where = (f"not in the mirror folder {source.mirror}" if source.mirror
             else "no mirror is configured")
    download = failure or "downloading is switched off (data.ecg.url is null)"
    return DataError(
        f"MIT-BIH record {record}: {name} is missing: {where}, and {download}. Supply it either "
        f"by setting MEDDX_DATA_MIRROR (or paths.mirror) to a folder that holds "
        f"{MIRROR_SUBDIR}/{name} (with the .hea/.dat/.atr of every record), or by running "
        f"online so that it is downloaded from PhysioNet into {source.cache}"
    )


def _download_record(record: int, url: str, source: Source) -> None:
    names = [f"{record}.{ext}" for ext in EXTENSIONS]
    current = url + SUMS_FILE
    try:
        sums_path = source.cache / SUMS_FILE
        if not sums_path.is_file():
            try:
                _fetch(current, sums_path, {})
            except urllib.error.HTTPError as exc:
                if exc.code != 404:  # a server without a checksum list: files go unchecked
                    raise
        sums = read_sums(source.cache)
        for name in names:
            if not (source.cache / name).is_file():
                current = url + name
                print(f"downloading {current}", flush=True)
                _fetch(current, source.cache / name, sums)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        missing = next(n for n in names if not (source.cache / n).is_file())
        failure = f"downloading {current} failed ({exc})"
        raise _missing_error(record, missing, source, failure) from None


def locate(records: Sequence[int], source: Source) -> dict[int, Path]:
    """The folder holding each record's files: mirror, else cache, else downloaded to the cache."""
    folders = {}
    for record in records:
        names = [f"{record}.{ext}" for ext in EXTENSIONS]
        for folder in (source.mirror, source.cache):
            if folder is not None and all((folder / n).is_file() for n in names):
                folders[record] = folder
                break
        else:
            if source.url is None:
                missing = next(n for n in names
                               if source.mirror is None or not (source.mirror / n).is_file())
                raise _missing_error(record, missing, source, None)
            _download_record(record, source.url, source)
            folders[record] = source.cache
    return folders


def _check_size(dat: Path, fmt: str, n_sig: int, sig_len: int) -> None:
    per_sample = BYTES_PER_SAMPLE.get(str(fmt))
    if per_sample is None:
        return
    expected = int(np.ceil(per_sample * n_sig * sig_len))
    actual = dat.stat().st_size
    if actual < expected:
        raise DataError(
            f"{dat} is truncated: {actual} bytes, but its header promises {sig_len} samples x "
            f"{n_sig} signals in format {fmt} = {expected} bytes; replace the file"
        )


def read_record(folder: Path, record: int, lead: str, fs: float) -> EcgRecord:
    """One lead of one record, in ADC units, plus the reference (`atr`) annotations."""
    import wfdb

    base = str(folder / str(record))
    try:
        header = wfdb.rdheader(base)
        if lead not in header.sig_name:
            raise DataError(
                f"MIT-BIH record {record} has no lead {lead} (its leads: {header.sig_name}); "
                f"add it to data.ecg.exclude or choose another data.ecg.lead"
            )
        if float(header.fs) != float(fs):
            raise DataError(
                f"MIT-BIH record {record} is sampled at {header.fs} Hz, the config says "
                f"data.ecg.fs={fs}"
            )
        channel = header.sig_name.index(lead)
        _check_size(folder / header.file_name[channel], header.fmt[channel], header.n_sig,
                    header.sig_len)
        signal = wfdb.rdrecord(base, channels=[channel], physical=False)
        annotation = wfdb.rdann(base, "atr")
    except DataError:
        raise
    except (ValueError, OSError, IndexError, EOFError) as exc:
        raise DataError(f"Cannot read MIT-BIH record {record} from {folder}: {exc}") from None
    digital = signal.d_signal[:, 0]
    if len(digital) != header.sig_len:
        raise DataError(
            f"MIT-BIH record {record} in {folder}: read {len(digital)} samples, the header "
            f"promises {header.sig_len}; the .dat file is truncated or corrupt"
        )
    return EcgRecord(
        number=record,
        signal=digital.astype(np.int16),
        gain=float(signal.adc_gain[0]),
        baseline=int(signal.baseline[0]),
        ann_sample=np.asarray(annotation.sample, dtype=np.int64),
        ann_symbol=np.asarray(annotation.symbol, dtype=str),
    )


def acquire(records: Sequence[int], source: Source, lead: str,
            fs: float) -> tuple[list[EcgRecord], int]:
    """The records, each file checked against its folder's SHA256SUMS; and how many were."""
    folders = locate(records, source)
    sums_by_folder = {folder: read_sums(folder) for folder in set(folders.values())}
    result, checked = [], 0
    for record in records:
        folder = folders[record]
        for ext in EXTENSIONS:
            checked += verify(folder / f"{record}.{ext}", sums_by_folder[folder])
        result.append(read_record(folder, record, lead, fs))
    return result, checked
