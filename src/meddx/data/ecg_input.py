"""A recording the user brings (WFDB, EDF or CSV), one lead of it, at the rate a model needs.

Recordings in the wild come at any sampling rate, with any lead set in any order, and without
reference annotations. Each format goes through its maintained reader: WFDB through `wfdb`
(the PhysioNet format), EDF through `wfdb`'s EDF reader, CSV through pandas (one column per
lead, named in the header row, in millivolts; the rate is not in the file, so it is given).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from meddx.errors import DataError

WFDB_SUFFIXES = (".hea",)
EDF_SUFFIXES = (".edf",)
CSV_SUFFIXES = (".csv",)
SUFFIXES = WFDB_SUFFIXES + EDF_SUFFIXES + CSV_SUFFIXES
# Physical units a lead may come in, as factors to millivolts (the unit the models learnt in).
TO_MILLIVOLTS = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}
LEAD_KEY = "predict.ecg.lead"
FS_KEY = "predict.ecg.fs"


@dataclass(frozen=True)
class Recording:
    """Every lead of one recording, in millivolts, with the rate it was sampled at."""

    path: Path
    fs: float
    leads: list[str]
    signals: np.ndarray  # (T, C) float64, mV

    @property
    def seconds(self) -> float:
        return len(self.signals) / self.fs


def _millivolts(signals: np.ndarray, units: list[str], path: Path) -> np.ndarray:
    factors = []
    for unit in units:
        factor = TO_MILLIVOLTS.get(str(unit or "mV").strip().lower())
        if factor is None:
            raise DataError(
                f"{path}: a lead is in unit {unit!r}, not a voltage ({sorted(TO_MILLIVOLTS)})"
            )
        factors.append(factor)
    return np.asarray(signals, dtype=np.float64) * np.asarray(factors)


def _read_wfdb(path: Path) -> Recording:
    import wfdb

    base = path.with_suffix("")
    try:
        record = wfdb.rdrecord(str(base), physical=True)
    except (ValueError, OSError, IndexError, EOFError, TypeError) as exc:
        raise DataError(
            f"Cannot read the WFDB record {path}: {exc}; it needs its header (.hea) and the "
            "signal files it names in the same folder"
        ) from None
    signals = _millivolts(record.p_signal, list(record.units), path)
    return Recording(path, float(record.fs), [str(n) for n in record.sig_name], signals)


def _read_edf(path: Path) -> Recording:
    from wfdb.io.convert.edf import read_edf

    try:
        record = read_edf(str(path))
    except (ValueError, OSError, IndexError, EOFError, TypeError, KeyError) as exc:
        raise DataError(f"Cannot read the EDF file {path}: {exc}") from None
    signals = _millivolts(record.p_signal, list(record.units), path)
    return Recording(path, float(record.fs), [str(n).strip() for n in record.sig_name], signals)


def _read_csv(path: Path, fs: float | None) -> Recording:
    import pandas as pd

    if fs is None:
        raise DataError(
            f"{path} is a CSV file, which does not say its sampling rate: set {FS_KEY}=<Hz>"
        )
    try:
        table = pd.read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Cannot read the CSV file {path}: {exc}") from None
    numeric = table.apply(pd.to_numeric, errors="coerce")
    if table.empty or numeric.isna().any().any():
        raise DataError(
            f"{path}: expected a header row of lead names and one number (mV) per lead and row"
        )
    return Recording(
        path, float(fs), [str(c).strip() for c in table.columns], numeric.to_numpy(np.float64)
    )


def read_recording(path: Path, fs: float | None = None) -> Recording:
    """All leads of the recording at `path`; `fs` is the rate of a CSV file (others carry it)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix in WFDB_SUFFIXES:
        return _read_wfdb(path)
    if suffix in EDF_SUFFIXES:
        return _read_edf(path)
    if suffix in CSV_SUFFIXES:
        return _read_csv(path, fs)
    raise DataError(f"{path}: not an ECG recording this reads ({', '.join(SUFFIXES)})")


def choose_lead(recording: Recording, name: str) -> np.ndarray:
    """The lead called `name` (case and surrounding blanks ignored), checked to be all numbers."""
    wanted = name.strip().lower()
    matches = [i for i, lead in enumerate(recording.leads) if lead.strip().lower() == wanted]
    if not matches:
        raise DataError(
            f"{recording.path} has no lead {name!r} (its leads: {recording.leads}); choose one "
            f"with {LEAD_KEY}=<name>"
        )
    signal = recording.signals[:, matches[0]]
    if not np.isfinite(signal).all():
        raise DataError(
            f"{recording.path}: lead {name!r} has {int((~np.isfinite(signal)).sum())} missing or "
            f"non-numeric samples; choose another lead with {LEAD_KEY}=<name>"
        )
    return signal


def resample(signal: np.ndarray, fs: float, target_fs: float) -> np.ndarray:
    """`signal` from `fs` to `target_fs` Hz by polyphase filtering (scipy's `resample_poly`).

    Polyphase rather than FFT resampling: its anti-aliasing filter is local, so an R peak is
    not smeared by the periodic wrap-around FFT resampling assumes at the record's ends.
    """
    if float(fs) == float(target_fs):
        return np.asarray(signal, dtype=np.float64)
    from scipy.signal import resample_poly

    ratio = Fraction(float(target_fs) / float(fs)).limit_denominator(1000)
    return resample_poly(np.asarray(signal, dtype=np.float64), ratio.numerator, ratio.denominator)
