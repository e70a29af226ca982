"""`make bench-cnn3d`: our AdrenalMNIST3D recipe, one run per seed, beside the MedMNIST v2 3D rows.

Each run is the pipeline's own path (preprocess_images -> train_cnn -> evaluate, MLflow on)
in a fresh project folder, from the mirror's adrenalmnist3d.npz (28^3, official split), as
`make bench-cnn` runs the 2D recipes (`bench_cnn.one_run`). Seeds come from SEEDS (default
"0 1 2"); JOBS > 1 runs that many seeds at once, each on the recipe's own 2 threads (so a seed
gives the figures it gives alone: they depend on the thread count, not on the load). Extra
arguments are Hydra overrides on top of `+experiment=adrenal3d`. Writes
reports/benchmarks/cnn3d.{json,md}: per-seed and mean test AUC / ACC with their bootstrap
intervals, wall and CPU time per run and the load average, beside the published rows read
from src/meddx/reference/published.yaml (block `medmnist3d`), and keeps the `throughput`
entry that bench_throughput3d.py writes into the same files.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from bench_cnn import one_run, stats
from common import REPO, seeds, tracking_uri

from meddx.evaluation.report.published import load_published
from meddx.io import write_json, write_text

DATASET = "adrenalmnist3d"
EXPERIMENT = "adrenal3d"
BLOCK = "medmnist3d"
TARGETS = {"test_auc": 0.85, "test_acc": 0.81}  # issue 20, mean over 3 seeds
OUT = REPO / "reports" / "benchmarks"


def _seed_run(seed: int, overrides: list[str], jobs: int) -> dict[str, Any]:
    """One seed, with the load average around it and the runs beside it (its wall time's
    conditions)."""
    before = os.getloadavg()
    run = one_run(DATASET, seed, overrides, EXPERIMENT)
    return run | {"load_before": list(before), "load_after": list(os.getloadavg()), "jobs": jobs}


def _previous_runs(overrides: list[str], fresh: list[int]) -> list[dict[str, Any]]:
    """Runs of other seeds in cnn3d.json under the same overrides: SEEDS="3" adds a seed."""
    path = OUT / "cnn3d.json"
    before = json.loads(path.read_text()).get("accuracy", {}) if path.is_file() else {}
    if before.get("overrides") != overrides:
        return []
    return [run for run in before["runs"] if run["seed"] not in fresh]


def measure(overrides: list[str], jobs: int) -> dict[str, Any]:
    """Every seed of SEEDS, `jobs` at a time, beside the other seeds already measured."""
    kept = _previous_runs(overrides, seeds())
    if jobs > 1:  # a fresh sqlite store migrated by several processes at once fails
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri()).search_experiments()
    if jobs == 1:
        return _summary(kept + [_seed_run(seed, overrides, 1) for seed in seeds()], overrides, jobs)
    spawn = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
    runs = kept
    with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
        pending = {pool.submit(_seed_run, seed, overrides, jobs): seed for seed in seeds()}
        for done in as_completed(pending):
            run = done.result()
            print(json.dumps(run), flush=True)
            runs = sorted([*runs, run], key=lambda r: r["seed"])
            if len(runs) < len(kept) + len(pending):  # on disk before the other seeds end
                write("accuracy", _summary(runs, overrides, jobs))
    return _summary(runs, overrides, jobs)


def _summary(runs: list[dict[str, Any]], overrides: list[str], jobs: int) -> dict[str, Any]:
    summary = {
        key: stats([r[key] for r in runs])
        for key in ("test_auc", "test_acc", "test_balanced_acc", "wall_s", "cpu_s")
    }
    return {
        "dataset": DATASET,
        "experiment": EXPERIMENT,
        "overrides": overrides,
        "jobs": jobs,
        "seeds": [r["seed"] for r in runs],
        **summary,
        "runs": runs,
    }


def _published_rows() -> list[str]:
    block = load_published()[BLOCK]
    return [
        f"| {method} (published) | {values[DATASET][0]:.3f} | {values[DATASET][1]:.3f} |"
        for method, values in block["rows"].items()
        if DATASET in values
    ]


def _accuracy_section(result: dict[str, Any]) -> list[str]:
    block = load_published()[BLOCK]
    lines = [
        f"## {DATASET}, test split (298 volumes): meddx `+experiment={EXPERIMENT}`",
        "",
        "| Method | AUC | ACC |",
        "|---|---|---|",
        *_published_rows(),
        f"| meddx `+experiment={EXPERIMENT}` (measured, mean ± sd of {len(result['runs'])} seeds)"
        f" | **{result['test_auc']['mean']:.3f}** ± {result['test_auc']['sd']:.3f}"
        f" | **{result['test_acc']['mean']:.3f}** ± {result['test_acc']['sd']:.3f} |",
        "",
        "| seed | test AUC [95% CI] | test ACC [95% CI] | best val AUC | wall s | CPU s"
        " | load 1 min before / after |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['seed']} | {r['test_auc']:.4f} [{r['test_auc_ci_low']:.3f}, "
            f"{r['test_auc_ci_high']:.3f}] | {r['test_acc']:.4f} [{r['test_acc_ci_low']:.3f}, "
            f"{r['test_acc_ci_high']:.3f}] | {r['best_val_auc']:.4f} | {r['wall_s']:.0f} | "
            f"{r['cpu_s']:.0f} | {r['load_before'][0]:.1f} / {r['load_after'][0]:.1f} |"
        )
    checks = []
    for metric, goal in TARGETS.items():
        mean = result[metric]["mean"]
        checks.append(f"{metric} {mean:.4f} " + ("met" if mean >= goal else f"< {goal} NOT met"))
    lines += [
        "",
        f"Targets (issue 20, mean of the seeds; four decimals): {'; '.join(checks)}.",
        "Seeds run at a time: "
        + ", ".join(f"seed {r['seed']} {r.get('jobs', result['jobs'])}" for r in result["runs"])
        + f"; overrides: {' '.join(result['overrides']) or 'none'}."
        " Wall and CPU time cover preprocess + train + evaluate of one seed (CPU time: all"
        " threads of the run's process).",
        "",
        f"Published: {block['source']}",
        "",
        f"Protocol: same dataset, official split and metrics (test AUC, ACC at 0.5, the"
        f" best-validation-AUC checkpoint scored once on test). Differences: our network,"
        f" epochs, optimiser and augmentation are the recipe's (conf/experiment/{EXPERIMENT}.yaml),"
        " not the paper's ResNet training; the CIs are percentile bootstraps of the test set.",
    ]
    return lines


def _throughput_section(throughput: dict[str, Any]) -> list[str]:
    lines = [
        "## 3-D ResNet-18 throughput (volumes per second, 2 CPU threads)",
        "",
        "| input | batch | train vol/s | inference vol/s | CPU/wall (train) |",
        "|---|---|---|---|---|",
    ]
    for row in throughput["rows"]:
        lines.append(
            f"| {row['size']}^3 | {row['batch']} | {row['train_per_s']:.2f} | "
            f"{row['infer_per_s']:.2f} | {row['train_cpu_per_wall']:.2f} |"
        )
    lines += ["", throughput["note"]]
    return lines


def render(results: dict[str, Any]) -> str:
    """The Markdown of cnn3d.json: whichever of its sections have been measured."""
    lines = ["# MedMNIST 3D: meddx beside the published MedMNIST v2 rows", ""]
    if "accuracy" in results:
        lines += [*_accuracy_section(results["accuracy"]), ""]
    if "throughput" in results:
        lines += [*_throughput_section(results["throughput"]), ""]
    return "\n".join(lines)


def write(section: str, value: dict[str, Any], out: Path = OUT) -> str:
    """Replace one section of cnn3d.json (keeping the other) and rewrite cnn3d.md from it."""
    previous = out / "cnn3d.json"
    results = json.loads(previous.read_text()) if previous.is_file() else {}
    results[section] = value
    write_json(out / "cnn3d.json", results)
    markdown = render(results)
    write_text(out / "cnn3d.md", markdown)
    return markdown


def main() -> int:
    result = measure(sys.argv[1:], jobs=int(os.environ.get("JOBS", "1")))
    print(write("accuracy", result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
