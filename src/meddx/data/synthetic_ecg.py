"""A seeded, offline stand-in for MIT-BIH: continuous one-lead records with annotated beats.

Each beat is a sum of Gaussian waves (P, Q, R, S, T; McSharry et al. 2003 style) whose shape
and timing depend on the AAMI class the way the clinical definitions say:
- N: upright P wave, narrow QRS, regular RR;
- S (atrial premature, 'A'): early beat (short previous RR), abnormal (inverted, early) P,
  narrow QRS, a slightly long next RR;
- V (premature ventricular, 'V'): early, no P, wide tall QRS, discordant T, full
  compensatory pause;
- F (fusion, 'F'): a blend of the N and V shapes, slightly early;
- Q (paced, '/'): a pacing spike before a wide QRS, no P.
Patients differ (heart rate, amplitude, QRS width, T wave, noise, baseline wander, class mix),
so an inter-patient split is a real generalisation test. Records are written in the same raw
layout as MIT-BIH and go through the same filtering and windowing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from meddx.data.ecg_beat_extraction import AAMI_CLASSES
from meddx.data.ecg_records import EcgRecord

SYMBOLS = {"N": "N", "S": "A", "V": "V", "F": "F", "Q": "/"}
CLASS_MIX = np.array([0.70, 0.11, 0.10, 0.05, 0.04])  # N, S, V, F, Q: mean share per record
GAIN = 200.0  # ADC units per mV, as in MIT-BIH
MARGIN_S = 1.0  # signal before the first and after the last beat

# (amplitude mV, centre s relative to R, width s) of the waves of each class.
WAVES: dict[str, list[tuple[float, float, float]]] = {
    "N": [
        (0.15, -0.20, 0.025),
        (-0.10, -0.03, 0.008),
        (1.00, 0.0, 0.010),
        (-0.25, 0.03, 0.010),
        (0.30, 0.26, 0.050),
    ],
    "S": [
        (-0.10, -0.14, 0.020),
        (-0.10, -0.03, 0.008),
        (1.00, 0.0, 0.010),
        (-0.25, 0.03, 0.010),
        (0.25, 0.24, 0.050),
    ],
    "V": [(1.40, 0.0, 0.035), (-0.50, 0.08, 0.030), (-0.40, 0.32, 0.070)],
    "Q": [(1.50, -0.05, 0.002), (0.90, 0.02, 0.030), (-0.30, 0.08, 0.025), (-0.25, 0.30, 0.060)],
}


def _waves(label: str, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    if label == "F":
        mix = rng.uniform(0.35, 0.65)
        normal = [(a * (1 - mix), c, w) for a, c, w in WAVES["N"]]
        return normal + [(a * mix, c, w) for a, c, w in WAVES["V"]]
    return WAVES[label]


def _rr(label: str, previous: str | None, base: float, rng: np.random.Generator) -> float:
    """The RR interval that ends at a beat of class `label` (premature beats stay premature)."""
    if label in ("S", "V"):
        return base * rng.uniform(0.55, 0.75)
    if label == "F":
        return base * rng.uniform(0.85, 0.97)
    if previous == "V":
        return base * rng.uniform(1.3, 1.45)  # compensatory pause after a PVC
    if previous == "S":
        return base * rng.uniform(1.0, 1.15)
    return base * (1.0 + rng.normal(0.0, 0.03))


def make_record(number: int, beats: int, fs: float, noise: float, seed: int) -> EcgRecord:
    """One synthetic patient; the same (number, seed) always gives the same samples."""
    rng = np.random.default_rng([seed, number])
    base_rr = rng.uniform(0.65, 1.05)
    amplitude = rng.uniform(0.7, 1.4)
    width = rng.uniform(0.85, 1.2)
    t_scale = rng.uniform(0.6, 1.4)
    mix = rng.dirichlet(40 * CLASS_MIX)
    labels = rng.choice(AAMI_CLASSES, size=beats, p=mix)
    times, t, previous = [], MARGIN_S, None
    for label in labels:
        t += _rr(label, previous, base_rr, rng) if previous is not None else 0.0
        times.append(t)
        previous = label
    length = int((t + MARGIN_S) * fs)
    clock = np.arange(length) / fs
    signal = np.zeros(length)
    reach = int(0.6 * fs)
    for label, centre in zip(labels, times, strict=True):
        r = round(centre * fs)
        lo, hi = max(0, r - reach), min(length, r + reach)
        local = clock[lo:hi] - r / fs
        for amp, offset, sigma in _waves(label, rng):
            is_t = offset > 0.15
            scale = t_scale if is_t else 1.0
            sigma = sigma * (width if abs(offset) < 0.1 else 1.0)
            wave = np.exp(-0.5 * ((local - offset) / sigma) ** 2)
            signal[lo:hi] += amplitude * scale * amp * wave
    wander = rng.uniform(0.05, 0.3) * np.sin(
        2 * np.pi * rng.uniform(0.1, 0.4) * clock + rng.uniform(0, 2 * np.pi)
    )
    signal += wander + rng.normal(0.0, noise * rng.uniform(0.5, 1.5), length)
    samples = np.array([round(c * fs) for c in times], dtype=np.int64)
    symbols = np.array([SYMBOLS[label] for label in labels])
    # A rhythm note at the start, as MIT-BIH has: not a beat, preprocessing must skip it.
    return EcgRecord(
        number=number,
        signal=np.round(signal * GAIN).astype(np.int16),
        gain=GAIN,
        baseline=0,
        ann_sample=np.concatenate([[0], samples]),
        ann_symbol=np.concatenate([["+"], symbols]),
    )


def generate(
    records: Sequence[int], beats: int, fs: float, noise: float, seed: int
) -> list[EcgRecord]:
    return [make_record(number, beats, fs, noise, seed) for number in records]
