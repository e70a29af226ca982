"""ECG splits and the checks every ECG dataset passes before anything trains on it.

Inter-patient (de Chazal 2004) is the default because it is the only protocol whose figures
mean anything for a new patient: DS1 records train, DS2 records test, and validation is a
set of whole DS1 records, never beats, so model selection never sees a test patient or a
training patient's beats. Intra-patient (random beats) exists for comparison with the
(inflated) literature that uses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from meddx.data.array_checks import check_finite, check_label_range
from meddx.data.ecg_beat_extraction import RR_FEATURES
from meddx.data.npz import SPLITS
from meddx.errors import ConfigError, DataError

SPLIT_MODES = ("inter-patient", "intra-patient")
ARRAYS = ("beats", "rr", "labels", "records")
VAL_CANDIDATES = 256  # seeded record subsets scored when carving validation out of DS1
MIN_BEATS_TO_BALANCE = 20  # classes rarer than this in DS1 are ignored by that score


def choose_val_records(class_counts: Mapping[int, np.ndarray], n_val: int, seed: int) -> list[int]:
    """Whole records for validation whose class shares best match the training pool's.

    A plain random pick of a few records often holds no S or F beat at all (they cluster in
    a handful of patients), which makes validation useless for model selection. So: draw
    seeded candidate subsets and keep the one whose worst class deviates least from holding
    `n_val / n_records` of that class.
    """
    records = sorted(class_counts)
    if not 1 <= n_val < len(records):
        raise ConfigError(
            f"data.ecg.val_records={n_val} must lie in 1..{len(records) - 1}: there are "
            f"{len(records)} DS1 records ({records}) to share between training and validation"
        )
    counts = np.stack([class_counts[r] for r in records]).astype(np.float64)
    totals = counts.sum(axis=0)
    balanced = totals >= MIN_BEATS_TO_BALANCE
    target = n_val / len(records)
    rng = np.random.default_rng(seed)
    best, best_score = None, np.inf
    for _ in range(VAL_CANDIDATES):
        pick = np.sort(rng.choice(len(records), size=n_val, replace=False))
        shares = counts[pick].sum(axis=0)[balanced] / totals[balanced]
        score = float(np.max(np.abs(shares - target))) if shares.size else 0.0
        if score < best_score:
            best, best_score = pick, score
    assert best is not None
    return [records[i] for i in best]


def inter_patient(
    class_counts: Mapping[int, np.ndarray],
    ds1: Sequence[int],
    ds2: Sequence[int],
    n_val: int,
    seed: int,
) -> dict[str, list[int]]:
    """Records per split: DS1 minus validation -> train, validation from DS1, DS2 -> test."""
    available = set(class_counts)
    train_pool = [r for r in ds1 if r in available]
    test = sorted(r for r in ds2 if r in available)
    for name, chosen, listed in (("DS1", train_pool, ds1), ("DS2", test, ds2)):
        if not chosen:
            raise DataError(
                f"No {name} record among the records read ({sorted(available)}); {name} lists "
                f"{list(listed)}: check data.ecg.records"
            )
    val = choose_val_records({r: class_counts[r] for r in train_pool}, n_val, seed)
    train = sorted(r for r in train_pool if r not in val)
    return {"train": train, "val": sorted(val), "test": test}


def intra_patient(
    labels: np.ndarray, fractions: Sequence[float], seed: int
) -> dict[str, np.ndarray]:
    """Beat indices per split, stratified by class (every class split in the same shares)."""
    fractions = [float(f) for f in fractions]
    if len(fractions) != len(SPLITS) or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(
            f"data.ecg.intra_fractions={fractions} must be three positive shares "
            "(train, val, test) summing to 1"
        )
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cuts = np.round(np.cumsum(fractions[:-1]) * len(members)).astype(int)
        for split, chunk in zip(SPLITS, np.split(members, cuts), strict=True):
            parts[split].append(chunk)
    return {split: np.sort(np.concatenate(chunks)) for split, chunks in parts.items()}


def check_record_leakage(records_by_split: Mapping[str, Iterable[int]]) -> None:
    """A patient in two splits makes inter-patient figures intra-patient ones: refuse it."""
    owner: dict[int, str] = {}
    clashes: list[str] = []
    for split, records in records_by_split.items():
        for record in sorted({int(r) for r in records}):
            first = owner.setdefault(record, split)
            if first != split:
                clashes.append(f"record {record} in '{first}' and '{split}'")
    if clashes:
        raise DataError(
            f"{len(clashes)} ECG record(s) appear in more than one split (leakage): "
            + "; ".join(clashes)
            + ". Check data.ecg.ds1/ds2 and data.ecg.records"
        )


def check_ecg_splits(
    arrays: Mapping[str, np.ndarray],
    num_classes: int,
    length: int,
    split_mode: str,
    channels: int = 1,
) -> None:
    """Shapes, dtypes, finiteness, label range, non-empty splits, and (inter-patient) leakage."""
    if split_mode not in SPLIT_MODES:
        raise ConfigError(f"data.ecg.split={split_mode!r} is not known; known: {list(SPLIT_MODES)}")
    expected = {
        "beats": ((channels, length), np.float32),
        "rr": ((len(RR_FEATURES),), np.float32),
        "labels": ((), np.int64),
        "records": ((), np.int64),
    }
    for split in SPLITS:
        missing = [f"{split}_{kind}" for kind in ARRAYS if f"{split}_{kind}" not in arrays]
        if missing:
            raise DataError(f"ECG dataset lacks the arrays {missing}")
        n = len(arrays[f"{split}_labels"])
        if n == 0:
            raise DataError(f"ECG split '{split}' is empty")
        for kind, (tail, dtype) in expected.items():
            name = f"{split}_{kind}"
            value = arrays[name]
            if value.shape != (n, *tail):
                raise DataError(f"{name} has shape {value.shape}; expected {(n, *tail)}")
            if value.dtype != dtype:
                raise DataError(f"{name} has dtype {value.dtype}; expected {np.dtype(dtype)}")
            if kind in ("beats", "rr"):
                check_finite(name, value)
        check_label_range(f"{split}_labels", arrays[f"{split}_labels"], num_classes)
    if split_mode == "inter-patient":
        check_record_leakage({s: np.unique(arrays[f"{s}_records"]) for s in SPLITS})
