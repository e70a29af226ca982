"""`make bench-soak`: 50 short stage runs in a row against one MLflow store, on loopback.

A real `mlflow server` (sqlite backend store, artifacts it serves itself) on a free
127.0.0.1 port, and RUNS (default 50) executions of `python -m meddx acquire_images` (the
offline synthetic images, small) in one project, each logging its run there. Bounded: each
run has RUN_TIMEOUT_S, the whole soak MAX_S, then it stops by itself and stops the server.
Reports to reports/benchmarks/soak.{json,md}: failures (target 0), runs found on the server
(every one FINISHED, none twice), the store's size, and the drift of the per-run wall time
and of the run's own duration as the server recorded it: median of the last 10 over the
first 10 (1.0 = no drift; a store that slows as it grows shows > 1).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO

sys.path.insert(0, str(REPO / "tests"))
from meddx.io import write_json, write_text
from servers import mlflow_server

RUNS = int(os.environ.get("RUNS", "50"))
RUN_TIMEOUT_S = 300
MAX_S = 1800
EXPERIMENT = "meddx-soak"
WINDOW = 10
STAGE = ["acquire_images", *(f"data.image.synthetic.{s}={n}" for s, n in
         (("train", 160), ("val", 80), ("test", 80)))]  # fmt: skip


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def drift(values: list[float]) -> float | None:
    if len(values) < 2 * WINDOW:
        return None
    return statistics.median(values[-WINDOW:]) / statistics.median(values[:WINDOW])


def ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def soak(work: Path) -> dict[str, object]:
    from mlflow.tracking import MlflowClient

    store, artifacts, project = work / "mlflow.db", work / "artifacts", work / "project"
    project.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    runs: list[dict[str, object]] = []
    started = time.monotonic()
    with mlflow_server(f"sqlite:///{store}", artifacts) as url:
        for i in range(RUNS):
            if time.monotonic() - started > MAX_S:
                break
            command = [sys.executable, "-m", "meddx", *STAGE, f"paths.root={project}"]
            command += ["tracking=server", "tracking.uri=null", f"tracking.experiment={EXPERIMENT}"]
            t0 = time.perf_counter()
            try:
                done = subprocess.run(
                    command,
                    cwd=REPO,
                    env={**env, "MLFLOW_TRACKING_URI": url, "MEDDX_PIPELINE_ID": f"soak-{i}"},
                    capture_output=True,
                    text=True,
                    timeout=RUN_TIMEOUT_S,
                )
                code, tail = done.returncode, done.stdout[-500:] + done.stderr[-1500:]
            except subprocess.TimeoutExpired:
                code, tail = "timeout", ""
            runs.append(
                {
                    "i": i,
                    "code": code,
                    "wall_s": round(time.perf_counter() - t0, 3),
                    "store_bytes": store.stat().st_size + folder_bytes(artifacts),
                }
            )
            if code != 0:
                runs[-1]["output"] = tail
            print(f"run {i}: exit {code}, {runs[-1]['wall_s']} s", flush=True)
        client = MlflowClient(url)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        found = client.search_runs([experiment.experiment_id], max_results=10_000)
    by_id = {r.data.tags.get("meddx.pipeline_id"): r for r in found}
    durations = [
        (by_id[f"soak-{r['i']}"].info.end_time - by_id[f"soak-{r['i']}"].info.start_time) / 1000
        for r in runs
        if f"soak-{r['i']}" in by_id and by_id[f"soak-{r['i']}"].info.end_time
    ]
    walls = [float(r["wall_s"]) for r in runs]
    return {
        "runs": len(runs),
        "failures": sum(1 for r in runs if r["code"] != 0),
        "runs_on_server": len(found),
        "runs_finished": sum(1 for r in found if r.info.status == "FINISHED"),
        "duplicates": len(found) - len(by_id),
        "store_bytes": {
            "sqlite": store.stat().st_size,
            "artifacts": folder_bytes(artifacts),
            "per_run": round(
                (runs[-1]["store_bytes"] - runs[0]["store_bytes"]) / max(1, len(runs) - 1)
            ),
        },
        "wall_s": {
            "median": round(statistics.median(walls), 3),
            "first10_median": round(statistics.median(walls[:WINDOW]), 3),
            "last10_median": round(statistics.median(walls[-WINDOW:]), 3),
            "drift": drift(walls),
        },
        "run_duration_s": {
            "first10_median": round(statistics.median(durations[:WINDOW]), 3),
            "last10_median": round(statistics.median(durations[-WINDOW:]), 3),
            "drift": drift(durations),
        },
        "seconds": round(time.monotonic() - started, 1),
        "stage": " ".join(STAGE),
        "cpu": os.cpu_count(),
        "per_run": runs,
    }


def write_markdown(report: dict[str, Any], path: Path) -> None:
    wall, duration, size = report["wall_s"], report["run_duration_s"], report["store_bytes"]
    write_text(
        path,
        "# Soak: short stage runs in a row against one MLflow store (loopback)\n\n"
        f"`python -m meddx {report['stage']}`, {report['runs']} runs in a row, logging to one "
        f"`mlflow server` (sqlite store) on 127.0.0.1, {report['seconds']} s in all.\n\n"
        "| figure | value |\n|---|---|\n"
        f"| failures (target 0) | {report['failures']} |\n"
        f"| runs on the server / FINISHED / duplicates | {report['runs_on_server']} / "
        f"{report['runs_finished']} / {report['duplicates']} |\n"
        f"| store size: sqlite + artifacts (per run) | {size['sqlite']} + {size['artifacts']} "
        f"bytes ({size['per_run']} per run) |\n"
        f"| wall time per run, first 10 / last 10 (median) | {wall['first10_median']} s / "
        f"{wall['last10_median']} s (drift {ratio(wall['drift'])}) |\n"
        f"| run duration on the server, first 10 / last 10 | {duration['first10_median']} s / "
        f"{duration['last10_median']} s (drift {ratio(duration['drift'])}) |\n\n"
        "A drift above 1 would mean runs slow down as the store grows. On a shared machine the "
        "other load moves both figures too: read them beside `per_run` in soak.json.\n",
    )


def main() -> int:
    out = REPO / "reports" / "benchmarks"
    if "--markdown-only" in sys.argv:  # rewrite soak.md from soak.json
        write_markdown(json.loads((out / "soak.json").read_text()), out / "soak.md")
        return 0
    with tempfile.TemporaryDirectory(prefix="meddx-soak-") as work:
        report = soak(Path(work))
    write_json(out / "soak.json", report)
    write_markdown(report, out / "soak.md")
    print((out / "soak.md").read_text())
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
