"""The raw ECG layout every source is turned into: one lead per record plus its annotations.

Signals stay in ADC units (int16, as stored by WFDB) with gain and baseline beside them:
half the size of float32, and exactly the numbers in the source files. `data/raw/ecg.npz`
holds `records`, `fs`, `lead`, `gain`, `baseline` and per record `<r>_signal`,
`<r>_ann_sample`, `<r>_ann_symbol`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from meddx.data.npz import load_npz, save_npz
from meddx.errors import DataError

HEADER_KEYS = ("records", "fs", "lead", "gain", "baseline")


@dataclass(frozen=True)
class EcgRecord:
    number: int
    signal: np.ndarray  # (T,) int16, ADC units
    gain: float  # ADC units per mV
    baseline: int  # ADC value of 0 mV
    ann_sample: np.ndarray  # (A,) int64, sample index of each annotation
    ann_symbol: np.ndarray  # (A,) str, WFDB annotation symbol

    def millivolts(self) -> np.ndarray:
        return (self.signal.astype(np.float64) - self.baseline) / self.gain


def save_records(path: str | Path, records: list[EcgRecord], fs: float, lead: str) -> None:
    arrays: dict[str, np.ndarray] = {
        "records": np.array([r.number for r in records], dtype=np.int64),
        "fs": np.array(fs, dtype=np.float64),
        "lead": np.array(lead),
        "gain": np.array([r.gain for r in records], dtype=np.float64),
        "baseline": np.array([r.baseline for r in records], dtype=np.int64),
    }
    for r in records:
        arrays[f"{r.number}_signal"] = r.signal.astype(np.int16)
        arrays[f"{r.number}_ann_sample"] = r.ann_sample.astype(np.int64)
        arrays[f"{r.number}_ann_symbol"] = r.ann_symbol.astype(str)
    save_npz(path, arrays, compress=False)


def load_records(path: str | Path) -> tuple[list[EcgRecord], float, str]:
    """Records, sampling rate and lead name of a raw ECG file."""
    arrays = load_npz(path, keys=HEADER_KEYS)
    records = []
    for i, number in enumerate(arrays["records"].tolist()):
        keys = [f"{number}_{kind}" for kind in ("signal", "ann_sample", "ann_symbol")]
        missing = [key for key in keys if key not in arrays]
        if missing:
            raise DataError(f"{path} lists record {number} but lacks the arrays {missing}")
        records.append(
            EcgRecord(
                number=int(number),
                signal=arrays[keys[0]],
                gain=float(arrays["gain"][i]),
                baseline=int(arrays["baseline"][i]),
                ann_sample=arrays[keys[1]],
                ann_symbol=arrays[keys[2]],
            )
        )
    return records, float(arrays["fs"]), str(arrays["lead"])
