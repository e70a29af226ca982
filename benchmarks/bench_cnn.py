"""`make bench-cnn`: our recipes on PneumoniaMNIST and BreastMNIST, one run per seed.

Each run is the pipeline's own path (preprocess_images -> train_cnn -> evaluate, MLflow on)
in a fresh project folder, from the MedMNIST files in the data mirror. Seeds come from
SEEDS (default "0 1 2"); DATASETS limits the subsets (default both) and replaces only their
entries in an existing reports/benchmarks/medmnist.json. Writes that file and a Markdown
table (medmnist.md) beside the published MedMNIST v2 rows. Extra arguments are Hydra
overrides on top of the recipe (a variant, e.g. `cnn.loss.class_weights=sqrt`), recorded with
the figures beside each run's validation AUC and ACC, what a choice between variants may
look at.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, project, seeds, stage_medmnist

from meddx.io import write_json, write_text
from meddx.stages import evaluate, preprocess_images, train_cnn

EXPERIMENTS = {"pneumoniamnist": "pneumonia", "breastmnist": "breast"}
# MedMNIST v2 (Yang et al. 2023), test AUC / ACC, from /work/shared/reference/BENCHMARKS.md.
PUBLISHED = {
    "ResNet-18 (28)": {"pneumoniamnist": (0.944, 0.854), "breastmnist": (0.901, 0.863)},
    "ResNet-18 (224)": {"pneumoniamnist": (0.956, 0.864), "breastmnist": (0.891, 0.833)},
    "ResNet-50 (224)": {"pneumoniamnist": (0.962, 0.884), "breastmnist": (0.866, 0.842)},
    "AutoKeras": {"pneumoniamnist": (0.947, 0.878), "breastmnist": (0.871, 0.831)},
    "Google AutoML Vision": {"pneumoniamnist": (0.991, 0.946), "breastmnist": (0.919, 0.861)},
}
# The project's targets (issue 4), test AUC / ACC as a mean over seeds.
TARGETS = {"pneumoniamnist": (0.96, 0.88), "breastmnist": (0.92, 0.87)}


def one_run(dataset: str, seed: int, overrides: list[str], experiment: str) -> dict[str, float]:
    """One seed of `+experiment=<experiment>` on `dataset`, from the mirror, MLflow on."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{dataset}-") as tmp:
        cfg = project(
            Path(tmp),
            f"+experiment={experiment}",
            f"data/image={dataset}",
            f"seed={seed}",
            *overrides,
        )
        stage_medmnist(cfg)
        started, cpu_started = time.perf_counter(), time.process_time()
        preprocess_images.run(cfg)
        trained = train_cnn.run(cfg)
        tested = evaluate.run(cfg)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "seed": seed,
        **{
            key + end: tested[key + end]
            for key in ("test_acc", "test_auc", "test_balanced_acc")
            for end in ("", "_ci_low", "_ci_high")
        },
        "wall_s": wall,
        "cpu_s": cpu,  # every thread of this process: what the run costs whatever the load
        "best_epoch": trained.get("best_epoch"),  # an ensemble has one per member
        "best_val_auc": trained["best_val_auc"],
        "best_val_acc": trained.get("best_val_acc"),
    }


def stats(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def target_line(name: str, result: dict) -> str:
    checks = []
    for metric, goal in zip(("test_auc", "test_acc"), TARGETS[name], strict=True):
        mean = result[metric]["mean"]
        verdict = f">= {goal} met" if mean >= goal else f"< {goal} NOT met"
        checks.append(f"{metric} {mean:.4f} {verdict}")
    return f"{name} " + ", ".join(checks)


def table(results: dict[str, dict]) -> str:
    names = list(results)
    lines = [
        "# MedMNIST v2 test AUC / ACC: meddx recipes against the published rows",
        "",
        "| Method | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for method, row in PUBLISHED.items():
        cells = [f"{row[n][0]:.3f} / {row[n][1]:.3f}" for n in names]
        lines.append(f"| {method} (published) | " + " | ".join(cells) + " |")
    cells = [
        f"**{r['test_auc']['mean']:.3f}** ± {r['test_auc']['sd']:.3f} / "
        f"**{r['test_acc']['mean']:.3f}** ± {r['test_acc']['sd']:.3f}"
        for r in results.values()
    ]
    lines.append(
        "| meddx `+experiment="
        + " / +experiment=".join(EXPERIMENTS[n] for n in names)
        + "` (measured) | "
        + " | ".join(cells)
        + " |"
    )
    lines += [
        "",
        "Measured: mean ± sd over seeds "
        + ", ".join(f"{n}: {results[n]['seeds']}" for n in names)
        + "; wall time per run (preprocess + train + evaluate, 2 CPU threads): "
        + ", ".join(f"{n} {results[n]['wall_s']['mean']:.0f} s" for n in names)
        + "; overrides on the recipes: "
        + ", ".join(f"{n}: {' '.join(results[n].get('overrides', [])) or 'none'}" for n in names)
        + ".",
        "Published: Yang et al., MedMNIST v2, Scientific Data 10:41 (2023), 28 px test split.",
        "",
        # Four decimals: a table rounded to three can show a target as reached that is not.
        "Targets (mean over the seeds): "
        + "; ".join(target_line(n, results[n]) for n in names if n in TARGETS)
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    datasets = os.environ.get("DATASETS", " ".join(EXPERIMENTS)).split()
    overrides = sys.argv[1:]
    results: dict[str, dict] = {}
    for dataset in datasets:
        runs = []
        for seed in seeds():
            run = one_run(dataset, seed, overrides, EXPERIMENTS[dataset])
            print(json.dumps({"dataset": dataset, **run}), flush=True)
            runs.append(run)
        results[dataset] = {
            "test_acc": stats([r["test_acc"] for r in runs]),
            "test_auc": stats([r["test_auc"] for r in runs]),
            "wall_s": stats([r["wall_s"] for r in runs]),
            "seeds": [r["seed"] for r in runs],
            "experiment": EXPERIMENTS[dataset],
            "overrides": overrides,
            "runs": runs,
        }
    out = REPO / "reports" / "benchmarks"
    previous = out / "medmnist.json"
    if previous.is_file():  # DATASETS=<one> refreshes that entry and keeps the others
        results = json.loads(previous.read_text()) | results
    write_json(out / "medmnist.json", results)
    markdown = table(results)
    write_text(out / "medmnist.md", markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
