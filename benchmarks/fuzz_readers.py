"""`make bench-fuzz`: the reader fuzz tests at a larger budget, with the cases counted.

Runs tests/test_fuzz_readers.py in-process with MEDDX_FUZZ_EXAMPLES=SCALE (default 10: ten
times the examples of the test suite), counts the examples each reader got and how they
ended (loaded valid arrays / refused with a meddx error naming the file), and writes
reports/benchmarks/fuzz.{json,md}. A failure is an input that made a reader raise another
exception or return an invalid value: hypothesis prints it, and the report counts it.
Deterministic (derandomized), so a rerun at the same SCALE generates the same cases.
"""

from __future__ import annotations

import os
import sys
import time

import pytest
from common import REPO

from meddx.io import write_json, write_text

READERS = {
    "npz": "MedMNIST-layout .npz (validate.read_image_file)",
    "wfdb": "MIT-BIH WFDB .hea/.dat/.atr (mitbih.read_record)",
    "sha256sums": "SHA256SUMS.txt (mitbih.read_sums)",
    "labels_csv": "labels.csv of the folder source (folder.read_labels)",
    "dicom": "DICOM (folder.load_image -> dicom.read_pixels)",
    "nifti": "NIfTI .nii/.nii.gz (folder.load_image)",
}


class Outcomes:
    """A pytest plugin keeping each fuzz test's outcome and duration."""

    def __init__(self) -> None:
        self.tests: dict[str, dict[str, object]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.failed:
            self.tests[report.nodeid.split("::")[-1]] = {
                "outcome": report.outcome,
                "seconds": round(report.duration, 2),
            }


def main() -> int:
    scale = float(os.environ.get("SCALE", "10"))
    os.environ["MEDDX_FUZZ_EXAMPLES"] = str(scale)
    sys.path.insert(0, str(REPO / "tests"))
    outcomes = Outcomes()
    started = time.perf_counter()
    code = pytest.main(
        ["-q", "-p", "no:cacheprovider", "-W", "ignore", str(REPO / "tests/test_fuzz_readers.py")],
        plugins=[outcomes],
    )
    seconds = time.perf_counter() - started
    import test_fuzz_readers as fuzz

    readers = {
        name: {
            "reader": what,
            "cases": fuzz.CASES[name],
            "loaded": fuzz.CASES[f"{name}.loaded"],
            "refused": fuzz.CASES[f"{name}.refused"],
        }
        for name, what in READERS.items()
    }
    failed = [name for name, test in outcomes.tests.items() if test["outcome"] != "passed"]
    report = {
        "scale": scale,
        "seconds": round(seconds, 1),
        "cases": sum(r["cases"] for r in readers.values()),
        "failures": len(failed),
        "failed_tests": failed,
        "readers": readers,
        "tests": outcomes.tests,
        "cpu": os.cpu_count(),
    }
    out = REPO / "reports" / "benchmarks"
    write_json(out / "fuzz.json", report)
    rows = [
        f"| {r['reader']} | {r['cases']} | {r['loaded']} | {r['refused']} |"
        for r in readers.values()
    ]
    write_text(
        out / "fuzz.md",
        "# Reader fuzzing (hypothesis)\n\n"
        f"{report['cases']} generated cases at {scale:g}x the test suite's budget, "
        f"{report['seconds']} s, {len(failed)} failing reader(s). A case either loads valid "
        "arrays or is refused with a meddx error naming the file; anything else fails.\n\n"
        "| reader | cases | loaded | refused |\n|---|---|---|---|\n" + "\n".join(rows) + "\n",
    )
    print((out / "fuzz.md").read_text())
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
