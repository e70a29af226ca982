"""What the portable numeric profile costs: wall time under `portable` vs `native`.

Two figures, profiles alternating (native, portable) so that drift of the machine falls on
both: the whole offline pipeline (every dvc.yaml stage, as `make repro` runs it, one run per
profile) and one training epoch of `+experiment=pneumonia` on the mirror's PneumoniaMNIST
(one member).
Writes reports/benchmarks/numerics.{json,md}; target: portable / native <= 1.15 in wall time.
CPU seconds of the stage processes are recorded beside the wall time: on a shared machine the
wall time of one run picks up whatever else runs, the CPU time much less so. One epoch of
~20 s moves by about 10% from run to run on a quiet machine, more than the effect measured,
so the epoch is timed in EPOCH_ROUNDS (default 3) alternating rounds and their mean is the
figure; every round is kept in the JSON.

    python benchmarks/bench_numerics.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, mirror
from seed_spread import run_pipeline

from meddx.io import write_json, write_text
from meddx.numerics import cpu_model

PROFILES = ("native", "portable")
EPOCH = ("+experiment=pneumonia", "cnn.max_epochs=1", "cnn.ensemble=1", "hpo.n_trials=0")


def meddx(root: Path, stage: str, *overrides: str) -> None:
    command = [sys.executable, "-m", "meddx", stage, *overrides, f"paths.root={root}"]
    command.append(f"tracking.uri=sqlite:///{root / 'mlflow.db'}")
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def timed(action) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child processes) of `action`."""
    started, cpu = time.perf_counter(), os.times()
    action()
    after = os.times()
    child_cpu = (after.children_user - cpu.children_user) + (
        after.children_system - cpu.children_system
    )
    return time.perf_counter() - started, child_cpu


def main() -> int:
    data = f"paths.mirror={mirror('medmnist/pneumoniamnist.npz')}"
    seconds: dict[str, dict[str, float]] = {"offline pipeline": {}, "pneumonia epoch": {}}
    cpu: dict[str, dict[str, float]] = {"offline pipeline": {}, "pneumonia epoch": {}}
    with tempfile.TemporaryDirectory(prefix="meddx-numerics-") as scratch:
        images = Path(scratch, "pneumonia")
        images.mkdir()  # a project root must exist (paths.root is checked)
        for stage in ("acquire_images", "preprocess_images"):
            meddx(images, stage, *EPOCH, data)
        for profile in PROFILES:
            root = Path(scratch, profile)
            root.mkdir()
            seconds["offline pipeline"][profile], cpu["offline pipeline"][profile] = timed(
                lambda r=root, p=profile: run_pipeline(r, 42, f"trainer.numerics={p}")
            )
            print(profile, "offline pipeline", round(seconds["offline pipeline"][profile], 1))
        rounds: dict[str, list[tuple[float, float]]] = {p: [] for p in PROFILES}
        for _ in range(int(os.environ.get("EPOCH_ROUNDS", "3"))):
            for profile in PROFILES:
                rounds[profile].append(
                    timed(
                        lambda p=profile: meddx(
                            images, "train_cnn", *EPOCH, f"trainer.numerics={p}"
                        )
                    )
                )
                print(profile, "epoch", round(rounds[profile][-1][0], 1), flush=True)
        for profile, runs in rounds.items():
            seconds["pneumonia epoch"][profile] = statistics.fmean(w for w, _ in runs)
            cpu["pneumonia epoch"][profile] = statistics.fmean(c for _, c in runs)
    ratios = {k: v["portable"] / v["native"] for k, v in seconds.items()}
    cpu_ratios = {k: v["portable"] / v["native"] for k, v in cpu.items()}
    result = {
        "cpu": cpu_model(),
        "seconds": seconds,
        "ratio": ratios,
        "cpu_seconds": cpu,
        "cpu_ratio": cpu_ratios,
        "epoch_rounds_wall_s": {p: [w for w, _ in runs] for p, runs in rounds.items()},
        "load_average": os.getloadavg(),
        "target": 1.15,
    }
    write_json(REPO / "reports/benchmarks/numerics.json", result)
    rows = [
        f"| {name} | {v['native']:.1f} | {v['portable']:.1f} | {ratios[name]:.3f} | "
        f"{'met' if ratios[name] <= 1.15 else 'not met'} | {cpu_ratios[name]:.3f} |"
        for name, v in seconds.items()
    ]
    write_text(
        REPO / "reports/benchmarks/numerics.md",
        f"# Cost of the portable numeric profile\n\nCPU: {cpu_model()}; one run per profile, "
        f"alternating; load average at the end {os.getloadavg()[1]:.1f} (1 = one busy core). "
        "Offline pipeline: synthetic images and ECG (the offline default); "
        "epoch: PneumoniaMNIST (MedMNIST v2), one member, mean of alternating rounds "
        "(each round in numerics.json).\n\n"
        "| what | native s | portable s | ratio | target <= 1.15 | CPU-time ratio |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n",
    )
    print(ratios, cpu_ratios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
