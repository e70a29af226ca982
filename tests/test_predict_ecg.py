"""`python -m meddx predict` on ECG recordings without annotations, at another rate and leads.

A small beat model is trained once, for real, in a temporary project on the synthetic ECG
default; recordings are real WFDB/EDF/CSV files written with wfdb and pandas.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from wfdb import processing
from wfdb.io.convert.edf import wfdb_to_edf

from conftest import CONF
from meddx import cli
from meddx.config import compose
from meddx.data import beat_spec, qrs, synthetic_ecg
from meddx.data.ecg_beat_extraction import AAMI_CLASSES, RR_FEATURES, beat_positions
from meddx.errors import ConfigError, DataError
from meddx.models import export
from meddx.stages import acquire_ecg, predict, preprocess_ecg, train_rnn

FS = 500  # not the 360 Hz the model was trained at
LEADS = ["V1", "II"]  # reordered and renamed: MIT-BIH's MLII is "II" here
TINY = (
    "data.ecg.synthetic.beats_per_record=20",
    "rnn.max_epochs=1",
    "rnn.net.hidden=16",
    "rnn.net.head_hidden=16",
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tracking_db: str) -> DictConfig:
    """A project whose beat model was trained (acquire, preprocess, train) on synthetic ECG."""
    root = tmp_path_factory.mktemp("project")
    cfg = compose(
        [f"paths.root={root}", f"tracking.uri={tracking_db}", "tracking.experiment=predict", *TINY],
        conf_dir=CONF,
    )
    for stage in (acquire_ecg, preprocess_ecg, train_rnn):
        stage.run(cfg)
    return cfg


def model_path(cfg: DictConfig) -> Path:
    return Path(cfg.paths.root) / "models" / "rnn" / "model.pt"


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An exported beat model with the default preprocessing, not trained: for refusals."""
    cfg = compose([], conf_dir=CONF)
    spec = cfg.data.ecg
    sizes = {
        "in_channels": len(spec.channels),
        "num_classes": 5,
        "window": sum(spec.window),
        "n_rr": len(cfg.rnn.rr_inputs),
    }
    meta = {
        "fs": spec.fs,
        "lead": spec.lead,
        "window": list(spec.window),
        "beat_channels": list(spec.channels),
        "filter": OmegaConf.to_container(spec.filter),
        "rr_local": spec.rr_local,
        "rr_average_s": spec.rr_average_s,
        "rr_features": list(RR_FEATURES),
    }
    info = {
        "task": "multi-class",
        "class_names": list(AAMI_CLASSES),
        "stage": "train_rnn",
        "rr_columns": [RR_FEATURES.index(name) for name in cfg.rnn.rr_inputs],
        "ecg": beat_spec.facts(meta),
    }
    path = tmp_path_factory.mktemp("untrained") / "model.pt"
    export.save(path, export.build_net(cfg.rnn.net, **sizes), cfg.rnn.net, sizes, info)
    return path


def write_record(folder: Path, name: str, mv: np.ndarray, fs: float, leads=LEADS) -> Path:
    """A WFDB record (header + format-16 signal, no annotation file) of (T, C) millivolts."""
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"] * len(leads),
        sig_name=list(leads),
        p_signal=mv,
        fmt=["16"] * len(leads),
        write_dir=str(folder),
    )
    return folder / f"{name}.hea"


def synthetic_500hz(
    folder: Path, beats: int = 60, name: str = "patient", samples: int | None = None
) -> tuple[Path, np.ndarray]:
    """A synthetic patient sampled at 500 Hz with two leads (its first `samples`); its R peaks."""
    record = synthetic_ecg.make_record(900, beats, fs=FS, noise=0.02, seed=3)
    lead = record.millivolts()[:samples]
    other = -0.5 * lead + 0.05  # a second lead, first in the file
    peaks, _ = beat_positions(record.ann_sample, record.ann_symbol)
    header = write_record(folder, name, np.stack([other, lead], axis=1), FS)
    return header, peaks[peaks < len(lead)]


def run_predict(cfg: DictConfig, *overrides: str) -> int:
    return cli.main(
        [
            "predict",
            f"paths.root={cfg.paths.root}",
            f"tracking.uri={cfg.tracking.uri}",
            *overrides,
        ]
    )


def read_beats(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_500hz_record_with_renamed_leads_gets_one_row_per_detected_beat(project, tmp_path):
    header, truth = synthetic_500hz(tmp_path / "in")
    out = tmp_path / "out"
    code = run_predict(
        project,
        f"predict.input={header}",
        f"predict.model={model_path(project)}",
        "predict.ecg.lead=II",
        f"predict.output={out}",
    )
    assert code == 0
    rows = read_beats(out / "patient.beats.csv")
    counts = json.loads((out / "patient.counts.json").read_text())
    assert counts["fs_input"] == FS and counts["fs_model"] == 360 and counts["lead"] == "II"
    assert len(rows) == counts["beats_detected"]
    classified = [r for r in rows if r["class"]]
    assert len(classified) == counts["beats_classified"] > 0.9 * len(truth)
    assert counts["counts"] == {c: sum(r["class"] == c for r in rows) for c in AAMI_CLASSES}
    for row in classified:
        probabilities = [float(row[f"p_{c}"]) for c in AAMI_CLASSES]
        assert abs(sum(probabilities) - 1) < 1e-4
        assert float(row["confidence"]) == max(probabilities)
        assert row["class"] == AAMI_CLASSES[int(np.argmax(probabilities))]
    assert all(r["note"] for r in rows if not r["class"])  # never dropped silently
    found = qrs.match(truth, np.array([int(r["sample"]) for r in rows]), FS)
    assert found.sensitivity > 0.9 and found.ppv > 0.9  # samples are at the input's rate
    assert (out / "patient.strip.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_the_model_is_found_by_run_id_and_by_registered_name_and_alias(project, tmp_path):
    header, _ = synthetic_500hz(tmp_path / "in")
    client = MlflowClient(tracking_uri=project.tracking.uri)
    experiment = client.get_experiment_by_name("predict")
    (trained,) = client.search_runs([experiment.experiment_id], "tags.`meddx.stage` = 'train_rnn'")
    client.create_registered_model("meddx-rnn-test")
    version = client.create_model_version(
        "meddx-rnn-test", source=f"runs:/{trained.info.run_id}/model", run_id=trained.info.run_id
    )
    client.set_registered_model_alias("meddx-rnn-test", "best", version.version)
    outputs = {}
    for name, model in [
        ("path", str(model_path(project))),
        ("run", trained.info.run_id),
        ("alias", "meddx-rnn-test@best"),
        ("version", f"models:/meddx-rnn-test/{version.version}"),
    ]:
        out = tmp_path / name
        overrides = [f"predict.input={header}", f"predict.model={model}", f"predict.output={out}"]
        assert run_predict(project, *overrides, "predict.ecg.lead=II") == 0
        outputs[name] = (out / "patient.beats.csv").read_text()
    assert outputs["run"] == outputs["path"] == outputs["alias"] == outputs["version"]


@pytest.mark.slow
def test_edf_and_csv_copies_of_a_record_give_its_beats(project, tmp_path):
    # Whole 10 s EDF data blocks: wfdb 4.3.1 writes a partial last block wrongly.
    header, _ = synthetic_500hz(tmp_path / "in", samples=50 * FS)
    record = wfdb.rdrecord(str(header.with_suffix("")))
    edf = tmp_path / "in" / "patient_edf.edf"
    wfdb_to_edf(str(header.with_suffix("")), output_filename=str(edf))
    table = tmp_path / "in" / "patient_csv.csv"
    pd.DataFrame(record.p_signal, columns=record.sig_name).to_csv(table, index=False)
    out = tmp_path / "out"
    samples = {}
    for path, extra in [(header, []), (edf, []), (table, [f"predict.ecg.fs={FS}"])]:
        overrides = [f"predict.input={path}", f"predict.model={model_path(project)}", *extra]
        assert run_predict(project, *overrides, f"predict.output={out}", "predict.ecg.lead=II") == 0
        samples[path.suffix] = [row["sample"] for row in read_beats(out / f"{path.stem}.beats.csv")]
    assert len(samples[".hea"]) > 30
    assert samples[".edf"] == samples[".csv"] == samples[".hea"]


@pytest.mark.slow
@pytest.mark.mirror
def test_a_mitbih_record_resampled_to_500hz_goes_through_predict(project, mirror, tmp_path):
    """MIT-BIH 100 (MLII, V5 at 360 Hz) as a 500 Hz record with leads V5, II and no .atr."""
    source = wfdb.rdrecord(str(mirror / "mitbih" / "100"), sampto=360 * 120)
    reference = wfdb.rdann(str(mirror / "mitbih" / "100"), "atr", sampto=360 * 120)
    leads = []
    for channel in (1, 0):  # V5 first, then MLII
        resampled, _ = processing.resample_sig(source.p_signal[:, channel], 360, FS)
        leads.append(resampled)
    header = write_record(tmp_path / "in", "rec500", np.stack(leads, axis=1), FS, ["V5", "II"])
    out = tmp_path / "out"
    overrides = [f"predict.input={header}", f"predict.model={model_path(project)}"]
    assert run_predict(project, *overrides, "predict.ecg.lead=II", f"predict.output={out}") == 0
    rows = read_beats(out / "rec500.beats.csv")
    peaks, _ = beat_positions(np.asarray(reference.sample), np.asarray(reference.symbol))
    found = qrs.match(np.round(peaks * FS / 360), np.array([int(r["sample"]) for r in rows]), FS)
    assert found.sensitivity > 0.99 and found.ppv > 0.99
    counts = json.loads((out / "rec500.counts.json").read_text())
    assert sum(counts["counts"].values()) == counts["beats_classified"] >= len(rows) - 4


def test_a_missing_lead_names_the_file_its_leads_and_the_key(untrained, tmp_path):
    header, _ = synthetic_500hz(tmp_path)
    cfg = compose([f"predict.input={header}", f"predict.model={untrained}"], conf_dir=CONF)
    with pytest.raises(
        DataError, match=r"patient\.hea has no lead 'MLII'.*'V1', 'II'.*predict\.ecg\.lead"
    ):
        predict.run(cfg)


def test_an_unreadable_record_is_a_clear_error(untrained, tmp_path):
    header, _ = synthetic_500hz(tmp_path)
    (tmp_path / "patient.dat").unlink()
    cfg = compose([f"predict.input={header}", f"predict.model={untrained}"], conf_dir=CONF)
    with pytest.raises(DataError, match=r"Cannot read the WFDB record .*patient\.hea"):
        predict.run(cfg)


def test_a_signal_too_short_for_detection_is_refused(untrained, tmp_path):
    header, _ = synthetic_500hz(tmp_path, beats=6)
    overrides = [f"predict.input={header}", f"predict.model={untrained}"]
    cfg = compose([*overrides, "predict.ecg.lead=II"], conf_dir=CONF)
    with pytest.raises(DataError, match=r"patient\.hea holds \d\.\d s of signal.*at least 10 s"):
        predict.run(cfg)


def test_a_csv_without_its_rate_asks_for_it(untrained, tmp_path):
    table = tmp_path / "patient.csv"
    pd.DataFrame({"II": np.zeros(6000)}).to_csv(table, index=False)
    cfg = compose([f"predict.input={table}", f"predict.model={untrained}"], conf_dir=CONF)
    with pytest.raises(DataError, match=r"patient\.csv .*sampling rate: set predict\.ecg\.fs"):
        predict.run(cfg)


def test_an_unknown_model_names_the_key_and_the_accepted_forms(tmp_path):
    header, _ = synthetic_500hz(tmp_path)
    cfg = compose([f"predict.input={header}", "predict.model=nothing/here.pt"], conf_dir=CONF)
    with pytest.raises(DataError, match=r"predict\.model=nothing/here\.pt: no such file.*run id"):
        predict.run(cfg)
    with pytest.raises(ConfigError, match=r"predict\.model is not set"):
        predict.run(compose([f"predict.input={header}"], conf_dir=CONF))


def test_a_bad_file_in_a_folder_is_reported_and_skipped(untrained, tmp_path):
    folder = tmp_path / "in"
    synthetic_500hz(folder, name="good")
    synthetic_500hz(folder, beats=6, name="short")
    out = tmp_path / "out"
    cfg = compose(
        [
            f"predict.input={folder}",
            f"predict.model={untrained}",
            "predict.ecg.lead=II",
            f"predict.output={out}",
        ],
        conf_dir=CONF,
    )
    with pytest.raises(DataError, match=r"1 of 2 inputs could not be predicted.*short\.hea"):
        predict.run(cfg)
    assert (out / "good.beats.csv").is_file() and not list(out.glob("short.*"))


def test_an_image_model_is_refused_for_an_ecg_recording(tmp_path):
    header, _ = synthetic_500hz(tmp_path)
    cfg = compose(
        [f"predict.input={header}", f"predict.model={tmp_path / 'cnn.pt'}"], conf_dir=CONF
    )
    sizes = {"in_channels": 1, "num_classes": 2, "image_size": 28}
    net = export.build_net(cfg.cnn.net, **sizes)
    info = {"task": "binary", "class_names": ["normal", "pneumonia"], "stage": "train_cnn"}
    export.save(tmp_path / "cnn.pt", net, cfg.cnn.net, sizes, info=info)
    with pytest.raises(ConfigError, match=r"cnn\.pt \(trained by train_cnn\) does not take ecg"):
        predict.run(cfg)
