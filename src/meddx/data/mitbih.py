"""MIT-BIH Arrhythmia records: find the WFDB files, verify them, read one lead with `wfdb`.

A record is read from the mirror (`<mirror>/mitbih/`) when the mirror holds all its files;
otherwise each file comes through `meddx.data.fetch` (download cache, then PhysioNet, with
retries, Range resume and atomic renames), so the whole record lands in one folder, as wfdb
needs. Every file is checked against the SHA256SUMS.txt of the folder it comes from
(PhysioNet publishes one), so a corrupt or foreign file fails here, naming itself, rather
than as odd beats three stages later. A file the list does not cover is an error too, unless
`data.ecg.allow_unchecked` is set: then it is read with a warning and counted in the run.
The header is checked against its data as well: a signal file longer or shorter than the
header says, or annotations past the end of the signal, mean the files do not belong together.
"""

from __future__ import annotations

import sys
import urllib.error
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from meddx.data import fetch
from meddx.data.ecg_records import EcgRecord
from meddx.errors import DataError

EXTENSIONS = ("hea", "dat", "atr")
SUMS_FILE = "SHA256SUMS.txt"
MIRROR_SUBDIR = "mitbih"
URL_KEY = "data.ecg.url"
UNCHECKED_KEY = "data.ecg.allow_unchecked"
# Bytes per sample of the WFDB storage formats MIT-BIH uses (212: two 12-bit samples in 3 bytes).
BYTES_PER_SAMPLE = {"212": 1.5, "16": 2.0, "80": 1.0}
ATTEMPTS = 3
TIMEOUT_S = 20


@dataclass(frozen=True)
class Source:
    """Where the files come from, for the error that says how to supply a missing one."""

    mirror: Path | None  # the mirror root (records in <mirror>/mitbih), or None
    cache: Path  # downloads land here
    url: str | None  # PhysioNet folder URL, or None to never download


def read_sums(folder: Path) -> dict[str, fetch.Checksum]:
    """`file name -> SHA-256` from the folder's SHA256SUMS.txt; empty when there is none."""
    sums_file = folder / SUMS_FILE
    if not sums_file.is_file():
        return {}
    try:
        text = sums_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(
            f"{sums_file} is not a text file of '<sha256> <file name>' lines; replace it with "
            "PhysioNet's"
        ) from None
    sums = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = fetch.Checksum("sha256", parts[0].lower(), sums_file)
    return sums


def _download_sums(source: Source) -> dict[str, fetch.Checksum]:
    """The cache's copy of PhysioNet's SHA256SUMS.txt, downloaded when missing and allowed.

    A server without the list (404) leaves the files unchecked; any other failure is an
    error, rather than files that silently go unchecked.
    """
    target = source.cache / SUMS_FILE
    if not target.is_file() and source.url is not None and not fetch.offline():
        url = source.url + SUMS_FILE
        try:
            fetch.download(url, target, None, SUMS_FILE, attempts=ATTEMPTS, timeout=TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise DataError(f"downloading {url} failed ({fetch.reason(exc)})") from None
        except fetch.DOWNLOAD_ERRORS as exc:
            raise DataError(f"downloading {url} failed ({fetch.reason(exc)})") from None
    return read_sums(source.cache)


def _in_mirror(names: list[str], source: Source) -> tuple[Path | None, bool]:
    """The mirror folder holding all of `names` (or None), and whether the mirror holds any."""
    if source.mirror is None:
        return None, False
    present = {
        folder: [(folder / name).is_file() for name in names]
        for folder in fetch.mirror_folders(source.mirror, MIRROR_SUBDIR)
    }
    complete = next((folder for folder, found in present.items() if all(found)), None)
    return complete, any(any(found) for found in present.values())


def _record_folder(record: int, source: Source) -> tuple[Path, list[str]]:
    """Where the record's files are (verified), and those that had no checksum to check.

    A record the mirror holds only in part is fetched whole into the cache: wfdb reads the
    header and signal from one folder. The files the mirror lacks are fetched first, so
    that when none can be had the error names the one really missing.
    """
    names = [f"{record}.{ext}" for ext in EXTENSIONS]
    folder, partial = _in_mirror(names, source)
    if folder is not None:
        sums = read_sums(folder)
        return folder, [n for n in names if not fetch.verify(folder / n, sums.get(n), n)]
    context = (
        f"MIT-BIH record {record} (only partly in the mirror {source.mirror}, so fetched "
        "whole into the cache): "
        if partial
        else f"MIT-BIH record {record}: "
    )
    cached = all((source.cache / name).is_file() for name in names)
    sums = read_sums(source.cache) if cached else _download_sums(source)
    in_mirror = {name for name in names if _in_mirror([name], source)[1]}
    unchecked = []
    for name in sorted(names, key=lambda n: n in in_mirror):
        got = fetch.fetch(
            name,
            sums.get(name),
            source.url and source.url + name,
            source.cache,
            None if name in in_mirror else source.mirror,
            MIRROR_SUBDIR,
            attempts=ATTEMPTS,
            timeout=TIMEOUT_S,
            context=context,
            url_key=URL_KEY,
        )
        if not got.checked:
            unchecked.append(name)
    return source.cache, unchecked


def _unverified(record: int, folder: Path, names: list[str], allowed: bool) -> None:
    """Refuse files no checksum vouches for, or (opted out) say loudly that they are read."""
    sums = folder / SUMS_FILE
    why = "does not exist" if not sums.is_file() else "has no entry for them"
    if not allowed:
        raise DataError(
            f"MIT-BIH record {record}: {', '.join(names)} in {folder} cannot be verified: "
            f"{sums} {why}. Put PhysioNet's {SUMS_FILE} (from the data.ecg.url folder) beside "
            f"the files, or set {UNCHECKED_KEY}=true to read unverified files (recorded in the "
            "run as sha256_unchecked)"
        )
    print(
        f"meddx: WARNING: MIT-BIH record {record}: {', '.join(names)} in {folder} read WITHOUT "
        f"checksum verification ({sums} {why}; {UNCHECKED_KEY}=true)",
        file=sys.stderr,
    )


def _check_size(dat: Path, fmt: str, n_sig: int, sig_len: int, header: Path) -> None:
    """The signal file holds what the header says: no less (truncated), no more (mislabelled).

    One frame (one sample of every signal) of slack: format 212 pads an odd sample count.
    """
    per_sample = BYTES_PER_SAMPLE.get(str(fmt))
    if per_sample is None:
        return
    expected = int(np.ceil(per_sample * n_sig * sig_len))
    actual = dat.stat().st_size
    promise = f"{sig_len} samples x {n_sig} signals in format {fmt} = {expected} bytes"
    if actual < expected:
        raise DataError(
            f"{dat} is truncated: {actual} bytes, but its header promises {promise}; "
            "replace the file"
        )
    if actual > expected + np.ceil(per_sample * n_sig):
        raise DataError(
            f"{dat} holds {int(actual // (per_sample * n_sig))} samples ({actual} bytes), but "
            f"its header {header} says {promise}: the header under-reports the signal length "
            "or belongs to another record; replace both with intact copies"
        )


def _check_annotations(atr: Path, samples: np.ndarray, sig_len: int) -> None:
    """Annotations must lie on the signal: beyond its end they label beats that are not there."""
    if np.any(samples < 0):
        raise DataError(f"{atr} has annotations before the start of the signal; replace it")
    beyond = int(np.count_nonzero(samples >= sig_len))
    if beyond:
        raise DataError(
            f"{atr} has {beyond} annotation(s) beyond the end of the signal (sample "
            f"{int(samples.max())}, the signal ends at {sig_len} samples by its header): the "
            "annotations and the signal are not of the same record; replace them with intact "
            "copies"
        )


@contextmanager
def _reading(path: Path, named_by: str = "") -> Iterator[None]:
    """Any failure to parse `path` as a DataError that names it.

    wfdb parses headers with regular expressions and casts, signals and annotations with
    numpy, so a malformed file raises whatever type the step it breaks hits first (fuzzing
    found ValueError, IndexError, KeyError, TypeError, ZeroDivisionError and more): none says
    which of the record's files to replace. `named_by` says where a path came from when a
    header, not the record number, named it.
    """
    try:
        yield
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"{path}{named_by} cannot be read as a WFDB file ({type(exc).__name__}: {exc}); "
            "replace it with an intact copy"
        ) from None


def read_record(
    folder: Path, record: int, lead: str, fs: float, any_lead: bool = False
) -> EcgRecord:
    """One lead of one record, in ADC units, plus the reference (`atr`) annotations.

    `any_lead` reads the first lead of a record that lacks `lead` (102 and 104 have no MLII):
    for timing or exploring all 48 records, never for protocol figures, which need one lead.
    """
    import wfdb

    base = str(folder / str(record))
    hea, atr = folder / f"{record}.hea", folder / f"{record}.atr"
    with _reading(hea):
        header = wfdb.rdheader(base)
        leads = list(header.sig_name or [])
        if not leads:
            raise DataError(f"{hea} declares no signal; replace it with an intact copy")
        if lead not in leads and any_lead:
            print(
                f"meddx: MIT-BIH record {record} has no lead {lead}: reading {leads[0]} instead",
                file=sys.stderr,
            )
            lead = leads[0]
        if lead not in leads:
            raise DataError(
                f"MIT-BIH record {record} has no lead {lead} (its leads in {hea}: {leads}); "
                f"add it to data.ecg.exclude or choose another data.ecg.lead"
            )
        if float(header.fs) != float(fs):
            raise DataError(
                f"MIT-BIH record {record} is sampled at {header.fs} Hz by {hea}, the config "
                f"says data.ecg.fs={fs}"
            )
        channel = leads.index(lead)
        dat = folder / header.file_name[channel]
        if not dat.resolve().is_relative_to(folder.resolve()):
            raise DataError(
                f"{hea} names a signal file outside {folder}: {header.file_name[channel]}"
            )
        _check_size(dat, header.fmt[channel], header.n_sig, header.sig_len, hea)
    with _reading(dat, f" (the signal file {hea} names)"):
        signal = wfdb.rdrecord(base, channels=[channel], physical=False)
        digital = signal.d_signal[:, 0]
        gain, baseline = float(signal.adc_gain[0]), int(signal.baseline[0])
    if len(digital) != header.sig_len or len(digital) == 0:
        raise DataError(
            f"{dat}: read {len(digital)} samples, the header {hea} promises {header.sig_len}; "
            "the .dat file is truncated or corrupt"
        )
    if not np.isfinite(gain) or gain == 0:
        raise DataError(f"{hea} gives lead {lead} the gain {gain}; replace it with an intact copy")
    with _reading(atr):
        annotation = wfdb.rdann(base, "atr")
        samples = np.asarray(annotation.sample, dtype=np.int64)
        symbols = np.asarray(annotation.symbol, dtype=str)
    _check_annotations(atr, samples, header.sig_len)
    return EcgRecord(
        number=record,
        signal=digital.astype(np.int16),
        gain=gain,
        baseline=baseline,
        ann_sample=samples,
        ann_symbol=symbols,
    )


def acquire(
    records: Sequence[int],
    source: Source,
    lead: str,
    fs: float,
    any_lead: bool = False,
    allow_unchecked: bool = False,
) -> tuple[list[EcgRecord], int, int]:
    """The records, each file checked against its folder's SHA256SUMS; how many were, and not.

    A file without a checksum is an error unless `allow_unchecked` (data.ecg.allow_unchecked).
    """
    result, checked, unchecked = [], 0, 0
    for record in records:
        folder, names = _record_folder(record, source)
        if names:
            _unverified(record, folder, names, allow_unchecked)
        checked += len(EXTENSIONS) - len(names)
        unchecked += len(names)
        result.append(read_record(folder, record, lead, fs, any_lead))
    return result, checked, unchecked
