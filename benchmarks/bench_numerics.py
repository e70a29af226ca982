"""What the portable numeric profile costs: wall time under `portable` vs `native`.

Two figures, one run per profile, alternating (native, portable) so that drift of the machine
falls on both: the whole offline pipeline (every dvc.yaml stage, as `make repro` runs it) and
one training epoch of `+experiment=pneumonia` on the mirror's PneumoniaMNIST (one member).
Writes reports/benchmarks/numerics.{json,md}; target: portable / native <= 1.15.

    python benchmarks/bench_numerics.py
"""

from __future__ import annotations

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


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    data = f"paths.mirror={mirror('medmnist/pneumoniamnist.npz')}"
    seconds: dict[str, dict[str, float]] = {"offline pipeline": {}, "pneumonia epoch": {}}
    with tempfile.TemporaryDirectory(prefix="meddx-numerics-") as scratch:
        images = Path(scratch, "pneumonia")
        for stage in ("acquire_images", "preprocess_images"):
            meddx(images, stage, *EPOCH, data)
        for profile in PROFILES:
            root = Path(scratch, profile)
            root.mkdir()
            seconds["offline pipeline"][profile] = timed(
                lambda r=root, p=profile: run_pipeline(r, 42, f"trainer.numerics={p}")
            )
            seconds["pneumonia epoch"][profile] = timed(
                lambda p=profile: meddx(images, "train_cnn", *EPOCH, f"trainer.numerics={p}")
            )
            print(profile, {k: round(v[profile], 1) for k, v in seconds.items()}, flush=True)
    ratios = {k: v["portable"] / v["native"] for k, v in seconds.items()}
    result = {"cpu": cpu_model(), "seconds": seconds, "ratio": ratios, "target": 1.15}
    write_json(REPO / "reports/benchmarks/numerics.json", result)
    rows = [
        f"| {name} | {v['native']:.1f} | {v['portable']:.1f} | {ratios[name]:.3f} | "
        f"{'met' if ratios[name] <= 1.15 else 'not met'} |"
        for name, v in seconds.items()
    ]
    write_text(
        REPO / "reports/benchmarks/numerics.md",
        f"# Cost of the portable numeric profile\n\nCPU: {cpu_model()}; one run per profile, "
        "alternating. Offline pipeline: synthetic images and ECG (the offline default); "
        "epoch: PneumoniaMNIST (MedMNIST v2), one member.\n\n"
        "| what | native s | portable s | ratio | target <= 1.15 |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n",
    )
    print(ratios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
