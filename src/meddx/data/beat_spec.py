"""The beat preprocessing a classifier was trained with, carried in its model.pt, and applied to
R peaks found in a new recording.

`preprocess_ecg` records its filter, window, channels and RR settings in `ecg.json`;
`train_rnn` copies them into the exported model (`info["ecg"]`), so a model says itself how a
new lead must be filtered and cut, whatever the params.yaml of the place it is used. The beats
are built by the same functions as the training beats (`meddx.data.ecg_beat_extraction`),
from detected instead of annotated R peaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from meddx.data.ecg_beat_extraction import (
    RR_FEATURES,
    beat_channels,
    beat_windows,
    filter_signal,
    rr_features,
    standardise,
)
from meddx.errors import DataError

OUT_OF_BOUNDS = "its window runs past an end of the record"
NO_NEIGHBOUR = "no neighbouring beat for its RR intervals"
FACTS = ("fs", "lead", "window", "beat_channels", "filter", "rr_local", "rr_average_s")


def facts(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The preprocessing facts of a processed-ECG `ecg.json`, to store with a trained model.

    None when the file lacks some (written by hand, or by an older preprocess_ecg): training
    needs none of them, so such a model still trains; `predict` then refuses it by name.
    """
    if any(key not in meta for key in FACTS):
        return None
    return {key: meta[key] for key in FACTS} | {"rr_features": list(meta["rr_features"])}


@dataclass(frozen=True)
class BeatSpec:
    fs: float
    lead: str
    window: tuple[int, int]
    channels: tuple[str, ...]
    filter: dict[str, Any]
    rr_local: int
    rr_average_s: float
    rr_features: tuple[str, ...]
    rr_columns: tuple[int, ...]  # of rr_features, what the network is fed

    @classmethod
    def of_model(cls, info: dict[str, Any], model: str) -> BeatSpec:
        """The spec stored in a model's info; a clear error for a model without one."""
        ecg = info.get("ecg")
        if not isinstance(ecg, dict):
            raise DataError(
                f"model {model} carries no ECG beat preprocessing (it was trained by "
                f"{info.get('stage', 'an unknown stage')}, or by a train_rnn older than "
                "`predict`): choose an ECG beat model, or retrain it with `dvc repro train_rnn`"
            )
        features = tuple(ecg.get("rr_features", RR_FEATURES))
        if features != RR_FEATURES:
            raise DataError(
                f"model {model} was fed the RR features {list(features)}, this meddx computes "
                f"{list(RR_FEATURES)}: use the meddx version that trained it, or retrain it"
            )
        return cls(
            fs=float(ecg["fs"]),
            lead=str(ecg["lead"]),
            window=(int(ecg["window"][0]), int(ecg["window"][1])),
            channels=tuple(ecg["beat_channels"]),
            filter=dict(ecg["filter"]),
            rr_local=int(ecg["rr_local"]),
            rr_average_s=float(ecg["rr_average_s"]),
            rr_features=features,
            rr_columns=tuple(info.get("rr_columns", range(len(features)))),
        )

    def filtered(self, signal: np.ndarray) -> np.ndarray:
        """The lead (mV, at `fs`) filtered as the training records were."""
        return filter_signal(signal, self.fs, OmegaConf.create(self.filter))


@dataclass(frozen=True)
class DetectedBeats:
    beats: np.ndarray  # (K, C, L) float32, the classifiable beats
    rr: np.ndarray  # (K, len(rr_columns)) float32, what the network is fed
    index: np.ndarray  # (K,) which of the R peaks each classifiable beat is
    reasons: list[str]  # per R peak: "" when classifiable, else why not


def detected_beats(filtered: np.ndarray, peaks: np.ndarray, spec: BeatSpec) -> DetectedBeats:
    """The training beats' windows, channels and RR features at detected R peaks.

    As in training, a beat needs a neighbour on each side (its RR intervals) and a full
    window; the others are kept in `reasons` so that no detected beat silently disappears.
    The `deviation` channel's template is the median of this recording's classifiable beats,
    as it was of each training record's beats.
    """
    peaks = np.asarray(peaks, dtype=np.int64)
    rr = rr_features(peaks, spec.fs, spec.rr_local, spec.rr_average_s)
    windows, in_bounds = beat_windows(filtered, peaks, *spec.window)
    has_rr = np.isfinite(rr).all(axis=1)
    reasons = np.where(in_bounds, "", OUT_OF_BOUNDS)
    reasons = np.where(in_bounds & ~has_rr, NO_NEIGHBOUR, reasons).tolist()
    keep = has_rr[in_bounds]
    index = np.flatnonzero(in_bounds)[keep]
    beats = beat_channels(standardise(windows[keep]), spec.channels)
    return DetectedBeats(
        beats=beats,
        rr=rr[index][:, list(spec.rr_columns)].astype(np.float32),
        index=index,
        reasons=reasons,
    )
