"""The reproduction check compares committed metrics with reproduced ones, per metric."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from meddx.repro_check import NEW, compare_files, output_hashes, pooled, table, tolerance_text

COMMITTED = {
    "test_acc": 0.5033333333333333,
    "test_auc": 0.8119851851851853,
    "per_class": {"disc": {"f1": 0.5258215962441315, "support": 75}},
}


def _write(path: Path, payload: dict) -> Path:
    path.write_text(json.dumps(payload))
    return path


def _changed(**values: float) -> dict:
    changed = json.loads(json.dumps(COMMITTED))
    changed.update(values)
    return changed


def test_identical_metrics_pass_exactly(tmp_path: Path) -> None:
    committed = _write(tmp_path / "committed.json", COMMITTED)
    rows = compare_files(committed, _write(tmp_path / "reproduced.json", COMMITTED))
    assert [row.metric for row in rows] == [
        "per_class.disc.f1",
        "per_class.disc.support",
        "test_acc",
        "test_auc",
    ]
    assert all(row.ok for row in rows)


def test_a_changed_metric_fails_and_only_that_one(tmp_path: Path) -> None:
    committed = _write(tmp_path / "committed.json", COMMITTED)
    reproduced = _write(tmp_path / "reproduced.json", _changed(test_auc=0.8119851851851854))
    rows = compare_files(committed, reproduced)
    assert [row.metric for row in rows if not row.ok] == ["test_auc"]
    assert "FAIL" in table(rows)


def test_a_tolerance_accepts_what_it_states_and_no_more(tmp_path: Path) -> None:
    committed = _write(tmp_path / "committed.json", COMMITTED)
    close = _write(tmp_path / "close.json", _changed(test_acc=COMMITTED["test_acc"] + 5e-7))
    far = _write(tmp_path / "far.json", _changed(test_acc=COMMITTED["test_acc"] + 2e-6))
    assert all(row.ok for row in compare_files(committed, close, abs_tol=1e-6))
    assert not all(row.ok for row in compare_files(committed, far, abs_tol=1e-6))
    assert tolerance_text(0.0) == "exact (abs 0)" and tolerance_text(1e-6) == "abs 1e-06"


def test_missing_metrics_fail(tmp_path: Path) -> None:
    committed = _write(tmp_path / "committed.json", COMMITTED)
    fewer = _write(tmp_path / "fewer.json", {k: v for k, v in COMMITTED.items() if k != "test_auc"})
    assert [r.metric for r in compare_files(committed, fewer) if not r.ok] == ["test_auc"]
    missing = compare_files(committed, tmp_path / "absent.json")
    assert missing and not any(row.ok for row in missing)


def test_a_metric_only_the_rebuild_has_is_reported_as_new_and_passes(tmp_path: Path) -> None:
    committed = _write(tmp_path / "committed.json", COMMITTED)
    extra = _write(tmp_path / "extra.json", _changed(test_nll=0.4))
    rows = compare_files(committed, extra)
    (added,) = [row for row in rows if row.metric == "test_nll"]
    assert added.ok and added.verdict == NEW and added.committed is None
    assert all(row.ok and row.verdict == "identical" for row in rows if row is not added)


def test_output_hashes_are_read_per_path_from_a_dvc_lock() -> None:
    lock = """schema: '2.0'
stages:
  train_cnn:
    cmd: python -m meddx train_cnn --params params.yaml
    outs:
    - path: models/cnn/model.pt
      hash: md5
      md5: 4e4f913e099a27b26a1b1f8f15583ef7
      size: 2745397
"""
    assert output_hashes(lock) == {"models/cnn/model.pt": "4e4f913e099a27b26a1b1f8f15583ef7"}


PORTABLE = {"profile": "portable", "arch": "x86_64", "capability": "AVX2", "threads": 2}
SPREAD = {"committed.json": {"test_auc": 0.01, "test_acc": 0.02}}


def _measured(numerics: dict, **values: float) -> dict:
    return {**_changed(**values), "numerics": numerics}


def test_metrics_under_the_same_portable_numerics_compare_exactly_whatever_the_cpu(
    tmp_path: Path,
) -> None:
    here = _write(tmp_path / "committed.json", _measured({**PORTABLE, "cpu": "AMD EPYC"}))
    elsewhere = {**PORTABLE, "cpu": "Intel Xeon"}
    same_bits = _write(tmp_path / "a.json", _measured(elsewhere))
    last_bit = _write(tmp_path / "b.json", _measured(elsewhere, test_auc=0.8119851851851854))
    assert all(row.verdict == "identical" for row in compare_files(here, same_bits, 0, SPREAD))
    assert not all(row.ok for row in compare_files(here, last_bit, 0, SPREAD))


def test_other_numerics_compare_within_the_measured_seed_noise(tmp_path: Path) -> None:
    committed = _write(tmp_path / "committed.json", _measured(PORTABLE))
    native = {**PORTABLE, "profile": "native", "capability": "AVX512"}
    noisy = _write(tmp_path / "a.json", _measured(native, test_auc=0.82))
    rows = {row.metric: row.verdict for row in compare_files(committed, noisy, 0, SPREAD)}
    assert rows["test_auc"] == "within noise"
    assert rows["test_acc"] == "identical"


def test_a_real_change_fails_also_where_only_noise_tolerance_applies(tmp_path: Path) -> None:
    """A drop of .05 AUC (what the exact check also caught) is 5 sigma of seed noise: changed."""
    committed = _write(tmp_path / "committed.json", _measured(PORTABLE))
    native = {**PORTABLE, "profile": "native"}
    planted = _write(tmp_path / "a.json", _measured(native, test_auc=0.7619851851851853))
    rows = {row.metric: row for row in compare_files(committed, planted, 0, SPREAD)}
    assert not rows["test_auc"].ok and rows["test_auc"].verdict == "changed"


def test_a_metric_without_a_measured_spread_stays_exact(tmp_path: Path) -> None:
    committed = _write(tmp_path / "committed.json", _measured(PORTABLE))
    native = {**PORTABLE, "profile": "native"}
    moved = _write(tmp_path / "a.json", _measured(native, test_auc=0.812, test_acc=0.5034))
    rows = {row.metric: row.ok for row in compare_files(committed, moved, 0, {})}
    assert rows == {**rows, "test_auc": False, "test_acc": False}


def test_a_per_class_spread_is_pooled_over_the_classes_of_its_figure() -> None:
    """Three seeds can give one class a spread near zero by chance; its classes' RMS stands."""
    spread = {
        "per_class.ring.sensitivity": 0.01,
        "per_class.disc.sensitivity": 0.2,
        "test_auc": 0.01,
    }
    noise = pooled(spread)
    assert noise["per_class.ring.sensitivity"] == pytest.approx(math.sqrt((0.01**2 + 0.2**2) / 2))
    assert noise["per_class.disc.sensitivity"] == 0.2  # never below its own
    assert noise["test_auc"] == 0.01  # not per class: its own


def test_metrics_from_another_cpu_vendor_compare_within_noise(tmp_path: Path) -> None:
    """Measured: an Intel Xeon does not rebuild AMD-made conv-net metrics bit for bit."""
    amd = {**PORTABLE, "vendor": "AuthenticAMD", "l2_cache": "1024K"}
    committed = _write(tmp_path / "committed.json", _measured(amd))
    intel = {**amd, "vendor": "GenuineIntel", "l2_cache": "1280K"}
    moved = _write(tmp_path / "a.json", _measured(intel, test_auc=0.82))
    rows = {row.metric: row.verdict for row in compare_files(committed, moved, 0, SPREAD)}
    assert rows["test_auc"] == "within noise"
