"""Reading the processed ECG beat file (`data/processed/ecg.npz`) for the beat classifiers.

Layout, per split s in train/val/test: `s_beats` float32 (N, C, L), `s_rr` float32 (N, R),
`s_labels` int64 (N,) AAMI class index, `s_records` int64 (N,) source record of each beat.
Inter-patient evaluation is only meaningful when no record contributes beats to more than one
split; a file that breaks this is refused here, before any training or scoring happens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from meddx.data.npz import load_npz
from meddx.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
FIELDS = ("beats", "rr", "labels", "records")


def keys(splits: tuple[str, ...] = SPLITS, fields: tuple[str, ...] = FIELDS) -> tuple[str, ...]:
    return tuple(f"{split}_{field}" for split in splits for field in fields)


REBUILD = "rebuild it with `dvc repro preprocess_ecg` from a split whose record sets are disjoint"


def check_records_disjoint(
    records: dict[str, np.ndarray], path: Path | str, fix: str = REBUILD
) -> None:
    """Refuse beats of one record in two splits: it would be intra-patient, not inter-patient."""
    names = list(records)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = np.intersect1d(records[first], records[second])
            if shared.size:
                raise DataError(
                    f"{path}: records {shared.tolist()[:10]} have beats in both the {first} and "
                    f"the {second} split (record-level leakage); {fix}"
                )


def _check_split(arrays: dict[str, np.ndarray], split: str, path: Path | str) -> None:
    beats, rr, labels, records = (arrays[f"{split}_{f}"] for f in FIELDS)
    n = len(labels)
    if beats.ndim != 3 or rr.ndim != 2 or labels.ndim != 1 or records.ndim != 1:
        raise DataError(
            f"{path}: {split} arrays must be beats (N, C, L), rr (N, R), labels (N,), "
            f"records (N,); got {beats.shape}, {rr.shape}, {labels.shape}, "
            f"{records.shape}"
        )
    if {len(beats), len(rr), len(records)} != {n} or n == 0:
        raise DataError(f"{path}: the {split} split is empty or its arrays differ in length")
    if not (np.isfinite(beats).all() and np.isfinite(rr).all()):
        raise DataError(f"{path}: the {split} beats or RR features contain NaN or inf")


def load_beats(path: Path | str, splits: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays of `splits`, checked, with record disjointness checked across ALL splits."""
    path = Path(path)
    arrays = load_npz(path, keys=keys())
    check_records_disjoint({s: arrays[f"{s}_records"] for s in SPLITS}, path)
    result: dict[str, np.ndarray] = {}
    for split in splits:
        _check_split(arrays, split, path)
        result |= {
            f"{split}_beats": arrays[f"{split}_beats"].astype(np.float32, copy=False),
            f"{split}_rr": arrays[f"{split}_rr"].astype(np.float32, copy=False),
            f"{split}_labels": arrays[f"{split}_labels"].astype(np.int64, copy=False),
            f"{split}_records": arrays[f"{split}_records"],
        }
    return result


def rr_columns(available: list[str], wanted: list[str] | None) -> list[int]:
    """Indices of the `wanted` RR features among those the file holds (all when None).

    Which intervals a network sees is a modelling choice (seconds do not transfer between
    patients, ratios do), so the file keeps every feature and the model config picks.
    """
    if wanted is None:
        return list(range(len(available)))
    unknown = [name for name in wanted if name not in available]
    if unknown or not wanted:
        raise ConfigError(
            f"rnn.rr_inputs={list(wanted)} must name some of the RR features of the processed "
            f"ECG file: {available}"
        )
    return [available.index(name) for name in wanted]
