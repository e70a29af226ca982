"""What the two data benchmarks share: where the mirror is, and the data.json they fill."""

from __future__ import annotations

import json

from common import REPO

REPORT = REPO / "reports" / "benchmarks" / "data.json"


def record(key: str, seconds: float) -> None:
    """Merge one figure into data.json, keeping what the other benchmark wrote there."""
    from meddx.io import write_json

    report = json.loads(REPORT.read_text()) if REPORT.is_file() else {}
    write_json(REPORT, {**report, key: round(seconds, 2)})
