"""From a continuous ECG lead to labelled beats: filtering, AAMI labels, windows, RR features.

Pure numpy/scipy functions over one record, so that the same code serves MIT-BIH and the
synthetic stand-in, and hypothesis can check the windowing and the label mapping directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig

from meddx.errors import ConfigError

AAMI_CLASSES = ("N", "S", "V", "F", "Q")
# BENCHMARKS.md section 2 (AAMI EC57 grouping of the MIT-BIH beat symbols).
AAMI_GROUPS: dict[str, tuple[str, ...]] = {
    "N": ("N", "L", "R", "e", "j"),
    "S": ("A", "a", "J", "S"),
    "V": ("V", "E"),
    "F": ("F",),
    "Q": ("/", "f", "Q"),
}
AAMI_INDEX: dict[str, int] = {
    symbol: AAMI_CLASSES.index(group)
    for group, symbols in AAMI_GROUPS.items()
    for symbol in symbols
}
# Every WFDB beat symbol: these are R peaks (they count for RR intervals) even when AAMI gives
# them no class (B, r, n, ?). Everything else (+, ~, |, x, !, ...) is a rhythm/noise note.
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")
RR_FEATURES = (
    "rr_prev",
    "rr_next",
    "rr_local",
    "rr_ratio",
    "rr_next_local",
    "rr_prev_next",
    "rr_average",
    "rr_prev_average",
    "rr_next_average",
    "rr_local_average",
)
BASELINE_MODES = ("median", "highpass", "none")


def aami_labels(symbols: Iterable[str]) -> np.ndarray:
    """AAMI class index per annotation symbol; -1 for anything that is not an AAMI beat."""
    return np.array([AAMI_INDEX.get(str(s), -1) for s in symbols], dtype=np.int64)


def beat_positions(samples: np.ndarray, symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The annotated R peaks (sorted) and their symbols, non-beat annotations removed."""
    is_beat = np.isin(symbols, list(BEAT_SYMBOLS))
    peaks, beat_symbols = np.asarray(samples)[is_beat], np.asarray(symbols)[is_beat]
    order = np.argsort(peaks, kind="stable")
    return peaks[order].astype(np.int64), beat_symbols[order]


def beat_windows(
    signal: np.ndarray, peaks: np.ndarray, before: int, after: int
) -> tuple[np.ndarray, np.ndarray]:
    """Windows `signal[p - before : p + after]` (R peak at index `before`) and a kept-mask.

    Beats whose window would cross either end of the record are dropped rather than padded:
    padding would invent signal the classifier could learn from.
    """
    if before < 0 or after < 1:
        raise ConfigError(f"window [{before}, {after}] must have before >= 0 and after >= 1")
    peaks = np.asarray(peaks, dtype=np.int64)
    kept = (peaks - before >= 0) & (peaks + after <= len(signal))
    index = peaks[kept, None] + np.arange(-before, after, dtype=np.int64)
    return signal[index], kept


def rr_features(peaks: np.ndarray, fs: float, local: int, average_s: float) -> np.ndarray:
    """(N, 10) RR_FEATURES: previous RR, next RR, mean of the last `local` RR (seconds), the
    ratios previous/local, next/local and previous/next, then the mean RR over `average_s`
    seconds centred on the beat (de Chazal's 5-minute average) and previous, next and local
    over that average.

    The ratios are what carries across patients: a supraventricular beat comes early *for
    this heart* and is followed by a pause, while resting rates differ between patients by
    more than an ectopic beat's prematurity. The local mean follows a run of ectopic beats
    (bigeminy pulls it down until premature beats look normal); the long average does not,
    so the two ratios together tell a premature beat from a faster rhythm. Seconds stay
    available for intra-patient work. NaN where a neighbour is missing (first and last beat),
    so callers drop those beats instead of training on a made-up interval.
    """
    if not average_s > 0:
        raise ConfigError(f"data.ecg.rr_average_s={average_s} must be a positive number of seconds")
    n = len(peaks)
    out = np.full((n, len(RR_FEATURES)), np.nan)
    if n < 2:
        return out
    times = np.asarray(peaks, dtype=np.float64) / fs
    rr = np.diff(times)
    out[1:, 0] = rr
    out[:-1, 1] = rr
    # Mean of rr[max(0, i - local) : i] for beat i >= 1 (its own previous RR included).
    cumulative = np.concatenate([[0.0], np.cumsum(rr)])
    ends = np.arange(1, n)
    starts = np.maximum(0, ends - local)
    out[1:, 2] = (cumulative[ends] - cumulative[starts]) / (ends - starts)
    # Mean of the intervals ending within average_s / 2 of the beat (fewer at record ends).
    first = np.searchsorted(times[1:], times - average_s / 2, side="left")
    last = np.searchsorted(times[1:], times + average_s / 2, side="right")
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, 6] = (cumulative[last] - cumulative[first]) / (last - first)
        out[:, 3] = out[:, 0] / out[:, 2]
        out[:, 4] = out[:, 1] / out[:, 2]
        out[:, 5] = out[:, 0] / out[:, 1]
        out[:, 7:10] = out[:, [0, 1, 2]] / out[:, 6:7]
    return out


def _odd(samples: float) -> int:
    return max(1, round(samples) // 2 * 2 + 1)


def filter_signal(signal: np.ndarray, fs: float, spec: DictConfig) -> np.ndarray:
    """Remove baseline wander, then high-frequency noise (zero-phase, so R peaks stay put)."""
    from scipy import ndimage
    from scipy import signal as sps

    x = np.asarray(signal, dtype=np.float64)
    if spec.baseline == "median":
        baseline = x
        for ms in spec.median_ms:
            baseline = ndimage.median_filter(baseline, size=_odd(ms * fs / 1000), mode="nearest")
        x = x - baseline
    elif spec.baseline == "highpass":
        sos = sps.butter(spec.order, spec.highpass_hz, btype="highpass", fs=fs, output="sos")
        x = sps.sosfiltfilt(sos, x)
    elif spec.baseline != "none":
        raise ConfigError(
            f"data.ecg.filter.baseline={spec.baseline!r} is not known; "
            f"known: {list(BASELINE_MODES)}"
        )
    if spec.lowpass_hz is not None:
        if not 0 < spec.lowpass_hz < fs / 2:
            raise ConfigError(
                f"data.ecg.filter.lowpass_hz={spec.lowpass_hz} must lie in (0, {fs / 2}) at fs={fs}"
            )
        sos = sps.butter(spec.order, spec.lowpass_hz, btype="lowpass", fs=fs, output="sos")
        x = sps.sosfiltfilt(sos, x)
    return x.astype(np.float32)


BEAT_CHANNELS = ("beat", "deviation")


def beat_channels(beats: np.ndarray, channels: Sequence[str]) -> np.ndarray:
    """(N, L) standardised beats of one record -> (N, C, L), one row per name in `channels`:
    `beat` is the beat itself, `deviation` the beat minus the record's median beat.

    The median beat is the patient's own dominant morphology (labels unseen), so `deviation`
    says how unusual a beat is *for this heart*, which carries across patients where raw
    shapes do not (leads, electrodes and anatomy differ): a ventricular beat stands out from
    its template, a supraventricular one matches it.
    """
    unknown = [name for name in channels if name not in BEAT_CHANNELS]
    if unknown or not channels:
        raise ConfigError(
            f"data.ecg.channels={list(channels)} must name some of {list(BEAT_CHANNELS)}"
        )
    template = np.median(beats, axis=0, keepdims=True) if len(beats) else beats[:0]
    made = {"beat": beats, "deviation": beats - template}
    return np.stack([made[name] for name in channels], axis=1).astype(np.float32)


def standardise(beats: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per beat: amplitude differs between patients and leads."""
    mean = beats.mean(axis=-1, keepdims=True)
    std = np.maximum(beats.std(axis=-1, keepdims=True), 1e-6)
    return ((beats - mean) / std).astype(np.float32)


@dataclass(frozen=True)
class RecordBeats:
    beats: np.ndarray  # (N, C, L) float32, standardised per beat, channels by name
    rr: np.ndarray  # (N, len(RR_FEATURES)) float32
    labels: np.ndarray  # (N,) int64 AAMI class index
    annotated: int  # beat annotations in the record, kept or not


def record_beats(
    signal: np.ndarray,
    samples: np.ndarray,
    symbols: np.ndarray,
    fs: float,
    window: tuple[int, int],
    rr_local: int,
    rr_average_s: float,
    channels: Sequence[str] = ("beat",),
) -> RecordBeats:
    """The labelled beats of one filtered record.

    RR intervals use every annotated beat (AAMI-classed or not) so that an unclassified beat
    does not fake a long pause; kept are the AAMI beats with both neighbours and a full window.
    `channels` says which views of each beat to keep (`beat_channels`).
    """
    peaks, beat_symbols = beat_positions(samples, symbols)
    labels = aami_labels(beat_symbols)
    rr = rr_features(peaks, fs, rr_local, rr_average_s)
    beats, in_bounds = beat_windows(signal, peaks, *window)
    keep = (labels[in_bounds] >= 0) & np.isfinite(rr[in_bounds]).all(axis=1)
    kept = standardise(beats[keep])
    return RecordBeats(
        beats=beat_channels(kept, channels),
        rr=rr[in_bounds][keep].astype(np.float32),
        labels=labels[in_bounds][keep],
        annotated=len(peaks),
    )
