"""Stage `preprocess_ecg`: filtered, R-peak-centred, labelled beats with RR features, split.

Output contract (the RNN stage reads it): `data/processed/ecg.npz` with, per split s,
`s_beats` float32 (N, C, L) (`data.ecg.channels`: the standardised beat and/or the beat
minus its record's median beat), `s_rr` float32 (N, 10) (RR_FEATURES: previous, next, local and
5-minute average RR in seconds, and their ratios), `s_labels` int64 AAMI
index, `s_records` int64; and `ecg.json` with the class names, fs, lead, window, channels,
filter, RR settings and feature names (what a trained model needs to cut beats from a new
recording: `meddx.data.beat_spec`), split mode, per-split class counts and records.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from meddx.data.ecg_beat_extraction import (
    AAMI_CLASSES,
    RR_FEATURES,
    RecordBeats,
    filter_signal,
    record_beats,
)
from meddx.data.ecg_records import load_records
from meddx.data.ecg_splits import check_ecg_splits, inter_patient, intra_patient
from meddx.data.npz import SPLITS, save_npz
from meddx.data.stats import split_counts
from meddx.errors import ConfigError, DataError
from meddx.io import write_json
from meddx.paths import Layout, require
from meddx.tracking import stage_run

STAGE = "preprocess_ecg"
SECTIONS = ("seed", "data.ecg")


def _stack(beats: list[RecordBeats], numbers: list[int]) -> dict[str, np.ndarray]:
    return {
        "beats": np.concatenate([b.beats for b in beats]),
        "rr": np.concatenate([b.rr for b in beats]),
        "labels": np.concatenate([b.labels for b in beats]),
        "records": np.concatenate(
            [np.full(len(b.labels), n, np.int64) for b, n in zip(beats, numbers, strict=True)]
        ),
    }


def split_beats(
    per_record: dict[int, RecordBeats], spec: DictConfig, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
    """The `{split}_{beats,rr,labels,records}` arrays and the records of each split."""
    num_classes = len(spec.class_names)
    if spec.split == "inter-patient":
        counts = {r: np.bincount(b.labels, minlength=num_classes) for r, b in per_record.items()}
        assignment = inter_patient(counts, spec.ds1, spec.ds2, spec.val_records, seed)
        arrays = {}
        for split, numbers in assignment.items():
            stacked = _stack([per_record[r] for r in numbers], numbers)
            arrays.update({f"{split}_{kind}": value for kind, value in stacked.items()})
        return arrays, assignment
    if spec.split == "intra-patient":
        numbers = sorted(per_record)
        pooled = _stack([per_record[r] for r in numbers], numbers)
        indices = intra_patient(pooled["labels"], spec.intra_fractions, seed)
        arrays = {
            f"{split}_{kind}": value[indices[split]]
            for split in SPLITS
            for kind, value in pooled.items()
        }
        return arrays, {s: sorted(set(arrays[f"{s}_records"].tolist())) for s in SPLITS}
    raise ConfigError(
        f"data.ecg.split={spec.split!r} is not known; known: ['inter-patient', 'intra-patient']"
    )


def report(stats: dict[str, dict[str, int]], records: dict[str, list[int]], mode: str) -> str:
    names = [key for key in next(iter(stats.values())) if key != "n"]
    lines = [
        f"ECG beats per split ({mode}):",
        f"{'split':<6}{'records':>8}{'n':>8}" + "".join(f"{k[6:]:>8}" for k in names),
    ]
    for split, row in stats.items():
        lines.append(
            f"{split:<6}{len(records[split]):>8}{row['n']:>8}"
            + "".join(f"{row[k]:>8}" for k in names)
        )
    return "\n".join(lines)


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    spec = cfg.data.ecg
    if list(spec.class_names) != list(AAMI_CLASSES):
        raise ConfigError(
            f"data.ecg.class_names={list(spec.class_names)} must be the AAMI "
            f"classes {list(AAMI_CLASSES)} in this order"
        )
    source = require(layout.raw_ecg, layout.root)
    with stage_run(
        cfg, STAGE, inputs=[source], run_name=f"{STAGE} {spec.name}", sections=SECTIONS
    ) as tracked:
        records, fs, lead = load_records(source)
        if not records:
            raise DataError(f"{source} holds no record; rerun `dvc repro acquire_ecg`")
        window = (int(spec.window[0]), int(spec.window[1]))
        channels = list(spec.channels)
        per_record = {
            r.number: record_beats(
                filter_signal(r.millivolts(), fs, spec.filter),
                r.ann_sample,
                r.ann_symbol,
                fs,
                window,
                spec.rr_local,
                spec.rr_average_s,
                channels,
            )
            for r in records
        }
        arrays, assignment = split_beats(per_record, spec, cfg.seed)
        check_ecg_splits(arrays, len(spec.class_names), sum(window), spec.split, len(channels))
        save_npz(layout.processed_ecg, arrays, compress=False)
        stats = split_counts(arrays, "multi-class", list(spec.class_names))
        used = {r for numbers in assignment.values() for r in numbers}
        write_json(
            layout.processed_ecg_meta,
            {
                "name": spec.name,
                "class_names": list(spec.class_names),
                "fs": fs,
                "lead": lead,
                "window": list(window),
                "beat_channels": channels,
                "filter": OmegaConf.to_container(spec.filter, resolve=True),
                "rr_local": int(spec.rr_local),
                "rr_average_s": float(spec.rr_average_s),
                "rr_features": list(RR_FEATURES),
                "split": spec.split,
                "splits": stats,
                "records": assignment,
            },
        )
        metrics = {
            **stats,
            "beats_dropped": int(
                sum(b.annotated - len(b.labels) for r, b in per_record.items() if r in used)
            ),
        }
        write_json(layout.metrics(STAGE), metrics)
        print(report(stats, assignment, spec.split), flush=True)
        tracked.log_metrics({f"{s}.{k}": v for s, row in stats.items() for k, v in row.items()})
        tracked.log_artifact(layout.processed_ecg_meta)
    return metrics
