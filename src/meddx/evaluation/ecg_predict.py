"""`predict` for ECG recordings without annotations: per-beat AAMI classes from a beat model.

The recording's chosen lead is resampled to the model's rate, its R peaks are detected
(`meddx.data.qrs`), and the beats are cut, filtered and described exactly as the model's
training beats were (`meddx.data.beat_spec`, from the model's own info). Per recording three
files are written, each atomically: `<name>.beats.csv` (one row per detected beat, the
unclassifiable ones included with the reason), `<name>.counts.json` (beats per AAMI class and
how they were found) and `<name>.strip.png` (the first seconds, beats coloured by class).
A beat's confidence is its class's probability after the temperature the model stores
(`evaluate_rnn` fits one on the validation records and logs the model with it, the artifact
`model/model.pt` of its run); train_rnn's own model.pt has none, and the confidence is then
the raw probability. The `p_<class>` columns are the raw probabilities either way.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from torch import nn

from meddx.data import ecg_input, qrs
from meddx.data.beat_spec import BeatSpec, detected_beats
from meddx.errors import DataError
from meddx.evaluation import calibration
from meddx.evaluation.figures import ecg_strip
from meddx.io import write_json, write_text
from meddx.models.predict import probabilities

KIND = "ecg"
SUFFIXES = ecg_input.SUFFIXES


def fits(info: dict[str, Any]) -> bool:
    """Whether a model classifies ECG beats (it carries their preprocessing)."""
    return isinstance(info.get("ecg"), dict)


@dataclass(frozen=True)
class BeatCalls:
    """The detected beats of one recording and the model's call on each."""

    peaks: np.ndarray  # (D,) R peaks, samples at the model's rate
    labels: list[str]  # (D,) AAMI class, "" where not classified
    scores: np.ndarray  # (D, classes) probabilities, NaN where not classified
    confidence: np.ndarray  # (D,) the label's (calibrated) probability, NaN where not classified
    reasons: list[str]  # (D,) why a beat was not classified, else ""
    filtered: np.ndarray  # the lead at the model's rate, filtered as in training


def classify(
    signal: np.ndarray, peaks: np.ndarray, net: nn.Module, info: dict[str, Any], spec: BeatSpec
) -> BeatCalls:
    """Class probabilities of the beats at `peaks` of a lead already at the model's rate."""
    filtered = spec.filtered(signal)
    found = detected_beats(filtered, peaks, spec)
    names = list(info["class_names"])
    scores = np.full((len(peaks), len(names)), np.nan, dtype=np.float32)
    confidence = np.full(len(peaks), np.nan)
    labels = [""] * len(peaks)
    if len(found.index):
        scores[found.index] = probabilities(net, (found.beats, found.rr), info["task"])
        stored = info.get("calibration")
        called = scores[found.index]
        if stored is not None:
            called = calibration.scaled(called, stored["temperature"])
        confidence[found.index] = called.max(axis=1)
        for position, best in zip(found.index, called.argmax(axis=1), strict=True):
            labels[position] = names[best]
    return BeatCalls(np.asarray(peaks), labels, scores, confidence, found.reasons, filtered)


def _lead_at_model_rate(
    path: Path, spec: BeatSpec, options: DictConfig
) -> tuple[ecg_input.Recording, np.ndarray]:
    recording = ecg_input.read_recording(path, options.get("fs"))
    signal = ecg_input.choose_lead(recording, str(options.lead))
    if recording.seconds < qrs.MIN_SECONDS:
        raise DataError(
            f"{path} holds {recording.seconds:.1f} s of signal; R-peak detection and RR "
            f"features need at least {qrs.MIN_SECONDS:g} s: give a longer recording"
        )
    return recording, ecg_input.resample(signal, recording.fs, spec.fs)


def _csv(calls: BeatCalls, names: list[str], fs_in: float, fs_model: float) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["beat", "sample", "time_s", "class", "confidence", *[f"p_{n}" for n in names], "note"]
    )
    for i, peak in enumerate(calls.peaks):
        row = calls.scores[i]
        known = bool(calls.labels[i])
        writer.writerow(
            [
                i,
                round(int(peak) * fs_in / fs_model),
                f"{peak / fs_model:.4f}",
                calls.labels[i],
                f"{calls.confidence[i]:.6f}" if known else "",
                *[f"{p:.6f}" if known else "" for p in row],
                calls.reasons[i],
            ]
        )
    return out.getvalue()


def predict(
    path: Path,
    net: nn.Module,
    info: dict[str, Any],
    model: str,
    options: DictConfig,
    out_dir: Path,
) -> dict[str, Any]:
    """Classify every beat of the recording at `path`; write its three files; the summary."""
    spec = BeatSpec.of_model(info, model)
    recording, signal = _lead_at_model_rate(path, spec, options)
    peaks = qrs.detect(signal, spec.fs, str(options.detector))
    calls = classify(signal, peaks, net, info, spec)
    classified = sum(1 for label in calls.labels if label)
    if not classified:
        raise DataError(
            f"{path}: {len(peaks)} R peaks detected in lead {options.lead}, none classifiable "
            "(a beat needs a neighbour on each side and a full window): check the lead "
            f"({ecg_input.LEAD_KEY}) and that the recording holds an ECG"
        )
    names = list(info["class_names"])
    stem = path.stem if path.suffix.lower() != ".hea" else path.with_suffix("").name
    files = {
        "beats": out_dir / f"{stem}.beats.csv",
        "counts": out_dir / f"{stem}.counts.json",
        "strip": out_dir / f"{stem}.strip.png",
    }
    strip = min(len(signal), round(float(options.strip_seconds) * spec.fs))
    shown = calls.peaks < strip
    summary = {
        "input": str(path),
        "model": model,
        "lead": str(options.lead),
        "fs_input": recording.fs,
        "fs_model": spec.fs,
        "seconds": round(recording.seconds, 3),
        "detector": qrs.DETECTORS[str(options.detector)],
        "beats_detected": len(peaks),
        "beats_classified": classified,
        "beats_not_classified": len(peaks) - classified,
        "counts": {name: calls.labels.count(name) for name in names},
        "confidence_kind": calibration.confidence_kind(info.get("calibration")),
        "files": {kind: str(file) for kind, file in files.items()},
    }
    write_text(files["beats"], _csv(calls, names, recording.fs, spec.fs))
    ecg_strip(
        files["strip"],
        calls.filtered[:strip],
        spec.fs,
        calls.peaks[shown],
        [label for label, keep in zip(calls.labels, shown, strict=True) if keep],
        names,
        f"{stem}, lead {options.lead}: first {strip / spec.fs:.0f} s",
    )
    write_json(files["counts"], summary)
    return summary
