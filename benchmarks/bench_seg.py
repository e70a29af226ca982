"""`make bench-seg`: HC18 (2-D UNet) and MSD Hippocampus (3-D UNet) through the stages.

Each dataset runs acquire_images -> preprocess_images once (the split has its own seed, so
every training seed sees the same split), then train_cnn -> evaluate per seed (SEEDS, default
"0 1 2"; DATASETS picks the datasets), rooted in runs/bench_seg/<dataset> and tracked in the
project's MLflow store under `bench-seg`. The recipe (RECIPES) was fixed before the test split
was scored; the best epoch is the best validation Dice. On the test split the exported model's
masks are measured: head circumference against the annotated HC (HC18) and structure volumes
against the labels (hippocampus), with Bland-Altman plots. Wall and CPU time and the load
average are recorded with every run: the machine is shared. Writes
reports/benchmarks/segmentation.{json,md}; the published rows (src/meddx/reference/
published.yaml) are listed apart, with the protocol difference, never as our competitors.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, mirror, project, seeds

from meddx.data.npz import load_npz
from meddx.evaluation import measurements
from meddx.evaluation.report.published import load_published
from meddx.io import write_json, write_text
from meddx.paths import Layout

OUT = REPO / "reports" / "benchmarks"
PLOTS = OUT / "segmentation"
WORK = REPO / "runs" / "bench_seg"
# A first, small recipe per dataset (Hydra overrides on top of conf/), not tuned on anything
# yet: sized for a quiet 2-core machine (a 5-level 16-channel UNet measured 75 ms/sample for
# HC18 at 176x256 and 181 ms/volume at 48x64x48 there). Under load ~20 (~0.1 core per
# training) one hippocampus epoch took ~15 min wall, so give it a quiet machine.
RECIPES: dict[str, list[str]] = {
    "hc18": [
        "cnn=unet",
        "cnn.net.channels=[8,16,32,64]",
        "cnn.net.strides=[2,2,2]",
        "cnn.max_epochs=3",
        "cnn.batch_size=16",
    ],
    "msd_hippocampus": [
        "cnn=unet",
        "cnn.net.channels=[8,16,32,64]",
        "cnn.net.strides=[2,2,2]",
        "cnn.max_epochs=6",
        "cnn.batch_size=8",
    ],
}
TARGETS = {"hc18": {"dice": 0.97, "hc_mad_mm": 2.5}, "msd_hippocampus": {"mean_dice": 0.87}}


def _cfg(dataset: str, seed: int) -> Any:
    root = WORK / dataset
    root.mkdir(parents=True, exist_ok=True)
    return project(
        root, f"data/image={dataset}", *RECIPES[dataset], f"seed={seed}", experiment="bench-seg"
    )


def _stage(name: str) -> Any:
    return importlib.import_module(f"meddx.stages.{name}")


def _clock() -> dict[str, float]:
    return {"wall": time.perf_counter(), "cpu": time.process_time(), "load": os.getloadavg()[0]}


def _since(start: dict[str, float]) -> dict[str, float]:
    now = _clock()
    return {
        "wall_s": now["wall"] - start["wall"],
        "cpu_s": now["cpu"] - start["cpu"],
        "load_start": start["load"],
        "load_end": now["load"],
    }


def predicted_test_masks(cfg: Any) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    """The exported model's test masks, the processed test arrays and the class names."""
    import torch

    from meddx.models import export
    from meddx.models.segment import probabilities

    layout = Layout.of(cfg)
    torch.set_num_threads(cfg.trainer.num_threads)
    net, info = export.load(layout.model_dir("cnn") / "model.pt")
    arrays = load_npz(layout.processed_images)
    test = {key.removeprefix("test_"): v for key, v in arrays.items() if key.startswith("test_")}
    masks = probabilities(net, test["images"]).argmax(axis=1).astype(np.uint8)
    return masks, test, list(info["class_names"])


def measure(dataset: str, cfg: Any, seed: int) -> dict[str, Any]:
    """Clinical measurements of the test masks (mm), and a Bland-Altman plot per quantity."""
    masks, test, names = predicted_test_masks(cfg)
    if dataset == "hc18":
        stats, measured = measurements.head_circumference_agreement(
            masks, test["spacing"], test["hc_mm"]
        )
        floor, _ = measurements.head_circumference_agreement(
            test["labels"], test["spacing"], test["hc_mm"]
        )
        measurements.bland_altman(
            PLOTS / f"hc18_hc_seed{seed}.png", measured, test["hc_mm"], "HC", "mm"
        )
        return {"hc": stats, "hc_from_reference_masks": floor}
    stats, volumes = measurements.volume_agreement(masks, test["labels"], test["spacing"], names)
    for name, pair in volumes.items():
        measurements.bland_altman(
            PLOTS / f"{dataset}_{name}_volume_seed{seed}.png",
            pair[:, 0],
            pair[:, 1],
            f"{name} volume",
            "mm^3",
        )
    return {"volume": stats}


def one_run(dataset: str, seed: int) -> dict[str, Any]:
    cfg = _cfg(dataset, seed)
    start = _clock()
    trained = _stage("train_cnn").run(cfg)
    train = _since(start)
    scored = _stage("evaluate").run(cfg)
    row = {
        "dataset": dataset,
        "seed": seed,
        "train": train,
        "best": {k: v for k, v in trained.items() if k.startswith("best")},
        "test": scored,
        "measurements": measure(dataset, cfg, seed),
    }
    print(json.dumps(row, default=float), flush=True)
    return row


def prepare(dataset: str) -> dict[str, Any]:
    """acquire_images + preprocess_images once per dataset (seed-independent split)."""
    mirror(dataset)
    cfg = _cfg(dataset, 0)
    start = _clock()
    acquired = _stage("acquire_images").run(cfg)
    _stage("preprocess_images").run(cfg)
    return {**_since(start), "split_rule": acquired.get("data.split_rule")}


def _stats(values: list[float]) -> dict[str, float]:
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if not finite:
        return {"mean": math.nan, "sd": math.nan, "n": 0}
    sd = statistics.stdev(finite) if len(finite) > 1 else math.nan
    return {"mean": statistics.fmean(finite), "sd": sd, "n": len(finite)}


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Dotted keys of the numbers in a nested dict."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def summarise(dataset: str, rows: list[dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
    """Mean and sd over seeds of every figure the runs have in common."""
    flats = [_flat({k: r[k] for k in ("test", "measurements", "train", "best")}) for r in rows]
    common = sorted(set.intersection(*(set(f) for f in flats)))
    published = load_published()[dataset]
    return {
        "dataset": dataset,
        "recipe": RECIPES[dataset],
        "seeds": [r["seed"] for r in rows],
        "data": data,
        "targets": TARGETS[dataset],
        "figures": {key: _stats([f[key] for f in flats]) for key in common},
        "published": {
            "rows": published["rows"],
            "metrics": published["metrics"],
            "source": published["source"],
            "protocol": published["protocol"],
        },
        "runs": rows,
    }


def _cell(stat: dict[str, float] | None, digits: int = 3) -> str:
    if not stat or stat["n"] == 0:
        return "-"
    sd = "" if math.isnan(stat["sd"]) else f" ± {stat['sd']:.{digits}f}"
    return f"{stat['mean']:.{digits}f}{sd}"


# The figures of the markdown table: (label, dotted key in `figures`, digits).
SHOWN = {
    "hc18": [
        ("validation Dice (best epoch: the only choice made)", "best.best_val_dice", 4),
        ("Dice (head)", "test.test_dice", 4),
        ("HD95 (mm)", "test.test_hd95_mm", 2),
        ("MSD (mm)", "test.test_msd_mm", 2),
        ("HC MAD (mm)", "measurements.hc.mad", 2),
        ("HC mean difference (mm)", "measurements.hc.mean_difference", 2),
        ("HC limits of agreement low (mm)", "measurements.hc.loa_low", 2),
        ("HC limits of agreement high (mm)", "measurements.hc.loa_high", 2),
        (
            "HC MAD of the resized reference masks (mm)",
            "measurements.hc_from_reference_masks.mad",
            2,
        ),
    ],
    "msd_hippocampus": [
        ("validation Dice (best epoch: the only choice made)", "best.best_val_dice", 4),
        ("Dice mean of the two structures", "test.test_dice", 4),
        ("Dice anterior", "test.per_class.anterior.dice", 4),
        ("Dice posterior", "test.per_class.posterior.dice", 4),
        ("HD95 anterior (mm)", "test.per_class.anterior.hd95_mm", 2),
        ("HD95 posterior (mm)", "test.per_class.posterior.hd95_mm", 2),
        ("HD95 (mm)", "test.test_hd95_mm", 2),
        ("MSD (mm)", "test.test_msd_mm", 2),
        ("anterior volume MAD (mm^3)", "measurements.volume.anterior.mad", 0),
        (
            "anterior volume mean difference (mm^3)",
            "measurements.volume.anterior.mean_difference",
            0,
        ),
        ("posterior volume MAD (mm^3)", "measurements.volume.posterior.mad", 0),
        (
            "posterior volume mean difference (mm^3)",
            "measurements.volume.posterior.mean_difference",
            0,
        ),
    ],
}


def markdown(summaries: list[dict[str, Any]]) -> str:
    parts = ["# Segmentation benchmarks (measured on our own test splits)\n"]
    for s in summaries:
        ds, figures = s["dataset"], s["figures"]
        parts.append(f"## {ds}\n")
        parts.append(
            f"Recipe: `{' '.join(s['recipe'])}`; seeds {s['seeds']} ({len(s['seeds'])} run(s); "
            f"mean ± sd over seeds where more than one). Split: {s['data']['split_rule']}.\n"
        )
        rows = ["| figure (test split) | meddx |", "|---|---|"]
        rows += [
            f"| {label} | {_cell(figures.get(key), digits)} |"
            for label, key, digits in SHOWN[ds]
            if key in figures
        ]
        parts.append("\n".join(rows) + "\n")
        timing = [
            ("training wall (s)", "train.wall_s"),
            ("training CPU (s, this process)", "train.cpu_s"),
            ("load average at start", "train.load_start"),
            ("load average at end", "train.load_end"),
        ]
        parts.append(
            "Timing (2 cores shared with other jobs): "
            + "; ".join(f"{label} {_cell(figures.get(key), 1)}" for label, key in timing)
            + f". Targets: {s['targets']}.\n"
        )
        pub = s["published"]
        labels = list(pub["metrics"].values())
        table = ["| published (THEIR hidden test set) | " + " | ".join(labels) + " |"]
        table.append("|---" * (len(labels) + 1) + "|")
        for method, values in pub["rows"].items():
            cells = ["-" if v is None else f"{v:g}" for v in values[ds]]
            table.append(f"| {method} | " + " | ".join(cells) + " |")
        parts.append(
            "Published figures, for orientation only (not the same test set, so not a "
            "comparison):\n\n" + "\n".join(table) + "\n\n"
            f"Protocol: {pub['protocol']}\n\nSource: {pub['source']}\n"
        )
    return "\n".join(parts)


def _resumed(path: Path, compute: Any) -> dict[str, Any]:
    """The JSON at `path` if an earlier (killed) bench wrote it, else `compute()`, saved there."""
    if path.is_file():
        return json.loads(path.read_text())
    result = json.loads(json.dumps(compute(), default=float))
    write_json(path, result)
    return result


def main() -> None:
    """Each finished step is kept under runs/bench_seg, so a killed bench resumes where it
    stopped (delete runs/bench_seg to start over, e.g. after changing a recipe)."""
    datasets = os.environ.get("DATASETS", "hc18 msd_hippocampus").split()
    summaries = []
    for dataset in datasets:
        done = WORK / dataset / "bench"
        data = _resumed(done / "data.json", lambda d=dataset: prepare(d))
        rows = [
            _resumed(done / f"seed{seed}.json", lambda d=dataset, s=seed: one_run(d, s))
            for seed in seeds()
        ]
        summaries.append(summarise(dataset, rows, data))
    payload = {s["dataset"]: s for s in summaries}
    write_json(OUT / "segmentation.json", payload)
    write_text(OUT / "segmentation.md", markdown(summaries))
    print(markdown(summaries))


if __name__ == "__main__":
    main()
