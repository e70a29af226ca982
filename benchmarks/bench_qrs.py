"""`python benchmarks/bench_qrs.py` (`make bench-qrs`): the R-peak detectors of `predict` on
all 48 MIT-BIH records, against the reference annotations.

Each record's MLII lead (the first lead for 102 and 104, which have none) is read from the
data mirror ($MEDDX_DATA_MIRROR, else ../shared/data) exactly as `acquire_ecg` reads it, in
millivolts at 360 Hz, and goes through `meddx.data.qrs.detect` with each of its detectors
(xqrs, gqrs; then the snap to the R peak). Reference beats are the beat-type annotations
only (`BEAT_SYMBOLS`: rhythm, noise and comment annotations are no beats). A detection
within 150 ms of a reference beat matches it, one to one
(`wfdb.processing.compare_annotations`); the whole record is scored, the first minutes
included. Writes reports/benchmarks/qrs.{json,md}: per record and gross totals (sensitivity
= TP / (TP + FN), positive predictivity = TP / (TP + FP)), and how far matched detections
lie from the annotated R peak (the classifiers' windows are centred on it).
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import numpy as np
from common import REPO, mirror

from meddx.data import qrs
from meddx.data.ecg_beat_extraction import beat_positions
from meddx.data.mitbih import read_record
from meddx.io import write_json, write_text

OUT = REPO / "reports" / "benchmarks"
LEAD, FS = "MLII", 360.0
# /work/shared/reference/BENCHMARKS.md section 6.
PUBLISHED = "classic detectors (Pan-Tompkins 1985 and later) report about 99.3-99.8% on both"


def score_record(signal: np.ndarray, reference: np.ndarray, record: int, detector: str) -> dict:
    started = time.perf_counter()
    detected = qrs.detect(signal, FS, detector)
    seconds = time.perf_counter() - started
    found = qrs.match(reference, detected, FS)
    matched = found.reference_of >= 0
    offsets_ms = np.abs(detected[matched] - reference[found.reference_of[matched]]) / FS * 1000
    return {
        "record": record,
        "reference_beats": len(reference),
        "detected": len(detected),
        "tp": found.true_positives,
        "fn": found.false_negatives,
        "fp": found.false_positives,
        "sensitivity": found.sensitivity,
        "ppv": found.ppv,
        "offset_ms_median": float(np.median(offsets_ms)),
        "offset_ms_p95": float(np.percentile(offsets_ms, 95)),
        "detect_s": seconds,
    }


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tp, fn, fp = (sum(r[k] for r in rows) for k in ("tp", "fn", "fp"))
    return {
        "records": len(rows),
        "reference_beats": sum(r["reference_beats"] for r in rows),
        "tp": tp,
        "fn": fn,
        "fp": fp,
        "sensitivity": tp / (tp + fn),
        "ppv": tp / (tp + fp),
        "mean_record_sensitivity": statistics.fmean(r["sensitivity"] for r in rows),
        "mean_record_ppv": statistics.fmean(r["ppv"] for r in rows),
        "offset_ms_median": statistics.median(r["offset_ms_median"] for r in rows),
        "detect_s": sum(r["detect_s"] for r in rows),
    }


def markdown(summary: dict[str, Any]) -> str:
    detectors = summary["detectors"]
    names = [name for name in qrs.DETECTORS if name in detectors]  # not the JSON's sorted order
    lines = [
        "# QRS detection on MIT-BIH (all 48 records)",
        "",
        f"`meddx.data.qrs.detect` ({', '.join(f'{n}: `{qrs.DETECTORS[n]}`' for n in names)}, "
        f"then the snap to the R peak), lead {LEAD} (first lead of 102 and 104), 360 Hz; "
        f"match window {summary['match_ms']:g} ms; reference = beat annotations only. "
        f"Published: {PUBLISHED}.",
        "",
        "| record | beats | "
        + " | ".join(f"{n} TP / FN / FP | {n} Se % | {n} +P %" for n in names)
        + " |",
        "|---|---|" + "---|---|---|" * len(names),
    ]

    def cells(row: dict[str, Any], bold: bool = False) -> str:
        mark = "**" if bold else ""
        return (
            f"{row['tp']} / {row['fn']} / {row['fp']} | {mark}{100 * row['sensitivity']:.2f}{mark}"
            f" | {mark}{100 * row['ppv']:.2f}{mark}"
        )

    totals_ = {n: d["total"] for n, d in detectors.items()}
    first = totals_[names[0]]
    lines.append(
        f"| **gross** | {first['reference_beats']} | "
        + " | ".join(cells(totals_[n], bold=True) for n in names)
        + " |"
    )
    lines.append(
        "| mean of records | | "
        + " | ".join(
            f"| {100 * totals_[n]['mean_record_sensitivity']:.2f} | "
            f"{100 * totals_[n]['mean_record_ppv']:.2f}"
            for n in names
        )
        + " |"
    )
    for i, row in enumerate(detectors[names[0]]["records"]):
        lines.append(
            f"| {row['record']} | {row['reference_beats']} | "
            + " | ".join(cells(detectors[n]["records"][i]) for n in names)
            + " |"
        )
    lines += [
        "",
        "Record 207 holds ventricular flutter, which the reference does not annotate as beats; "
        "AAMI EC57 leaves such episodes out of QRS detection figures, this table counts the "
        "detections there as false ones.",
        "",
    ]
    for n in names:
        total = totals_[n]
        lines.append(
            f"{n}: matched detections lie a median {total['offset_ms_median']:.1f} ms (median over "
            f"records) from the annotated R peak; detection time, all records: "
            f"{total['detect_s']:.0f} s on this machine."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    folder = mirror("mitbih") / "mitbih"
    records = [int(line) for line in (folder / "RECORDS").read_text().split()]
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in qrs.DETECTORS}
    for record in records:
        ecg = read_record(folder, record, LEAD, FS, any_lead=True)
        reference, _ = beat_positions(ecg.ann_sample, ecg.ann_symbol)
        for name in qrs.DETECTORS:
            rows[name].append(score_record(ecg.millivolts(), reference, record, name))
            print(name, json.dumps(rows[name][-1]), flush=True)
    summary = {
        "snap_ms": qrs.SNAP_S * 1000,
        "match_ms": qrs.MATCH_S * 1000,
        "lead": LEAD,
        "published": PUBLISHED,
        "detectors": {
            name: {"detector": qrs.DETECTORS[name], "total": totals(found), "records": found}
            for name, found in rows.items()
        },
    }
    write_json(OUT / "qrs.json", summary)
    write_text(OUT / "qrs.md", markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
