"""Time acquire + preprocess of PneumoniaMNIST from the mirror, as `dvc repro` runs them.

Each stage runs as its own `python -m meddx <stage> --params <composed file>` process, as
dvc.yaml runs it, so the figure includes what every DVC stage pays at start-up (imports,
MLflow run). The MLflow store is created before
timing: that is a once-per-project cost. Target: <= 10 s. Writes `pneumoniamnist_s` into
reports/benchmarks/data.json, keeping the keys other benchmarks put there (e.g. mitbih_s).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, mirror
from data_report import record

TARGET_S = 10.0


def main() -> int:
    env = {
        **os.environ,
        "MEDDX_DATA_MIRROR": str(mirror("medmnist/pneumoniamnist.npz")),
        "MEDDX_CONF_DIR": str(REPO / "conf"),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        overrides = [
            "data/image=pneumoniamnist",
            f"paths.root={tmp}",
            f"tracking.uri=sqlite:///{tmp}/mlflow.db",
            "tracking.experiment=bench",
        ]
        from mlflow.tracking import MlflowClient

        MlflowClient(f"sqlite:///{tmp}/mlflow.db").search_experiments()  # create the store
        params = Path(tmp) / "params.yaml"  # stages read a composed file, as under DVC
        subprocess.run(
            [sys.executable, "-m", "meddx", "compose", *overrides, "--output", str(params)],
            env=env,
            check=True,
        )
        timings, cpu = {}, {}
        for stage in ("acquire_images", "preprocess_images"):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "meddx", stage, "--params", str(params)],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            timings[stage] = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[stage] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    total = sum(timings.values())
    # CPU seconds say how much of the wall time is contention on a shared machine.
    for stage, seconds in timings.items():
        print(f"{stage:<18} {seconds:6.2f} s wall, {cpu[stage]:6.2f} s CPU")
    print(
        f"{'pneumoniamnist':<18} {total:6.2f} s wall, {sum(cpu.values()):6.2f} s CPU "
        f"(target <= {TARGET_S:.0f} s), load average {os.getloadavg()[0]:.1f}"
    )
    record("pneumoniamnist_s", total)
    return 0 if total <= TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
