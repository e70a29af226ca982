"""The reproduction check compares committed metrics with reproduced ones, per metric."""

from __future__ import annotations

import json
from pathlib import Path

from meddx.repro_check import compare_files, output_hashes, table, tolerance_text

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


def test_missing_or_new_metrics_fail(tmp_path: Path) -> None:
    committed = _write(tmp_path / "committed.json", COMMITTED)
    extra = _write(tmp_path / "extra.json", _changed(test_f1=0.4))
    assert [r.metric for r in compare_files(committed, extra) if not r.ok] == ["test_f1"]
    missing = compare_files(committed, tmp_path / "absent.json")
    assert missing and not any(row.ok for row in missing)


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
