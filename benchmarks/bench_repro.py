"""`make bench-repro`: where the wall time of the offline `dvc repro --force` goes.

Issues 20 and 21 ask that the whole offline `make repro` stay <= 3 min on 2 cores. The run
is timed per stage: every stage command calls `python` (dvc.yaml), so a `python` first on
PATH that runs the real interpreter as its child records each stage's wall and CPU seconds
(user + system, of the stage and its children; `DVC_STAGE` names it). What dvc itself costs
is the total wall less the stages'. The machine may be shared, so CPU seconds, the load
average before and after and the CPU model are written beside the wall times:
reports/benchmarks/repro_time.{json,md}. PROJECT (default: this repository) is the project
whose pipeline runs; its outputs and MLflow store are rewritten, as `make repro` would.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO

from meddx import numerics
from meddx.io import write_json, write_text

OUT = REPO / "reports" / "benchmarks"
TARGET_S = 180.0

# The shim: the real interpreter as a child, its wall and CPU (children's rusage) appended as
# one JSON line to $MEDDX_BENCH_LOG. The stage's own os.execve (meddx.numerics' re-exec) stays
# in the same child, so its CPU is counted too.
SHIM = """#!{python}
import json, os, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call([{python!r}, *sys.argv[1:]])
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(os.environ["MEDDX_BENCH_LOG"], "a") as log:
    log.write(json.dumps({{
        "stage": os.environ.get("DVC_STAGE", " ".join(sys.argv[1:4])),
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "rc": code,
    }}) + "\\n")
sys.exit(code)
"""


# What every stage pays before its own work: the interpreter, meddx's config, MLflow's import
# and the opening of an existing sqlite store; and torch's import, which the stages that train
# or score pay on top. Times the number of stages, the most that start-up cuts could save.
STARTUP = {
    "mlflow_store": "from meddx.tracking.store import client; "
    "client('sqlite:///{db}').search_experiments()",
    "torch": "import torch",
}


def _cpu_of(code: str) -> dict[str, float]:
    """Wall and CPU seconds of `python -c code` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"wall_s": round(time.perf_counter() - started, 2), "cpu_s": round(cpu, 2)}


def startup(folder: Path) -> dict[str, dict[str, float]]:
    db = folder / "startup.db"
    _cpu_of(STARTUP["mlflow_store"].format(db=db))  # creates the store (migrations) once
    return {name: _cpu_of(code.format(db=db)) for name, code in STARTUP.items()}


def _shim_dir(folder: Path) -> Path:
    shim = folder / "python"
    shim.write_text(SHIM.format(python=sys.executable))
    shim.chmod(0o755)
    return folder


def run(project: Path) -> dict:
    """`dvc repro --force` in `project`, timed per stage; the figures as a dict."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "stages.jsonl"
        env = {
            **os.environ,
            "PATH": f"{_shim_dir(Path(tmp))}:{Path(sys.executable).parent}:{os.environ['PATH']}",
            "MEDDX_BENCH_LOG": str(log),
        }
        load_before = os.getloadavg()
        started = time.perf_counter()
        subprocess.run(["dvc", "repro", "--force"], cwd=project, env=env, check=True)
        total = time.perf_counter() - started
        load_after = os.getloadavg()
        stages = [json.loads(line) for line in log.read_text().splitlines()]
        fixed = startup(Path(tmp))
    stage_wall = sum(s["wall_s"] for s in stages)
    return {
        "command": "dvc repro --force (offline default)",
        "project": str(project),
        "cpu": numerics.cpu_model(),
        "cores": os.cpu_count(),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "total_wall_s": round(total, 1),
        "stages_wall_s": round(stage_wall, 1),
        "stages_cpu_s": round(sum(s["cpu_s"] for s in stages), 1),
        "dvc_overhead_s": round(total - stage_wall, 1),
        "target_s": TARGET_S,
        "startup_per_stage": fixed,
        "stages": stages,
    }


def markdown(result: dict) -> str:
    store = result["startup_per_stage"]["mlflow_store"]
    startup_rows = "\n".join(
        f"- `{name}`: {fig['wall_s']:.1f} s wall, {fig['cpu_s']:.1f} CPU s"
        for name, fig in result["startup_per_stage"].items()
    )
    rows = "\n".join(
        f"| `{s['stage']}` | {s['wall_s']:.1f} | {s['cpu_s']:.1f} |" for s in result["stages"]
    )
    return f"""# Offline `dvc repro --force`: wall time per stage

Dataset: the offline default (embedded synthetic images, synthetic 3-D solids, synthetic ECG).
Machine: {result["cpu"]}, {result["cores"]} cores; load average (1, 5, 15 min) before
{result["load_before"]}, after {result["load_after"]} (a shared machine: CPU seconds are the
figure load does not inflate). Target (issues 20, 21): total <= {result["target_s"]:.0f} s.

| stage | wall s | CPU s |
|---|---:|---:|
{rows}
| **all stages** | **{result["stages_wall_s"]:.1f}** | **{result["stages_cpu_s"]:.1f}** |
| dvc itself (total less stages) | {result["dvc_overhead_s"]:.1f} | |
| **total** | **{result["total_wall_s"]:.1f}** | |

Start-up every stage pays before its work (a fresh process, measured after the run):
{startup_rows}
Over {len(result["stages"])} stages: about {len(result["stages"]) * store["cpu_s"]:.0f} CPU s of
the stages' {result["stages_cpu_s"]:.0f}, the most that start-up cuts could save.
"""


def main() -> None:
    project = Path(os.environ.get("PROJECT", REPO)).resolve()
    result = run(project)
    write_json(OUT / "repro_time.json", result)
    write_text(OUT / "repro_time.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
