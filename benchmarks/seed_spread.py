"""Seed-to-seed spread of every committed metric: the noise scale of `make ci-repro`.

Where two machines cannot give identical bits (another architecture, `trainer.numerics=native`,
a GPU), the reproduction check accepts a metric within a few standard deviations of what a
change of seed alone moves it by. This runs the offline pipeline's stages in dvc.yaml order,
once per seed in SEEDS (default 0 1 2), each in a project of its own under a temporary folder
(`python -m meddx <stage> seed=S paths.root=...`, the same commands DVC runs), and writes the
per-metric sample standard deviation to reports/repro/spread.json.

    SEEDS="0 1 2" python benchmarks/seed_spread.py
    PIPELINE=volume python benchmarks/seed_spread.py   # one image pipeline's stages only
    STAGES="acquire_ecg preprocess_ecg train_rnn evaluate_rnn" python benchmarks/seed_spread.py

With PIPELINE (or STAGES, dvc.yaml stage names), only those stages run (an added pipeline or
metric gets its spread without rerunning the rest) and only their metrics files are replaced
in spread.json; the seeds of each file are recorded beside its spread.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from meddx.io import write_json
from meddx.paths import pipeline_stages
from meddx.repro_check import FACTS_KEY, SPREAD_FILE, leaves

REPO = Path(__file__).resolve().parents[1]


def run_pipeline(root: Path, seed: int, *overrides: str) -> dict[str, dict]:
    """Every stage of dvc.yaml (`foreach` ones expanded) for one seed; {metrics file: metrics}.

    Each runs its dvc.yaml command with the config composed from conf/ instead of params.yaml,
    so that `seed` and `paths.root` can be set."""
    only, chosen = os.environ.get("PIPELINE"), os.environ.get("STAGES", "").split()
    for name, stage in pipeline_stages(REPO / "dvc.yaml").items():
        module, *options = stage["cmd"].split()[3:]
        pipeline = options[options.index("--pipeline") :][:2] if "--pipeline" in options else []
        if (only and pipeline[1:] != [only]) or (chosen and name not in chosen):
            continue
        command = [sys.executable, "-m", "meddx", module, *pipeline, f"seed={seed}"]
        command += [f"paths.root={root}", f"tracking.uri=sqlite:///{root / 'mlflow.db'}"]
        subprocess.run([*command, *overrides], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    metrics = root / "reports" / "metrics"
    return {
        f"reports/metrics/{path.relative_to(metrics).as_posix()}": json.loads(path.read_text())
        for path in sorted(metrics.rglob("*.json"))
    }


def numeric_leaves(metrics: dict) -> dict[str, float]:
    tree = {key: value for key, value in metrics.items() if key != FACTS_KEY}
    return {
        key: float(value)
        for key, value in leaves(tree).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def main() -> int:
    seeds = [int(s) for s in os.environ.get("SEEDS", "0 1 2").split()]
    runs, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="meddx-spread-") as scratch:
        for seed in seeds:
            root = Path(scratch, f"seed{seed}")
            root.mkdir()
            runs.append(run_pipeline(root, seed))
            print(f"seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    std: dict[str, dict[str, float]] = {}
    for name in sorted(set.intersection(*(set(r) for r in runs))):
        values = [numeric_leaves(r[name]) for r in runs]
        common = set.intersection(*(set(v) for v in values))
        std[name] = {
            key: statistics.stdev(v[key] for v in values)
            for key in sorted(common)
            if all(math.isfinite(v[key]) for v in values)
        }
    spread = {"std": {}, "seeds_of": {}}
    if (os.environ.get("PIPELINE") or os.environ.get("STAGES")) and (REPO / SPREAD_FILE).is_file():
        spread = json.loads((REPO / SPREAD_FILE).read_text())
        spread.setdefault("seeds_of", {name: spread["seeds"] for name in spread["std"]})
    spread["std"].update(std)
    spread["seeds_of"].update({name: seeds for name in std})
    write_json(
        REPO / SPREAD_FILE,
        {
            "dataset": "offline default (synthetic images, volumes and ECG)",
            "seeds": seeds,
            "seeds_of": dict(sorted(spread["seeds_of"].items())),
            "std": dict(sorted(spread["std"].items())),
        },
    )
    print(f"{sum(len(v) for v in std.values())} metrics, spread over seeds {seeds}: {SPREAD_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
