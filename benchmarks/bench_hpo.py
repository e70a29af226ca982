"""Time the tune stage on PneumoniaMNIST from the mirror: pruning, and parallel workers.

- pruned vs unpruned: the same TPE study (same seed, space, budget) with a pruner (`--pruner`,
  successive halving with Optuna's defaults by default: rungs after 2 and 5 epochs, a quarter
  of the trials promoted at each, where the median pruner only stops the worse half after
  its warm-up) and without. Target: pruned at least 2x faster, best validation AUC within 0.005.
- workers_1 vs workers_2: the same unpruned study run by one worker process and by two
  sharing one sqlite storage, each worker limited to 1 thread. Target: two take <= 0.6x.

Each scenario runs the real stages (acquire_images, preprocess_images once; tune per
scenario, in its own project root so studies never mix) and writes
reports/benchmarks/hpo.json. Long with the defaults (12-epoch trials: about 45 min on 2
cores); `--trials 2 --worker-trials 2 --epochs 1 --subset 256` checks that it works in a few
minutes. `--only pruned` reruns some scenarios and keeps the others' figures from an existing
report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "reports" / "benchmarks" / "hpo.json"
SCENARIOS = ["pruned", "unpruned", "workers_1", "workers_2"]
# Settings per pruner: Optuna's defaults, except the median pruner's warm-up.
PRUNER_SETTINGS = {
    "median": "{n_startup_trials: 5, n_warmup_steps: 2}",
    "successive_halving": "{}",
    "hyperband": "{}",
}


def mirror() -> Path:
    configured = os.environ.get("MEDDX_DATA_MIRROR")
    path = Path(configured) if configured else REPO.parent / "shared" / "data"
    if not (path / "medmnist" / "pneumoniamnist.npz").is_file():
        sys.exit(f"bench_hpo: no PneumoniaMNIST in the mirror {path}; set MEDDX_DATA_MIRROR")
    return path.resolve()


def _prepare(root: Path, common: list[str], subset: int | None) -> None:
    """Acquire and preprocess once; optionally keep only the first `subset` train/val images."""
    from meddx.config import compose
    from meddx.data.npz import load_npz, save_npz
    from meddx.paths import Layout
    from meddx.stages import acquire_images, preprocess_images

    cfg = compose([f"paths.root={root}", *common])
    acquire_images.run(cfg)
    preprocess_images.run(cfg)
    if subset:
        path = Layout.of(cfg).processed_images
        arrays = load_npz(path)
        for split in ("train", "val"):
            for kind in ("images", "labels"):
                arrays[f"{split}_{kind}"] = arrays[f"{split}_{kind}"][:subset]
        save_npz(path, arrays, compress=False)


def _scenario(
    name: str, prepared: Path, work: Path, common: list[str], overrides: list[str]
) -> dict[str, float]:
    from meddx.config import compose
    from meddx.stages import tune

    root = work / name
    shutil.copytree(prepared / "data", root / "data")
    cfg = compose([f"paths.root={root}", *common, f"hpo.study_name=bench-{name}", *overrides])
    start = time.perf_counter()
    metrics = tune.run(cfg)
    wall = time.perf_counter() - start
    result = {
        "wall_s": round(wall, 2),
        "best_value": round(metrics["best_value"], 5),
        "n_trials": metrics["n_trials"],
        "n_pruned": metrics["n_pruned"],
    }
    print(f"{name:<10} {result}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials of the pruning studies")
    parser.add_argument("--worker-trials", type=int, default=8, help="trials of the worker studies")
    parser.add_argument("--epochs", type=int, default=12, help="max epochs of one trial")
    parser.add_argument("--subset", type=int, default=None, help="train/val images kept (smoke)")
    parser.add_argument("--pruner", default="successive_halving", help="hpo.pruner of 'pruned'")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=SCENARIOS)
    parser.add_argument("--output", type=Path, default=REPORT)
    args = parser.parse_args()
    os.environ["MEDDX_DATA_MIRROR"] = str(mirror())
    os.environ.setdefault("MEDDX_CONF_DIR", str(REPO / "conf"))
    from meddx.io import write_json

    with tempfile.TemporaryDirectory(prefix="bench_hpo_") as tmp:
        work = Path(tmp)
        common = [
            "data/image=pneumoniamnist",
            f"tracking.uri=sqlite:///{work}/mlflow.db",
            "tracking.experiment=bench-hpo",
            "hpo.sampler=tpe",
            f"hpo.trial_overrides=['cnn.max_epochs={args.epochs}']",
            f"hpo.pruner_kwargs.{args.pruner}={PRUNER_SETTINGS[args.pruner]}",
        ]
        _prepare(work / "prepared", common, args.subset)
        # Lightning's import is paid here, not by whichever study runs first
        import meddx.hpo.pruning
        import meddx.training.images  # noqa: F401

        prepared = work / "prepared"
        pruning = [f"hpo.n_trials={args.trials}", "hpo.n_workers=1"]
        workers = [f"hpo.n_trials={args.worker_trials}", "hpo.pruner=none", "trainer.num_threads=1"]
        overrides = {
            "pruned": [*pruning, f"hpo.pruner={args.pruner}"],
            "unpruned": [*pruning, "hpo.pruner=none"],
            "workers_1": [*workers, "hpo.n_workers=1"],
            "workers_2": [*workers, "hpo.n_workers=2"],
        }
        report = json.loads(args.output.read_text()) if args.output.is_file() else {}
        for name in args.only:
            report[name] = _scenario(name, prepared, work, common, overrides[name])
            if name == "pruned":
                report[name]["pruner"] = args.pruner
            report[name]["max_epochs"] = args.epochs
    for key in ("workers_1", "workers_2"):
        if key in report:
            report[key] = {k: report[key][k] for k in ("wall_s", "n_trials")}
    write_json(args.output, report)
    missing = [name for name in SCENARIOS if name not in report]
    if missing:
        print(f"{args.output} lacks {missing}: run them (--only) for the verdict")
        return 1
    speedup = report["unpruned"]["wall_s"] / report["pruned"]["wall_s"]
    gap = report["unpruned"]["best_value"] - report["pruned"]["best_value"]
    ratio = report["workers_2"]["wall_s"] / report["workers_1"]["wall_s"]
    print(
        f"pruning: {speedup:.2f}x faster (target >= 2), best AUC gap {gap:+.4f} "
        f"(target <= 0.005); 2 workers: {ratio:.2f}x the wall time of 1 (target <= 0.6); "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    return 0 if speedup >= 2 and gap <= 0.005 and ratio <= 0.6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
