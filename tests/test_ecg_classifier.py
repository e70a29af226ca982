"""train_rnn / evaluate_rnn on a tiny ECG fixture, with the real MLflow store.

The fixture writes files in the contract of the ECG preprocessing stage: per split
`{split}_beats` (N, 1, L), `{split}_rr` (N, 6), `{split}_labels` (N,), `{split}_records` (N,),
plus ecg.json. Classes differ in beat shape and rhythm, so a few epochs learn them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from meddx.data.ecg_beat_extraction import RR_FEATURES
from meddx.data.npz import save_npz
from meddx.errors import ConfigError, DataError
from meddx.evaluation import scoring
from meddx.models import export
from meddx.paths import Layout
from meddx.stages import evaluate_rnn, train_rnn

CLASSES = ["N", "S", "V", "F", "Q"]
WINDOW = 64
TINY_RNN = (
    "evaluate.bootstrap=20",
    "rnn=gru",
    "rnn.max_epochs=2",
    "rnn.batch_size=32",
    "rnn.net.hidden=16",
    "rnn.net.head_hidden=16",
)
SPLIT_RECORDS = {"train": [101, 106, 108, 109], "val": [112, 114], "test": [100, 103]}


def _record(record: int, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    labels = rng.choice(5, size=n, p=[0.6, 0.15, 0.15, 0.05, 0.05])
    t = np.arange(WINDOW)
    width = np.array([2.0, 2.0, 6.0, 4.0, 3.0])[labels]
    height = np.array([1.0, 0.8, -1.5, 1.2, 0.5])[labels]
    beats = height[:, None] * np.exp(-((t - WINDOW / 2) ** 2) / (2 * width[:, None] ** 2))
    beats += 0.05 * rng.standard_normal(beats.shape)
    pre = np.where(labels == 1, 0.5, 0.8) + 0.02 * rng.standard_normal(n)
    steady, one = np.full(n, 0.8), np.ones(n)
    # RR_FEATURES: prev, next, local, their ratios; the 5-minute mean and the ratios to it.
    rr = np.stack(
        [pre, steady, steady, pre / 0.8, one, pre / 0.8, steady, pre / 0.8, one, one], axis=1
    )
    return {
        "beats": beats[:, None].astype(np.float32),
        "rr": rr.astype(np.float32),
        "labels": labels.astype(np.int64),
        "records": np.full(n, record, dtype=np.int64),
    }


def write_ecg(
    root: Path, records: dict[str, list[int]] = SPLIT_RECORDS, per_record: int = 60, seed: int = 0
) -> Layout:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, recs in records.items():
        parts = [_record(r, per_record, rng) for r in recs]
        for field in ("beats", "rr", "labels", "records"):
            arrays[f"{split}_{field}"] = np.concatenate([p[field] for p in parts])
    layout = Layout(root)
    save_npz(layout.processed_ecg, arrays)
    layout.processed_ecg_meta.write_text(
        json.dumps(
            {
                "name": "fixture",
                "class_names": CLASSES,
                "fs": 360,
                "window": WINDOW,
                "rr_features": list(RR_FEATURES),
                "split": "inter-patient",
                "splits": {s: {"n": len(arrays[f"{s}_labels"])} for s in records},
                "records": records,
            }
        )
    )
    return layout


def test_per_class_metrics_match_a_hand_computed_confusion_matrix() -> None:
    # rows = actual N, S, V; columns = predicted
    #   N: 5 N, 1 S, 0 V;  S: 2 N, 3 S, 0 V;  V: 0 N, 1 S, 4 V
    y_true = np.array([0] * 6 + [1] * 5 + [2] * 5)
    y_pred = np.array([0] * 5 + [1] + [0] * 2 + [1] * 3 + [1] + [2] * 4)
    scores = np.eye(3)[y_pred]
    settings = OmegaConf.create({"bootstrap": 0, "confidence": 0.95, "calibration_bins": 10})
    evaluation = scoring.score("multi-class", ["N", "S", "V"], y_true, scores, settings, 0)
    result, matrix = evaluation.metrics, evaluation.matrix
    assert matrix.tolist() == [[5, 1, 0], [2, 3, 0], [0, 1, 4]]
    assert result["test_acc"] == pytest.approx(12 / 16)
    s = result["per_class"]["S"]
    assert (s["sensitivity"], s["ppv"], s["f1"]) == pytest.approx((3 / 5, 3 / 5, 6 / 10))
    n = result["per_class"]["N"]
    assert (n["sensitivity"], n["ppv"], n["specificity"]) == pytest.approx((5 / 6, 5 / 7, 8 / 10))
    v = result["per_class"]["V"]
    assert (v["sensitivity"], v["ppv"], v["f1"]) == pytest.approx((4 / 5, 1.0, 8 / 9))


def test_training_refuses_a_file_whose_train_records_are_test_records(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    write_ecg(tmp_path, {"train": [101, 106, 100], "val": [112], "test": [100, 103]})
    with pytest.raises(DataError, match=r"\[100\].*train.*test"):
        train_rnn.run(make_cfg(*TINY_RNN))


def test_evaluation_refuses_a_model_trained_on_a_test_record(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    layout = write_ecg(tmp_path)
    cfg = make_cfg(*TINY_RNN)
    sizes = {"in_channels": 1, "num_classes": 5, "window": WINDOW, "n_rr": len(RR_FEATURES)}
    net = export.build_net(cfg.rnn.net, **sizes)
    export.save(
        layout.model_dir("rnn") / "model.pt",
        net,
        cfg.rnn.net,
        sizes,
        info={
            "task": "multi-class",
            "class_names": CLASSES,
            "records": {"train": [101, 103], "val": [112]},
        },
    )
    with pytest.raises(DataError, match=r"\[103\]"):
        evaluate_rnn.run(cfg)


@pytest.mark.slow
def test_train_rnn_end_to_end_logs_the_run_and_exports_the_model(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    layout = write_ecg(tmp_path)
    cfg = make_cfg(*TINY_RNN, "rnn.sampling=balanced", "rnn.loss.name=focal")
    result = train_rnn.run(cfg)
    assert result["epochs"] == 2 and 0.0 <= result["best_val_balanced_acc"] <= 1.0
    assert json.loads(layout.metrics("train_rnn").read_text()) == result
    net, info = export.load(layout.model_dir("rnn") / "model.pt")
    assert info["records"] == {"train": SPLIT_RECORDS["train"], "val": SPLIT_RECORDS["val"]}
    assert info["rr_inputs"] == list(cfg.rnn.rr_inputs)  # the columns evaluate_rnn feeds it
    n_rr = len(cfg.rnn.rr_inputs)
    assert net(torch.zeros(3, 1, WINDOW), torch.full((3, n_rr), 0.8)).shape == (3, 5)
    client = mlflow.MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["meddx.stage"] == "train_rnn"
    assert run.data.params["rnn.name"] == "gru" and run.data.params["rnn.sampling"] == "balanced"
    best = result["best_val_balanced_acc"]
    assert run.data.metrics["best_val_balanced_acc"] == pytest.approx(best)
    history = client.get_metric_history(run.info.run_id, "val_balanced_acc")
    assert [m.step for m in history] == [0, 1]


@pytest.mark.slow
def test_evaluate_rnn_reports_se_ppv_f1_per_class_and_the_confusion_plot(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    layout = write_ecg(tmp_path)
    cfg = make_cfg(*TINY_RNN)
    train_rnn.run(cfg)
    result = evaluate_rnn.run(cfg)
    assert set(result["per_class"]) == set(CLASSES)
    for row in result["per_class"].values():
        assert {"sensitivity", "ppv", "f1"} <= set(row)
    assert result["n_test"] == 120 and result["test_records"] == 2
    rows = (layout.plots("evaluate_rnn") / "confusion.csv").read_text().splitlines()
    assert rows[0] == "actual,predicted" and len(rows) == 121
    agree = sum(actual == predicted for actual, predicted in (r.split(",") for r in rows[1:]))
    assert result["test_acc"] == pytest.approx(agree / 120)
    client = mlflow.MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    runs = client.search_runs([experiment.experiment_id], "tags.`meddx.stage` = 'evaluate_rnn'")
    v_se = result["per_class"]["V"]["sensitivity"]
    assert runs[0].data.metrics["V.sensitivity"] == pytest.approx(v_se)
    assert runs[0].info.run_name == "evaluate_rnn rnn on fixture"  # the dataset it scored
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id, "plots")}
    assert "plots/confusion.csv" in artifacts


@pytest.mark.slow
def test_the_same_seed_gives_identical_metrics(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    write_ecg(tmp_path)
    cfg = make_cfg(*TINY_RNN)
    first = (train_rnn.run(cfg), evaluate_rnn.run(cfg))
    second = (train_rnn.run(cfg), evaluate_rnn.run(cfg))
    # JSON text: undefined figures (+P of a never-predicted class) are NaN, and NaN != NaN.
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_an_unknown_rr_input_is_a_config_error_naming_the_features_at_hand(
    make_cfg: Callable[..., DictConfig], tmp_path: Path
) -> None:
    write_ecg(tmp_path)
    cfg = make_cfg(*TINY_RNN, "rnn.rr_inputs=[rr_ratio,heart_rate]")
    with pytest.raises(ConfigError, match=r"rr_inputs=.*heart_rate.*rr_prev_next"):
        train_rnn.run(cfg)
