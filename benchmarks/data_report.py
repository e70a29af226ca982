"""What the two data benchmarks share: where the mirror is, and the data.json they fill."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "reports" / "benchmarks" / "data.json"


def mirror(needed: str) -> Path:
    """$MEDDX_DATA_MIRROR, else ../shared/data; exits when it lacks `needed` (a relative path)."""
    configured = os.environ.get("MEDDX_DATA_MIRROR")
    path = Path(configured) if configured else REPO.parent / "shared" / "data"
    if not (path / needed).exists():
        sys.exit(
            f"{Path(sys.argv[0]).name}: no {needed} in the mirror {path}; set MEDDX_DATA_MIRROR"
        )
    return path.resolve()


def record(key: str, seconds: float) -> None:
    """Merge one figure into data.json, keeping what the other benchmark wrote there."""
    from meddx.io import write_json

    report = json.loads(REPORT.read_text()) if REPORT.is_file() else {}
    write_json(REPORT, {**report, key: round(seconds, 2)})
