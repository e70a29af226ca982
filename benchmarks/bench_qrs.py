"""`python benchmarks/bench_qrs.py`: the R-peak detector `predict` uses, on all 48 MIT-BIH
records, against the reference annotations.

Each record's MLII lead (the first lead for 102 and 104, which have none) is read from the
data mirror ($MEDDX_DATA_MIRROR, else ../shared/data) exactly as `acquire_ecg` reads it, in
millivolts at 360 Hz, and goes through `meddx.data.qrs.detect` (XQRS, then the snap to the R
peak). Reference beats are the beat-type annotations only (`BEAT_SYMBOLS`: rhythm, noise and
comment annotations are no beats). A detection within 150 ms of a reference beat matches it,
one to one (`wfdb.processing.compare_annotations`); the whole record is scored, the first
minutes included. Writes reports/benchmarks/qrs.{json,md}: per record and gross totals
(sensitivity = TP / (TP + FN), positive predictivity = TP / (TP + FP)), and how far matched
detections lie from the annotated R peak (the classifiers' windows are centred on it).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, mirror

from meddx.data import qrs
from meddx.data.ecg_beats import beat_positions
from meddx.data.mitbih import read_record
from meddx.io import write_json, write_text

OUT = REPO / "reports" / "benchmarks"
LEAD, FS = "MLII", 360.0
# /work/shared/reference/BENCHMARKS.md section 6.
PUBLISHED = "classic detectors (Pan-Tompkins 1985 and later) report about 99.3-99.8% on both"


def score_record(folder: Path, record: int) -> dict[str, Any]:
    ecg = read_record(folder, record, LEAD, FS, any_lead=True)
    reference, _ = beat_positions(ecg.ann_sample, ecg.ann_symbol)
    started = time.perf_counter()
    detected = qrs.detect(ecg.millivolts(), FS)
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
    total = summary["total"]
    lines = [
        "# QRS detection on MIT-BIH (all 48 records)",
        "",
        f"Detector: `{summary['detector']}` then the snap to the R peak "
        f"(`meddx.data.qrs`), lead {LEAD} (first lead of 102 and 104), 360 Hz; match window "
        f"{summary['match_ms']:g} ms; reference = beat annotations only. Published: {PUBLISHED}.",
        "",
        "| | beats | TP | FN | FP | Se % | +P % |",
        "|---|---|---|---|---|---|---|",
        f"| **gross, 48 records** | {total['reference_beats']} | {total['tp']} | {total['fn']} | "
        f"{total['fp']} | **{100 * total['sensitivity']:.2f}** | **{100 * total['ppv']:.2f}** |",
        f"| mean of records | | | | | {100 * total['mean_record_sensitivity']:.2f} | "
        f"{100 * total['mean_record_ppv']:.2f} |",
    ]
    lines += [
        f"| {r['record']} | {r['reference_beats']} | {r['tp']} | {r['fn']} | {r['fp']} | "
        f"{100 * r['sensitivity']:.2f} | {100 * r['ppv']:.2f} |"
        for r in summary["records"]
    ]
    lines += [
        "",
        f"Matched detections lie a median {total['offset_ms_median']:.1f} ms (median over "
        "records) from the annotated R peak. Detection time, all records: "
        f"{total['detect_s']:.0f} s on this machine.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    folder = mirror("mitbih") / "mitbih"
    records = [int(line) for line in (folder / "RECORDS").read_text().split()]
    rows = []
    for record in records:
        rows.append(score_record(folder, record))
        print(json.dumps(rows[-1]), flush=True)
    summary = {
        "detector": qrs.DETECTOR,
        "snap_ms": qrs.SNAP_S * 1000,
        "match_ms": qrs.MATCH_S * 1000,
        "lead": LEAD,
        "published": PUBLISHED,
        "total": totals(rows),
        "records": rows,
    }
    write_json(OUT / "qrs.json", summary)
    write_text(OUT / "qrs.md", markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
