"""R peaks of a recording without annotations, and how well they match reference beats.

The detectors are those of PhysioNet's WFDB Python package, not a hand-written Pan-Tompkins:
`xqrs` (`wfdb.processing.XQRS`, the default: the package's maintained detector) and `gqrs`
(`wfdb.processing.gqrs_detect`, a port of WFDB's gqrs that the package says is no longer
developed, kept because it misses fewer ectopic beats). On all 48 MIT-BIH records within
150 ms (`benchmarks/bench_qrs.py`, reports/benchmarks/qrs.md) xqrs finds 99.21% of the
reference beats at 99.30% +P, gqrs 99.87% at 99.27%; xqrs loses most in records rich in
ventricular beats (208: 92.2%, 108: 94.3%). neurokit2 was not taken: its current
release needs pandas < 3, and the lock file holds pandas 3.
A detector marks a point of the QRS complex, not necessarily its peak; the beat classifiers
were trained on windows centred on the annotated R peak, so each detection is moved to the
largest deflection within `SNAP_S` of it (`wfdb.processing.correct_peaks`), as the reference
annotations are placed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meddx.errors import ConfigError, DataError

DETECTORS = {"xqrs": "wfdb.processing.XQRS", "gqrs": "wfdb.processing.gqrs_detect"}
DETECTOR_KEY = "predict.ecg.detector"
SNAP_S = 0.05  # seconds around a detection searched for the R peak
SMOOTH_S = 0.15  # moving-average width removed before the search (baseline)
MATCH_S = 0.15  # AAMI EC57: a detection within 150 ms of a reference beat matches it
MIN_SECONDS = 10.0  # XQRS learns its thresholds from the first beats; below this it guesses


def _found(signal: np.ndarray, fs: float, detector: str) -> np.ndarray:
    from wfdb import processing

    if detector == "xqrs":
        xqrs = processing.XQRS(sig=signal, fs=fs)
        xqrs.detect(verbose=False)
        return np.asarray(xqrs.qrs_inds, dtype=np.int64)
    if detector == "gqrs":
        return np.asarray(processing.gqrs_detect(sig=signal, fs=fs), dtype=np.int64)
    raise ConfigError(f"{DETECTOR_KEY}={detector!r} is not known; known: {sorted(DETECTORS)}")


def detect(signal: np.ndarray, fs: float, detector: str = "xqrs") -> np.ndarray:
    """Sorted R-peak sample indices of one lead (mV) sampled at `fs` Hz."""
    from wfdb import processing

    seconds = len(signal) / fs
    if seconds < MIN_SECONDS:
        raise DataError(
            f"the lead holds {seconds:.1f} s of signal; R-peak detection needs at least "
            f"{MIN_SECONDS:g} s"
        )
    signal = np.asarray(signal, dtype=np.float64)
    found = _found(signal, fs, detector)
    if found.size == 0:
        return found
    snapped = processing.correct_peaks(
        signal,
        found,
        search_radius=max(1, round(SNAP_S * fs)),
        smooth_window_size=max(1, round(SMOOTH_S * fs)),
        peak_dir="compare",
    )
    return np.unique(np.asarray(snapped, dtype=np.int64))


@dataclass(frozen=True)
class Match:
    """Detections against reference beats, matched one to one within `MATCH_S`."""

    reference_of: np.ndarray  # (D,) index of the matched reference beat per detection, or -1
    true_positives: int
    false_negatives: int
    false_positives: int

    @property
    def sensitivity(self) -> float:
        found = self.true_positives + self.false_negatives
        return self.true_positives / found if found else float("nan")

    @property
    def ppv(self) -> float:
        called = self.true_positives + self.false_positives
        return self.true_positives / called if called else float("nan")


def match(reference: np.ndarray, detected: np.ndarray, fs: float) -> Match:
    """Pair detections with reference beats (`wfdb.processing.compare_annotations`)."""
    from wfdb import processing

    reference = np.asarray(reference, dtype=np.int64)
    detected = np.asarray(detected, dtype=np.int64)
    # compare_annotations matches a pair whose distance is strictly below its window.
    comparison = processing.compare_annotations(reference, detected, int(MATCH_S * fs) + 1)
    reference_of = np.full(len(detected), -1, dtype=np.int64)
    for ref_index, det_index in enumerate(np.asarray(comparison.matching_sample_nums)):
        if det_index >= 0:
            reference_of[int(det_index)] = ref_index
    return Match(
        reference_of=reference_of,
        true_positives=int(comparison.tp),
        false_negatives=int(comparison.fn),
        false_positives=int(comparison.fp),
    )
