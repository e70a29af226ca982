"""Stages acquire_ecg and preprocess_ecg: synthetic default, WFDB mirrors, downloads, failures."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import wfdb
from mlflow.tracking import MlflowClient

from meddx import cli
from meddx.data import synthetic_ecg
from meddx.data.ecg_beat_extraction import RR_FEATURES, filter_signal, record_beats
from meddx.errors import DataError
from meddx.stages import acquire_ecg, preprocess_ecg

SPLITS = ("train", "val", "test")
DS1_FEW, DS2_FEW = [101, 106, 108], [100, 103]
FEW = [f"data.ecg.records=[{','.join(map(str, DS1_FEW + DS2_FEW))}]", "data.ecg.val_records=1"]
# de Chazal et al. 2004, Table I: AAMI beats of DS1 and DS2 (N, S, V, F, Q).
DE_CHAZAL = {"DS1": [45844, 944, 3788, 415, 8], "DS2": [44259, 1837, 3221, 388, 7]}


def write_wfdb_mirror(root: Path, records: list[int], beats: int = 30) -> Path:
    """A mirror folder in PhysioNet's layout: WFDB files of synthetic patients + SHA256SUMS."""
    folder = root / "mitbih"
    folder.mkdir(parents=True)
    for record in synthetic_ecg.generate(records, beats, fs=360.0, noise=0.02, seed=7):
        wfdb.wrsamp(
            str(record.number),
            fs=360,
            units=["mV"],
            sig_name=["MLII"],
            d_signal=record.signal.astype(np.int64)[:, None],
            fmt=["212"],
            adc_gain=[record.gain],
            baseline=[record.baseline],
            write_dir=str(folder),
        )
        wfdb.wrann(
            str(record.number),
            "atr",
            record.ann_sample,
            symbol=list(record.ann_symbol),
            write_dir=str(folder),
        )
    write_sums(folder)
    return root


def write_sums(folder: Path) -> None:
    """PhysioNet's SHA256SUMS.txt for the files in `folder` as they are now."""
    files = sorted(p for p in folder.iterdir() if p.name != "SHA256SUMS.txt")
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.name}" for p in files]
    (folder / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")


def corrupt(path: Path) -> None:
    """Flip the bits of one byte in the middle of the file."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def wfdb_mirror(tmp_path: Path) -> Path:
    return write_wfdb_mirror(tmp_path / "mirror", DS1_FEW + DS2_FEW)


def mitbih_overrides(mirror: Path, *extra: str) -> list[str]:
    return ["data/ecg=mitbih", f"paths.mirror={mirror}", "data.ecg.url=null", *FEW, *extra]


def load_outputs(root: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(root / "data" / "processed" / "ecg.npz") as archive:
        arrays = dict(archive)
    return arrays, json.loads((root / "data" / "processed" / "ecg.json").read_text())


def test_default_synthetic_dag_writes_the_contract_the_rnn_reads(make_cfg, tmp_path):
    cfg = make_cfg(*FEW, "data.ecg.synthetic.beats_per_record=40")
    assert cfg.data.ecg.source == "synthetic" and cfg.data.ecg.split == "inter-patient"
    acquire_ecg.run(cfg)
    metrics = preprocess_ecg.run(cfg)
    arrays, meta = load_outputs(tmp_path)
    before, after = meta["window"]
    assert (before, after) == tuple(cfg.data.ecg.window)
    for split in SPLITS:
        n = len(arrays[f"{split}_labels"])
        assert n > 0
        assert meta["beat_channels"] == list(cfg.data.ecg.channels)
        channels = len(cfg.data.ecg.channels)
        assert arrays[f"{split}_beats"].shape == (n, channels, before + after)
        assert arrays[f"{split}_beats"].dtype == np.float32
        assert (
            arrays[f"{split}_rr"].shape == (n, len(RR_FEATURES))
            and arrays[f"{split}_rr"].dtype == np.float32
        )
        assert arrays[f"{split}_labels"].dtype == np.int64
        assert arrays[f"{split}_records"].dtype == np.int64
        counts = np.bincount(arrays[f"{split}_labels"], minlength=5)
        assert (
            meta["splits"][split]
            == metrics[split]
            == {"n": n, **{f"class_{c}": int(k) for c, k in zip("NSVFQ", counts, strict=True)}}
        )
        assert sorted(set(arrays[f"{split}_records"].tolist())) == meta["records"][split]
    assert meta["name"] == "synthetic" and meta["fs"] == 360
    assert meta["class_names"] == ["N", "S", "V", "F", "Q"]
    assert meta["split"] == "inter-patient"
    assert meta["records"]["test"] == DS2_FEW
    assert sorted(meta["records"]["train"] + meta["records"]["val"]) == DS1_FEW
    assert len(meta["records"]["val"]) == 1
    written = json.loads((tmp_path / "reports" / "metrics" / "preprocess_ecg.json").read_text())
    assert written["test"] == meta["splits"]["test"]


def test_synthetic_records_are_reproducible_and_patient_specific():
    a, b = synthetic_ecg.generate([100, 101], beats=20, fs=360.0, noise=0.03, seed=3)
    again = synthetic_ecg.make_record(100, beats=20, fs=360.0, noise=0.03, seed=3)
    assert np.array_equal(a.signal, again.signal) and np.array_equal(a.ann_symbol, again.ann_symbol)
    assert not np.array_equal(a.signal[:1000], b.signal[:1000])


def test_synthetic_classes_differ_in_prematurity_and_qrs_width(make_cfg):
    spec = make_cfg().data.ecg
    beats = [
        record_beats(
            filter_signal(r.millivolts(), 360.0, spec.filter),
            r.ann_sample,
            r.ann_symbol,
            360.0,
            (90, 162),
            10,
            300,
        )
        for r in synthetic_ecg.generate(range(100, 112), 80, 360.0, 0.03, seed=0)
    ]
    labels = np.concatenate([b.labels for b in beats])
    ratio = np.concatenate([b.rr[:, 3] for b in beats])
    # QRS width: samples within 40 ms of the R peak where the standardised beat exceeds 1.
    qrs = np.concatenate([b.beats[:, 0, 90 - 15 : 90 + 15] for b in beats])
    width = (np.abs(qrs) > 1.0).sum(axis=1)
    n, s, v = (labels == 0), (labels == 1), (labels == 2)
    assert ratio[s].mean() < 0.8 and ratio[v].mean() < 0.8 and 0.95 < ratio[n].mean() < 1.1
    assert width[v].mean() > 1.5 * width[n].mean()


def test_mitbih_flows_from_a_wfdb_mirror_with_checksums(make_cfg, wfdb_mirror, tmp_path):
    cfg = make_cfg(*mitbih_overrides(wfdb_mirror))
    summary = acquire_ecg.run(cfg)
    assert summary["records"] == 5 and summary["sha256_checked"] == 15
    preprocess_ecg.run(cfg)
    arrays, meta = load_outputs(tmp_path)
    assert meta["records"]["test"] == DS2_FEW
    assert set(arrays["test_records"].tolist()) == set(DS2_FEW)
    train_val = set(arrays["train_records"].tolist()) | set(arrays["val_records"].tolist())
    assert train_val <= set(DS1_FEW)


def test_checksum_mismatch_names_file_expected_and_actual_and_writes_nothing(
    make_cfg, wfdb_mirror, tmp_path
):
    target = wfdb_mirror / "mitbih" / "106.atr"
    expected = hashlib.sha256(target.read_bytes()).hexdigest()
    corrupt(target)
    actual = hashlib.sha256(target.read_bytes()).hexdigest()
    with pytest.raises(
        DataError,
        match=rf"106\.atr: checksum mismatch at .*106\.atr: expected "
        rf"SHA-256 {expected}, got {actual}",
    ):
        acquire_ecg.run(make_cfg(*mitbih_overrides(wfdb_mirror)))
    raw = tmp_path / "data" / "raw"
    assert not raw.exists() or not any(raw.iterdir())


def test_truncated_wfdb_dat_is_a_clear_error(make_cfg, wfdb_mirror):
    dat = wfdb_mirror / "mitbih" / "103.dat"
    dat.write_bytes(dat.read_bytes()[: dat.stat().st_size // 2])
    write_sums(wfdb_mirror / "mitbih")  # as if listed so: the reader meets it, not the checksum
    with pytest.raises(DataError, match=r"103\.dat is truncated: \d+ bytes, but its header"):
        acquire_ecg.run(make_cfg(*mitbih_overrides(wfdb_mirror)))


def test_offline_without_mirror_fails_naming_the_file_and_both_remedies(
    tmp_path, tracking_db, capsys, monkeypatch
):
    monkeypatch.delenv("MEDDX_DATA_MIRROR", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg_args = [
        f"paths.root={tmp_path}",
        f"tracking.uri={tracking_db}",
        "data/ecg=mitbih",
        f"paths.mirror={empty}",
        "data.ecg.url=null",
        *FEW,
    ]
    assert cli.main(["acquire_ecg", *cfg_args]) == 2
    error = capsys.readouterr().err
    assert "100.hea is not available" in error and str(empty / "mitbih") in error
    assert "MEDDX_DATA_MIRROR" in error and "online" in error
    assert not (tmp_path / "data" / "raw").exists()


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server over a folder, standing in for physionet.org (no network here)."""
    root = tmp_path / "served"
    handler = functools.partial(
        type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
        directory=str(root),
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/mitbih/", root
    server.shutdown()
    thread.join()


def test_records_missing_from_the_mirror_are_downloaded_verified_and_cached(
    make_cfg, file_server, tmp_path
):
    url, served = file_server
    write_wfdb_mirror(served, DS1_FEW + DS2_FEW)
    cfg = make_cfg(
        "data/ecg=mitbih", f"paths.mirror={tmp_path / 'nothing'}", f"data.ecg.url={url}", *FEW
    )
    assert acquire_ecg.run(cfg)["sha256_checked"] == 15
    cache = tmp_path / "data" / "cache" / "mitbih"
    assert sorted(p.name for p in cache.iterdir() if p.suffix == ".dat") == [
        f"{r}.dat" for r in sorted(DS1_FEW + DS2_FEW)
    ]
    # A served file that does not match PhysioNet's list is refused and not kept.
    bad = served / "mitbih" / "108.atr"
    corrupt(bad)
    (cache / "108.atr").unlink()
    with pytest.raises(
        DataError,
        match=r"108\.atr: checksum mismatch at .*108\.atr\.part: "
        r"expected SHA-256 [0-9a-f]{64}, got [0-9a-f]{64}",
    ):
        acquire_ecg.run(cfg)
    assert not (cache / "108.atr").exists()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]


def test_a_record_planted_in_ds1_and_ds2_fails_preprocessing_by_name(make_cfg, wfdb_mirror):
    cfg = make_cfg(*mitbih_overrides(wfdb_mirror, "data.ecg.ds2=[100,103,106]"))
    acquire_ecg.run(cfg)
    with pytest.raises(DataError, match=r"record 106 in '(train|val)' and 'test'"):
        preprocess_ecg.run(cfg)


def test_intra_patient_split_is_an_option(make_cfg, wfdb_mirror, tmp_path):
    cfg = make_cfg(*mitbih_overrides(wfdb_mirror, "data.ecg.split=intra-patient"))
    acquire_ecg.run(cfg)
    stats = preprocess_ecg.run(cfg)
    _, meta = load_outputs(tmp_path)
    assert meta["split"] == "intra-patient"
    assert meta["records"]["train"] == meta["records"]["test"] == sorted(DS1_FEW + DS2_FEW)
    total = sum(stats[s]["n"] for s in SPLITS)
    assert abs(stats["train"]["n"] / total - 0.7) < 0.03


def _per_record_counts(arrays: dict[str, np.ndarray], record: int) -> list[int]:
    labels = np.concatenate(
        [arrays[f"{s}_labels"][arrays[f"{s}_records"] == record] for s in SPLITS]
    )
    return np.bincount(labels, minlength=5).tolist()


@pytest.mark.mirror
def test_real_mitbih_records_flow_from_the_mirror(make_cfg, mirror, tmp_path):
    records = [101, 106, 118, 119, 100, 232]
    cfg = make_cfg(
        "data/ecg=mitbih",
        f"paths.mirror={mirror}",
        "data.ecg.url=null",
        f"data.ecg.records=[{','.join(map(str, records))}]",
        "data.ecg.val_records=1",
    )
    assert acquire_ecg.run(cfg)["sha256_checked"] == 3 * len(records)
    stats = preprocess_ecg.run(cfg)
    arrays, meta = load_outputs(tmp_path)
    assert meta["records"]["test"] == [100, 232]
    assert sorted(meta["records"]["train"] + meta["records"]["val"]) == [101, 106, 118, 119]
    owners = {r: s for s in SPLITS for r in meta["records"][s]}
    assert len(owners) == len(records)  # no record in two splits
    # Record 100: 2239 N, 33 A (S), 1 V in the reference annotations; the first and last
    # beats (both N) have no RR neighbour and are dropped.
    assert _per_record_counts(arrays, 100) == [2237, 33, 1, 0, 0]
    assert stats["test"]["class_S"] > 1000  # record 232 is mostly atrial premature beats


@pytest.mark.mirror
@pytest.mark.slow
def test_every_non_paced_mitbih_record_gives_de_chazals_class_counts(make_cfg, mirror, tmp_path):
    cfg = make_cfg("data/ecg=mitbih", f"paths.mirror={mirror}", "data.ecg.url=null")
    assert acquire_ecg.run(cfg) == {
        "records": 44,
        "samples": 44 * 650000,
        "annotations": 103724,
        "sha256_checked": 132,
        "sha256_unchecked": 0,
    }
    stats = preprocess_ecg.run(cfg)
    _, meta = load_outputs(tmp_path)
    assert meta["records"]["test"] == sorted(cfg.data.ecg.ds2)
    assert sorted(meta["records"]["train"] + meta["records"]["val"]) == sorted(cfg.data.ecg.ds1)
    ds1 = [stats["train"][f"class_{c}"] + stats["val"][f"class_{c}"] for c in "NSVFQ"]
    ds2 = [stats["test"][f"class_{c}"] for c in "NSVFQ"]
    # Up to two beats per record (22 per set) are lost at the record edges.
    for ours, published in ((ds1, DE_CHAZAL["DS1"]), (ds2, DE_CHAZAL["DS2"])):
        for count, reference in zip(ours, published, strict=True):
            assert reference - 44 <= count <= reference
    for label in "SVF":  # validation can select models on every arrhythmia class
        assert stats["val"][f"class_{label}"] > 0


def test_a_mirror_without_sha256sums_is_refused(make_cfg, wfdb_mirror):
    sums = wfdb_mirror / "mitbih" / "SHA256SUMS.txt"
    sums.unlink()
    with pytest.raises(
        DataError,
        match=rf"MIT-BIH record 100: 100\.hea, 100\.dat, 100\.atr in .* cannot be verified: "
        rf"{sums} does not exist.*data\.ecg\.allow_unchecked=true",
    ):
        acquire_ecg.run(make_cfg(*mitbih_overrides(wfdb_mirror)))


def test_reading_unverified_records_is_an_explicit_loud_recorded_choice(
    make_cfg, wfdb_mirror, capsys
):
    (wfdb_mirror / "mitbih" / "SHA256SUMS.txt").unlink()
    cfg = make_cfg(*mitbih_overrides(wfdb_mirror, "data.ecg.allow_unchecked=true"))
    summary = acquire_ecg.run(cfg)
    assert (summary["sha256_checked"], summary["sha256_unchecked"]) == (0, 15)
    assert capsys.readouterr().err.count("read WITHOUT checksum verification") == 5
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["data.ecg.allow_unchecked"] == "True"
    assert run.data.metrics["sha256_unchecked"] == 15


def real_record(mirror: Path, root: Path, names: tuple[str, ...] = ("hea", "dat", "atr")) -> Path:
    """A mirror of the real record 100 (the files `names`), its SHA256SUMS.txt to match."""
    folder = root / "mirror" / "mitbih"
    folder.mkdir(parents=True)
    for ext in names:
        shutil.copyfile(mirror / "mitbih" / f"100.{ext}", folder / f"100.{ext}")
    write_sums(folder)
    return folder


def under_report(folder: Path) -> None:
    """Make 100.hea say 600000 samples instead of 650000 (and list it so)."""
    header = folder / "100.hea"
    header.write_text(header.read_text().replace(" 650000", " 600000", 1))
    write_sums(folder)


RECORD_100 = ("data/ecg=mitbih", "data.ecg.url=null", "data.ecg.records=[100]")


@pytest.mark.mirror
def test_a_header_that_under_reports_the_signal_length_is_an_error(make_cfg, mirror, tmp_path):
    folder = real_record(mirror, tmp_path)
    under_report(folder)
    with pytest.raises(
        DataError,
        match=rf"{folder / '100.dat'} holds 650000 samples \(1950000 bytes\), but its header "
        rf"{folder / '100.hea'} says 600000 samples",
    ):
        acquire_ecg.run(make_cfg(*RECORD_100, f"paths.mirror={folder.parent}"))


@pytest.mark.mirror
def test_annotations_beyond_the_end_of_the_signal_are_an_error(make_cfg, mirror, tmp_path):
    folder = real_record(mirror, tmp_path)
    dat = folder / "100.dat"
    dat.write_bytes(dat.read_bytes()[: 600000 * 3])  # the signal and header agree on 600000
    under_report(folder)
    with pytest.raises(
        DataError,
        match=rf"{folder / '100.atr'} has \d+ annotation\(s\) beyond the end of the signal "
        r"\(sample \d+, the signal ends at 600000 samples",
    ):
        acquire_ecg.run(make_cfg(*RECORD_100, f"paths.mirror={folder.parent}"))


@pytest.mark.mirror
def test_a_file_missing_from_the_mirror_is_named_with_where_it_was_looked_for(
    make_cfg, mirror, tmp_path
):
    folder = real_record(mirror, tmp_path, ("hea", "dat"))
    with pytest.raises(DataError) as missing:
        acquire_ecg.run(make_cfg(*RECORD_100, f"paths.mirror={folder.parent}"))
    message = str(missing.value)
    assert "100.atr is not available" in message and "100.hea" not in message
    assert f"neither {folder / '100.atr'} nor {folder.parent / '100.atr'}" in message
    assert str(tmp_path / "data" / "cache" / "mitbih") in message
