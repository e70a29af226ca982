"""`python benchmarks/bench_ds2_detected.py [overrides]`: the MIT-BIH inter-patient figures on
DS2 with beats found by the detectors `predict` uses, beside the figures with reference beats.

Trains `+experiment=mitbih_interpatient` (one seed, SEED, default 0; extra Hydra overrides
after the script name, e.g. `rnn.ensemble=1` for a shorter run) through the stages' `run()`
functions, rooted in runs/bench_ds2_detected/, and scores the exported model on DS2:
- reference beats: `evaluate_rnn` as the pipeline runs it (beats at the annotated R peaks);
- detected beats, once per detector of `meddx.data.qrs` (xqrs, gqrs): each DS2 record's
  lead, from the same raw file, through `meddx.data.qrs.detect` and
  `meddx.evaluation.ecg_predict.classify`, which is what `predict` does to a recording
  without annotations. A detected beat matched (within 150 ms) to a reference beat takes
  that beat's AAMI label; detected beats matched to no reference beat (false detections) and
  to a beat AAMI leaves unclassed are counted apart, as are reference beats no classifiable
  detection matched (missed: by the detector, or first/last beats without an RR neighbour).
  Figures over the matched beats use the same scoring as evaluate_rnn
  (`meddx.evaluation.scoring.score`); `se_end_to_end` counts the missed reference beats
  as misses.
Writes reports/benchmarks/mitbih_detected.{json,md}. REUSE=1 scores the model of the last run
again instead of training.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, mirror, project
from omegaconf import DictConfig

from meddx.data import qrs
from meddx.data.beat_spec import BeatSpec
from meddx.data.ecg_beat_extraction import aami_labels, beat_positions
from meddx.data.ecg_records import load_records
from meddx.evaluation import scoring
from meddx.evaluation.ecg_predict import classify
from meddx.io import write_json, write_text
from meddx.models import export
from meddx.paths import Layout

OUT = REPO / "reports" / "benchmarks"
STAGES = ("acquire_ecg", "preprocess_ecg", "train_rnn", "evaluate_rnn")
CLASSES = ("N", "S", "V", "F")


def pipeline(seed: int, work: Path, overrides: list[str]) -> DictConfig:
    cfg = project(
        work,
        "+experiment=mitbih_interpatient",
        f"seed={seed}",
        f"paths.mirror={mirror('mitbih')}",
        *overrides,
        experiment="bench-ds2-detected",
    )
    if os.environ.get("REUSE") and Layout.of(cfg).metrics("evaluate_rnn").is_file():
        return cfg  # score the model trained by the last run again (REUSE=1)
    for name in STAGES:
        importlib.import_module(f"meddx.stages.{name}").run(cfg)
    return cfg


def detected_on_ds2(cfg: DictConfig, detector: str) -> dict[str, Any]:
    layout = Layout.of(cfg)
    net, info = export.load(layout.model_dir("rnn") / "model.pt")
    spec = BeatSpec.of_model(info, "models/rnn/model.pt")
    records, fs, _ = load_records(layout.raw_ecg)
    ds2 = set(json.loads(layout.processed_ecg_meta.read_text())["records"]["test"])
    names = list(info["class_names"])
    y_true, scores = [], []
    tally = {"detected": 0, "false_detections": 0, "matched_unclassed": 0, "not_classified": 0}
    missed = np.zeros(len(names), dtype=np.int64)
    reference_total = np.zeros(len(names), dtype=np.int64)
    false_called = dict.fromkeys(names, 0)
    for record in (r for r in records if r.number in ds2):
        signal = record.millivolts()
        reference, symbols = beat_positions(record.ann_sample, record.ann_symbol)
        labels = aami_labels(symbols)
        peaks = qrs.detect(signal, fs, detector)
        calls = classify(signal, peaks, net, info, spec)
        found = qrs.match(reference, peaks, fs)
        classified = np.array([bool(label) for label in calls.labels])
        reference_total += np.bincount(labels[labels >= 0], minlength=len(names))
        hit = np.zeros(len(reference), dtype=bool)
        for i, ref in enumerate(found.reference_of):
            if ref < 0:
                tally["false_detections"] += 1
                if classified[i]:
                    false_called[calls.labels[i]] += 1
            elif not classified[i]:
                tally["not_classified"] += 1
            elif labels[ref] < 0:
                tally["matched_unclassed"] += 1
            else:
                hit[ref] = True
                y_true.append(labels[ref])
                scores.append(calls.scores[i])
        aami = labels >= 0
        missed += np.bincount(labels[aami & ~hit], minlength=len(names))
        tally["detected"] += len(peaks)
    y, s = np.asarray(y_true, dtype=np.int64), np.asarray(scores, dtype=np.float32)
    evaluation = scoring.score(info["task"], names, y, s, cfg.evaluate, cfg.seed)
    correct = np.bincount(y[s.argmax(axis=1) == y], minlength=len(names))
    return {
        "metrics": evaluation.metrics,
        "beats_scored": len(y),
        **tally,
        "false_detections_called": false_called,
        "reference_beats": dict(zip(names, reference_total.tolist(), strict=True)),
        "missed": dict(zip(names, missed.tolist(), strict=True)),
        "se_end_to_end": {
            name: float(correct[i] / reference_total[i]) if reference_total[i] else None
            for i, name in enumerate(names)
        },
    }


def markdown(summary: dict[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    def row(title: str, metrics: dict[str, Any]) -> str:
        cells = [
            f"{pct(metrics['per_class'][c]['sensitivity'])} / {pct(metrics['per_class'][c]['ppv'])}"
            for c in CLASSES
        ]
        return f"| {title} | {pct(metrics['test_acc'])} | " + " | ".join(cells) + " |"

    lines = [
        "# MIT-BIH inter-patient (DS2), reference vs detected R peaks, %",
        "",
        "| beats | Acc | " + " | ".join(f"{c} Se / +P" for c in CLASSES) + " |",
        "|---|---|" + "---|" * len(CLASSES),
        row("reference (evaluate_rnn)", summary["reference"]),
    ]
    notes = []
    for name in (n for n in qrs.DETECTORS if n in summary["detected"]):  # not the JSON's order
        d = summary["detected"][name]
        lines.append(row(f"detected, {name}", d["metrics"]))
        end = d["se_end_to_end"]
        lines.append(
            f"| detected, {name}: Se over all reference beats | | "
            + " | ".join(f"{pct(end[c])} / -" for c in CLASSES)
            + " |"
        )
        notes.append(
            f"{name}: {d['detected']} beats detected; scored (matched to an AAMI reference beat, "
            f"classifiable): {d['beats_scored']}; false detections: {d['false_detections']} "
            f"(called {d['false_detections_called']}); matched to a beat AAMI leaves unclassed: "
            f"{d['matched_unclassed']}; matched but not classifiable (no RR neighbour or "
            f"window): {d['not_classified']}; reference AAMI beats missed: {d['missed']}."
        )
    overrides = " ".join(f"`{o}`" for o in summary["overrides"]) or "none"
    lines += [
        "",
        f"Seed {summary['seed']}, `+experiment=mitbih_interpatient`, overrides: {overrides}.",
        "",
        *notes,
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    seed = int(os.environ.get("SEED", "0"))
    overrides = sys.argv[1:]
    work = REPO / "runs" / "bench_ds2_detected"
    work.mkdir(parents=True, exist_ok=True)
    cfg = pipeline(seed, work, overrides)
    reference = json.loads(Layout.of(cfg).metrics("evaluate_rnn").read_text())
    summary = {
        "seed": seed,
        "overrides": overrides,
        "reference": reference,
        "detected": {name: detected_on_ds2(cfg, name) for name in qrs.DETECTORS},
    }
    write_json(OUT / "mitbih_detected.json", summary)
    write_text(OUT / "mitbih_detected.md", markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
