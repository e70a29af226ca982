"""`make bench-rnn`: our MIT-BIH inter-patient recipe on the real data, one run per seed.

Runs the stages' `run()` functions exactly as `dvc repro` would with
`+experiment=mitbih_interpatient` (acquire_ecg -> preprocess_ecg -> train_rnn ->
evaluate_rnn), rooted in `runs/bench_rnn/` so the project's own outputs are untouched, and
tracked in the project's MLflow store under the experiment `bench-rnn`. Seeds come from
SEEDS (default "0 1 2"). Writes reports/benchmarks/mitbih.json (fractions, mean and sd over
seeds) and mitbih.md, a table of our row beside the published inter-patient results on DS2.
Extra arguments are Hydra overrides on top of the recipe (a variant), e.g.
`python benchmarks/bench_rnn.py 'data.ecg.channels=[deviation]'`; they are recorded with the
figures, as is each seed's validation balanced accuracy (DS1 records: what a choice between
variants may look at, DS2 being the test).
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from common import REPO, project

from meddx.io import write_json, write_text

OUT = REPO / "reports" / "benchmarks"
DATA_STAGES = ("acquire_ecg", "preprocess_ecg")
CLASSES = ("N", "S", "V", "F")
# /work/shared/reference/BENCHMARKS.md section 2, DS2 (%): acc, S se, S +P, V se, V +P.
PUBLISHED = [
    ("de Chazal 2004 (linear discriminants)", 83, 76, 38, 77, 82),
    ("Llamedo & Martinez 2011", 93, 77, 39, 81, 87),
    ("Mar et al. 2011", 89, 83, 33, 86, 75),
    ("Lin & Yang 2014", 93, 81, 31, 86, 73),
    ("Zhang et al. 2014", None, 79.1, 36.0, 85.5, 92.7),
    ("Garcia et al. 2017", 92.4, 62.0, 53.0, 87.3, 59.4),
    ("Mondejar-Guerra et al. 2019 (SVM ensemble)", 94.5, None, None, None, None),
]


def _stage(name: str) -> Any:
    return importlib.import_module(f"meddx.stages.{name}")


def one_seed(seed: int, work: Path, overrides: list[str]) -> dict[str, Any]:
    cfg = project(
        work, "+experiment=mitbih_interpatient", f"seed={seed}", *overrides, experiment="bench-rnn"
    )
    started = time.perf_counter()
    for name in DATA_STAGES:
        _stage(name).run(cfg)
    data_s = time.perf_counter() - started
    started = time.perf_counter()
    trained = _stage("train_rnn").run(cfg)
    result = _stage("evaluate_rnn").run(cfg)
    wall_s = time.perf_counter() - started
    row = {
        "seed": seed,
        "rnn": cfg.rnn.name,
        "acc": result["test_acc"],
        "val_balanced_acc": trained["best_val_balanced_acc"],
        "wall_s": wall_s,
        "data_s": data_s,
    }
    for name in CLASSES:
        figures = result["per_class"][name]
        row[name] = {"se": figures["sensitivity"], "ppv": figures["ppv"], "f1": figures["f1"]}
    print(json.dumps(row), flush=True)
    return row


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def summarise(rows: list[dict[str, Any]], overrides: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {"acc": _stats([r["acc"] for r in rows])}
    for name in CLASSES:
        summary[name] = {k: _stats([r[name][k] for r in rows]) for k in ("se", "ppv", "f1")}
    summary |= {
        "val_balanced_acc": _stats([r["val_balanced_acc"] for r in rows]),
        "overrides": overrides,
        "wall_s": _stats([r["wall_s"] for r in rows]),
        "seeds": [r["seed"] for r in rows],
        "rnn": rows[0]["rnn"],
        "runs": rows,
    }
    return summary


def markdown(summary: dict[str, Any]) -> str:
    def pct(stat: dict[str, float]) -> str:
        return f"{100 * stat['mean']:.1f} ± {100 * stat['sd']:.1f}"

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    lines = ["| Method | Acc | S Se / +P | V Se / +P |", "|---|---|---|---|"]
    for name, acc, s_se, s_ppv, v_se, v_ppv in PUBLISHED:
        lines.append(
            f"| {name} | {cell(acc)} | {cell(s_se)} / {cell(s_ppv)} | "
            f"{cell(v_se)} / {cell(v_ppv)} |"
        )
    s, v = summary["S"], summary["V"]
    lines.append(
        f"| **meddx {summary['rnn']}** (mean ± sd, seeds {summary['seeds']}) | "
        f"{pct(summary['acc'])} | {pct(s['se'])} / {pct(s['ppv'])} | "
        f"{pct(v['se'])} / {pct(v['ppv'])} |"
    )
    wall = summary["wall_s"]
    variant = " ".join(f"`{o}`" for o in summary["overrides"]) or "none"
    return (
        "# MIT-BIH inter-patient (DS2), %\n\n" + "\n".join(lines) + "\n\n"
        f"`+experiment=mitbih_interpatient`, overrides: {variant}. Validation (DS1 records) "
        f"balanced accuracy: {pct(summary['val_balanced_acc'])}.\n"
        f"Train + evaluate wall time per seed: {wall['mean']:.0f} ± {wall['sd']:.0f} s.\n"
    )


def main() -> None:
    seeds = [int(s) for s in os.environ.get("SEEDS", "0 1 2").split()]
    work = REPO / "runs" / "bench_rnn"
    work.mkdir(parents=True, exist_ok=True)
    overrides = sys.argv[1:]
    rows = [one_seed(seed, work, overrides) for seed in seeds]
    summary = summarise(rows, overrides)
    write_json(OUT / "mitbih.json", summary)
    write_text(OUT / "mitbih.md", markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
