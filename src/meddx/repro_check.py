"""The reproduction check behind `make ci-repro`: rebuild the pipeline, compare its metrics.

A change that silently alters results must fail CI. The check reads every metrics file
committed under `reports/metrics/` (as in git HEAD, before anything runs), rebuilds the
pipeline with `dvc repro --force` (every stage recomputed, nothing taken from a cache), and
fails unless `dvc status` is clean and every committed metric is reproduced within the
stated absolute tolerance. The default is exact: seeded, deterministic CPU runs on one
machine type reproduce bit for bit; another CPU type or a GPU needs `--abs-tol`.

    python -m meddx.repro_check [--abs-tol 1e-6] [--no-force] [--repo .]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METRICS_DIR = "reports/metrics"
TOLERANCE_VARIABLE = "MEDDX_REPRO_ABS_TOL"


@dataclass(frozen=True)
class Row:
    file: str
    metric: str
    committed: Any
    reproduced: Any
    ok: bool


@dataclass
class Report:
    rows: list[Row]
    abs_tol: float
    dvc_status: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.dvc_status and all(row.ok for row in self.rows)


def leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to the values of a metrics JSON (`per_class.disc.f1`), as in `dvc metrics`."""
    if isinstance(tree, Mapping):
        found: dict[str, Any] = {}
        for key, value in tree.items():
            found.update(leaves(value, f"{prefix}.{key}" if prefix else str(key)))
        return found
    return {prefix: tree}


def same(committed: Any, reproduced: Any, abs_tol: float) -> bool:
    numbers = (int, float)
    if isinstance(committed, bool) or isinstance(reproduced, bool):
        return committed is reproduced
    if isinstance(committed, numbers) and isinstance(reproduced, numbers):
        if math.isnan(committed) or math.isnan(reproduced):
            return math.isnan(committed) and math.isnan(reproduced)
        return committed == reproduced or abs(committed - reproduced) <= abs_tol
    return committed == reproduced


def compare(
    committed: Mapping[str, Any], reproduced: Mapping[str, Any | None], abs_tol: float
) -> list[Row]:
    """One row per metric of each committed file; a metric missing on either side fails."""
    rows = []
    for name in sorted(committed):
        old = leaves(committed[name])
        new = leaves(reproduced.get(name)) if reproduced.get(name) is not None else {}
        for metric in sorted(old.keys() | new.keys()):
            rows.append(
                Row(
                    name,
                    metric,
                    old.get(metric),
                    new.get(metric),
                    metric in old and metric in new and same(old[metric], new[metric], abs_tol),
                )
            )
    return rows


def compare_files(committed: Path, reproduced: Path, abs_tol: float = 0.0) -> list[Row]:
    """`compare` on two metrics files (a missing reproduced file fails every metric)."""
    found = json.loads(reproduced.read_text()) if reproduced.is_file() else None
    return compare(
        {committed.name: json.loads(committed.read_text())}, {committed.name: found}, abs_tol
    )


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def committed_metrics(repo: Path, rev: str = "HEAD") -> dict[str, Any]:
    """Every `reports/metrics/*.json` as committed at `rev` (not as the working tree has it)."""
    names = _git(repo, "ls-tree", "--name-only", rev, f"{METRICS_DIR}/").split()
    return {
        name: json.loads(_git(repo, "show", f"{rev}:{name}"))
        for name in names
        if name.endswith(".json")
    }


def output_hashes(lock_text: str) -> dict[str, str]:
    """{out path: md5} of a dvc.lock."""
    import yaml

    stages = (yaml.safe_load(lock_text) or {}).get("stages", {})
    return {
        out["path"]: out.get("md5", "")
        for stage in stages.values()
        for out in stage.get("outs", [])
    }


def changed_outputs(repo: Path, rev: str = "HEAD") -> list[str]:
    """Outputs whose bytes differ from the committed dvc.lock (reported, not failed: a model
    made on another CPU type differs in its last bits while its metrics stay in tolerance)."""
    try:
        committed = output_hashes(_git(repo, "show", f"{rev}:dvc.lock"))
    except subprocess.CalledProcessError:
        return []
    lock = repo / "dvc.lock"
    now = output_hashes(lock.read_text()) if lock.is_file() else {}
    return sorted(
        path for path in committed.keys() | now.keys() if committed.get(path) != now.get(path)
    )


def _dvc(repo: Path, *args: str, capture: bool = False) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, text=True, capture_output=capture
    )
    if done.returncode != 0:
        detail = f":\n{done.stderr}" if capture else " (output above)"
        raise RuntimeError(f"`dvc {' '.join(args)}` failed in {repo}{detail}")
    return done.stdout or ""


def check(repo: Path, abs_tol: float = 0.0, force: bool = True) -> Report:
    """Rebuild the pipeline in `repo` and compare its metrics with the committed ones."""
    committed = committed_metrics(repo)
    if not committed:
        raise RuntimeError(f"no metrics committed under {repo / METRICS_DIR}: nothing to check")
    _dvc(repo, "repro", *(["--force"] if force else []))
    status = json.loads(_dvc(repo, "status", "--json", capture=True) or "{}")
    reproduced = {
        name: json.loads((repo / name).read_text()) if (repo / name).is_file() else None
        for name in committed
    }
    return Report(compare(committed, reproduced, abs_tol), abs_tol, status)


def tolerance_text(abs_tol: float) -> str:
    return "exact (abs 0)" if abs_tol == 0 else f"abs {abs_tol:g}"


def table(rows: Sequence[Row]) -> str:
    header = ("metric", "committed", "reproduced", "ok")
    lines = [
        (
            f"{row.file}:{row.metric}",
            repr(row.committed),
            repr(row.reproduced),
            "ok" if row.ok else "FAIL",
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
        for cells in [header, *lines]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m meddx.repro_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    parser.add_argument(
        "--abs-tol",
        type=float,
        default=float(os.environ.get(TOLERANCE_VARIABLE) or 0.0),
        help=f"absolute tolerance per metric (default: ${TOLERANCE_VARIABLE} or 0)",
    )
    parser.add_argument(
        "--no-force",
        dest="force",
        action="store_false",
        help="run only the stages DVC finds out of date",
    )
    args = parser.parse_args(argv)
    try:
        report = check(args.repo.resolve(), args.abs_tol, args.force)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"reproduction check: error: {exc}", file=sys.stderr)
        return 2
    print(f"\nReproduction check: tolerance {tolerance_text(report.abs_tol)} per metric\n")
    print(table(report.rows))
    print(f"\ndvc status: {'clean' if not report.dvc_status else json.dumps(report.dvc_status)}")
    changed = changed_outputs(args.repo.resolve())
    print(
        "outputs (dvc.lock md5, not checked): "
        + (f"differ from HEAD: {', '.join(changed)}" if changed else "identical to HEAD")
    )
    failed = sum(not row.ok for row in report.rows)
    print(
        f"{len(report.rows) - failed}/{len(report.rows)} metrics reproduced: "
        + ("PASS" if report.ok else "FAIL")
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
