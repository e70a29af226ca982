"""Stage `train_rnn`: fit the configured beat classifier (rnn=<name>) on the ECG splits.

Training sees the train split, model selection the val split; both hold DS1 records only
under the inter-patient protocol. The file is refused if any record has beats in two splits,
and the records used are stored in the exported model so `evaluate_rnn` can check them
against its test records, as is the beat preprocessing (`info["ecg"]`), so that `predict`
cuts beats from a new recording exactly as the training beats were cut.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from omegaconf import DictConfig

from meddx.data import beat_spec
from meddx.data.ecg_beat_file import load_beats, rr_columns
from meddx.paths import Layout, require
from meddx.tracking import DatasetRead, stage_run
from meddx.training.classifier_training import ClassifierData, train_classifier

STAGE = "train_rnn"
SECTIONS = ("seed", "rnn", "trainer")


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    ecg = require(layout.processed_ecg, layout.root)
    meta_path = require(layout.processed_ecg_meta, layout.root)
    facts = json.loads(meta_path.read_text())
    arrays = load_beats(ecg, ("train", "val"))
    columns = rr_columns(list(facts["rr_features"]), cfg.rnn.rr_inputs)
    train, val = (
        (arrays[f"{s}_beats"], arrays[f"{s}_rr"][:, columns], arrays[f"{s}_labels"])
        for s in ("train", "val")
    )
    beats, rr = train[0], train[1]
    data = ClassifierData(
        train=train,
        val=val,
        task="multi-class",
        class_names=list(facts["class_names"]),
        net_kwargs={
            "in_channels": beats.shape[1],
            "num_classes": len(facts["class_names"]),
            "window": beats.shape[2],
            "n_rr": rr.shape[1],
        },
        info={
            "records": {s: np.unique(arrays[f"{s}_records"]).tolist() for s in ("train", "val")},
            "rr_columns": columns,
            "rr_inputs": [facts["rr_features"][i] for i in columns],
            "ecg": beat_spec.facts(facts),
        },
    )
    run_name = f"{STAGE} {cfg.rnn.name} on {facts['name']}"
    dataset = DatasetRead(ecg, facts, ("train", "val"), "training")
    with stage_run(
        cfg, STAGE, [ecg, meta_path], run_name=run_name, sections=SECTIONS, dataset=dataset
    ) as tracked:
        return train_classifier(cfg, STAGE, "rnn", cfg.rnn, data, [ecg, meta_path], tracked)
