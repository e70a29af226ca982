"""Which RR features find S beats in patients a model has never seen: evidence from DS1 only.

The four validation records hold too few S beats (78) to choose between input sets, and DS2
is the test set, so the choice of `rnn.rr_inputs` is made here instead: a class-balanced
N-vs-S logistic regression on the log RR ratios, cross-validated over DS1 with whole records
held out per fold (GroupKFold, 6 folds), so every score is on patients the fit never saw.
Reads the processed beats `make bench-rnn` leaves in runs/bench_rnn/ (or the path given as
argument) and writes reports/benchmarks/rr_features_cv.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from common import REPO
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from meddx.data.ecg_beat_file import load_beats
from meddx.io import write_json

FOLDS = 6
INPUT_SETS = {
    "ratios to the local mean (last 10 beats)": ["rr_ratio", "rr_next_local", "rr_prev_next"],
    "+ ratios to the 5-minute mean": [
        "rr_ratio",
        "rr_next_local",
        "rr_prev_next",
        "rr_prev_average",
        "rr_next_average",
        "rr_local_average",
    ],
}


def grouped_cv(features: np.ndarray, labels: np.ndarray, records: np.ndarray) -> dict:
    """S sensitivity and +P pooled over the held-out folds."""
    tp = fp = fn = 0
    for train, held in GroupKFold(n_splits=FOLDS).split(features, labels, records):
        model = make_pipeline(
            StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=1000)
        ).fit(features[train], labels[train])
        said_s, is_s = model.predict(features[held]) == 1, labels[held] == 1
        tp += int((said_s & is_s).sum())
        fp += int((said_s & ~is_s).sum())
        fn += int((~said_s & is_s).sum())
    return {"s_se": tp / (tp + fn), "s_ppv": tp / (tp + fp), "tp": tp, "fp": fp, "fn": fn}


def main() -> int:
    processed = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "runs/bench_rnn/data/processed"
    names = json.loads((processed / "ecg.json").read_text())["rr_features"]
    arrays = load_beats(processed / "ecg.npz", ("train", "val"))
    rr, labels, records = (
        np.concatenate([arrays[f"{split}_{key}"] for split in ("train", "val")])
        for key in ("rr", "labels", "records")
    )
    n_or_s = labels <= 1
    results = {}
    for title, inputs in INPUT_SETS.items():
        features = np.log(rr[n_or_s][:, [names.index(name) for name in inputs]])
        results[title] = {"inputs": inputs} | grouped_cv(features, labels[n_or_s], records[n_or_s])
        print(f"{title}: S Se {results[title]['s_se']:.3f}, +P {results[title]['s_ppv']:.3f}")
    write_json(REPO / "reports" / "benchmarks" / "rr_features_cv.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
