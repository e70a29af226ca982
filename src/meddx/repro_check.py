"""The reproduction check behind `make ci-repro`: rebuild the pipeline, compare its metrics.

A change that silently alters results must fail CI. The check reads every metrics file
committed under `reports/metrics/` and each image pipeline's folder in it (as in git HEAD,
before anything runs), rebuilds the
pipeline with `dvc repro --force` (every stage recomputed, nothing taken from a cache), and
fails unless `dvc status` is clean and every committed metric is reproduced (a metric only
the rebuild has is reported as new).

How exactly depends on the numerics each file records (meddx.numerics): where both sides ran
under the portable profile with the same pinned libraries, the comparison is exact, whatever
the CPU model. Where identity is not possible (another architecture, `native`, a GPU, other
library versions), a metric passes when it lies within `NOISE_SIGMAS` of its measured
seed-to-seed standard deviation (`reports/repro/spread.json`, written by
`benchmarks/seed_spread.py` from the offline pipeline at several seeds): each row then says
identical / within noise / changed. A metric without a measured spread stays exact.

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
SPREAD_FILE = "reports/repro/spread.json"
TOLERANCE_VARIABLE = "MEDDX_REPRO_ABS_TOL"
FACTS_KEY = "numerics"  # what each metrics file records of the machine: context, not a metric
NOISE_SIGMAS = 3.0
NEW = "new (not committed)"


@dataclass(frozen=True)
class Row:
    file: str
    metric: str
    committed: Any
    reproduced: Any
    ok: bool
    verdict: str = ""  # identical / within noise / changed


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


def exact_possible(committed: Any, reproduced: Any) -> bool:
    """Whether both files were measured under numerics that make bit identity possible."""
    from meddx.numerics import identical_numerics

    old = committed.get(FACTS_KEY) if isinstance(committed, Mapping) else None
    new = reproduced.get(FACTS_KEY) if isinstance(reproduced, Mapping) else None
    return isinstance(old, Mapping) and isinstance(new, Mapping) and identical_numerics(old, new)


def _metrics_only(tree: Any) -> dict[str, Any]:
    if isinstance(tree, Mapping):
        tree = {key: value for key, value in tree.items() if key != FACTS_KEY}
    return leaves(tree) if tree is not None else {}


def family(metric: str) -> str:
    """`per_class.ring.sensitivity` -> `per_class.*.sensitivity`: the same figure of every class."""
    parts = metric.split(".")
    return (
        ".".join([parts[0], "*", *parts[2:]])
        if parts[0] == "per_class" and len(parts) > 2
        else metric
    )


def pooled(spread: Mapping[str, float]) -> dict[str, float]:
    """Each metric's noise scale: the larger of its own seed-to-seed standard deviation and the
    root mean square over its family (the same per-class figure of every class).

    A standard deviation from 3 seeds has 2 degrees of freedom: one class's can come out near
    zero by chance (the ring class's sensitivity did, 0.013, and the Intel rebuild moved it by
    0.28 while every other figure stayed within 3 sigma). The classes of one metrics file are
    measured alike, so pooling them gives the estimate 2 x (classes) degrees of freedom; a
    figure that is not per class keeps its own.
    """
    members: dict[str, list[float]] = {}
    for metric, sigma in spread.items():
        members.setdefault(family(metric), []).append(sigma)
    rms = {
        key: math.sqrt(sum(v * v for v in values) / len(values)) for key, values in members.items()
    }
    return {metric: max(sigma, rms[family(metric)]) for metric, sigma in spread.items()}


def compare(
    committed: Mapping[str, Any],
    reproduced: Mapping[str, Any | None],
    abs_tol: float,
    spread: Mapping[str, Mapping[str, float]] | None = None,
) -> list[Row]:
    """One row per metric of each committed file; a committed metric the rebuild lacks fails.

    Files whose numerics allow identity compare within `abs_tol`; others within `abs_tol` or
    `NOISE_SIGMAS` times the metric's seed-to-seed standard deviation in `spread` (`pooled`
    over the classes of a per-class figure). A metric only the rebuild has (a figure the code
    now adds, as calibration added `test_nll`) is listed as `new`, not failed: it changes no
    committed result, and it is compared from the commit that records it on.
    """
    rows = []
    for name in sorted(committed):
        exact = exact_possible(committed[name], reproduced.get(name))
        noise = {} if exact else pooled((spread or {}).get(name, {}))
        old, new = _metrics_only(committed[name]), _metrics_only(reproduced.get(name))
        for metric in sorted(old.keys() | new.keys()):
            present = metric in old and metric in new
            identical = present and same(old[metric], new[metric], abs_tol)
            sigma = noise.get(metric)
            close = (
                present
                and sigma is not None
                and same(old[metric], new[metric], abs_tol + NOISE_SIGMAS * sigma)
            )
            added = metric in new and metric not in old
            verdict = (
                NEW
                if added
                else "identical"
                if identical
                else "within noise"
                if close
                else "changed"
            )
            ok = identical or close or added
            rows.append(Row(name, metric, old.get(metric), new.get(metric), ok, verdict))
    return rows


def compare_files(
    committed: Path,
    reproduced: Path,
    abs_tol: float = 0.0,
    spread: Mapping[str, Mapping[str, float]] | None = None,
) -> list[Row]:
    """`compare` on two metrics files (a missing reproduced file fails every metric)."""
    found = json.loads(reproduced.read_text()) if reproduced.is_file() else None
    return compare(
        {committed.name: json.loads(committed.read_text())},
        {committed.name: found},
        abs_tol,
        {committed.name: (spread or {}).get(committed.name, {})},
    )


def committed_spread(repo: Path, rev: str = "HEAD") -> dict[str, dict[str, float]]:
    """{metrics file: {metric: seed-to-seed standard deviation}}, as committed (empty if none)."""
    try:
        return json.loads(_git(repo, "show", f"{rev}:{SPREAD_FILE}"))["std"]
    except (subprocess.CalledProcessError, KeyError, json.JSONDecodeError):
        return {}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def pipeline_names(repo: Path, rev: str = "HEAD") -> list[str]:
    """The image pipelines beside the default one (`pipelines` of params.yaml at `rev`)."""
    import yaml

    try:
        params = yaml.safe_load(_git(repo, "show", f"{rev}:params.yaml")) or {}
    except subprocess.CalledProcessError:
        return []
    return [str(name) for name in params.get("pipelines") or {}]


def committed_metrics(repo: Path, rev: str = "HEAD") -> dict[str, Any]:
    """Every `reports/metrics/*.json` and `reports/metrics/<pipeline>/*.json` (meddx.paths) as
    committed at `rev` (not as the working tree has it)."""
    folders = [METRICS_DIR, *(f"{METRICS_DIR}/{name}" for name in pipeline_names(repo, rev))]
    names = [
        name
        for folder in folders
        for name in _git(repo, "ls-tree", "--name-only", rev, f"{folder}/").split()
    ]
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
    return Report(compare(committed, reproduced, abs_tol, committed_spread(repo)), abs_tol, status)


def tolerance_text(abs_tol: float) -> str:
    return "exact (abs 0)" if abs_tol == 0 else f"abs {abs_tol:g}"


def table(rows: Sequence[Row]) -> str:
    header = ("metric", "committed", "reproduced", "verdict")
    lines = [
        (
            f"{row.file}:{row.metric}",
            repr(row.committed),
            repr(row.reproduced),
            row.verdict if row.ok else f"{row.verdict}: FAIL",
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
    counts = {
        v: sum(r.verdict == v for r in report.rows) for v in ("identical", "within noise", NEW)
    }
    print(
        f"identical: {counts['identical']}, within noise: {counts['within noise']}, "
        f"new: {counts[NEW]} (recommit the metrics to check them from then on)"
    )
    failed = sum(not row.ok for row in report.rows)
    print(
        f"{len(report.rows) - failed}/{len(report.rows)} metrics reproduced: "
        + ("PASS" if report.ok else "FAIL")
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
