"""Volumes per second of the 3-D ResNet-18 (MedMNIST v2 "ResNet-18 + 3D") at 28^3 and 64^3.

The network is `cnn=resnet18` on a volume dataset at its full widths (meddx.models.resnet,
33 M parameters); the inputs are synthetic tensors of the datasets' shape (N, 1, S, S, S):
throughput depends on shapes, not on voxel values. Training is forward, cross-entropy,
backward and an Adam step; inference is a forward pass without gradients in eval mode. Threads:
2 (trainer.num_threads). STEPS timed steps (default 1) after one warm-up step. Besides volumes
per wall second it records volumes per CPU second and the load average, so a figure measured on
a busy machine can be read for a quiet one. Writes the `throughput` section of
reports/benchmarks/cnn3d.{json,md} (bench_cnn3d.write).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from bench_cnn3d import write

from meddx.models.resnet import resnet18

SHAPES = ((28, 4), (64, 1))  # (side, batch): what a busy 2-core CPU measures in minutes


def _timed(step: Callable[[], None], steps: int) -> tuple[float, float]:
    """(wall s, CPU s) of `steps` calls after one untimed warm-up call."""
    step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(side: int, batch: int, steps: int, net: torch.nn.Module | None = None) -> dict:
    """Training and inference volumes per second of `net` (the 3-D ResNet-18) on side^3 inputs."""
    torch.manual_seed(0)
    net = net if net is not None else resnet18(1, 2, side, spatial_dims=3)
    volumes = torch.randn(batch, 1, side, side, side)
    labels = torch.randint(0, 2, (batch,))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def train_step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(volumes), labels).backward()
        optimizer.step()

    def infer_step() -> None:
        with torch.no_grad():
            net(volumes)

    net.train()
    train_wall, train_cpu = _timed(train_step, steps)
    net.eval()
    infer_wall, infer_cpu = _timed(infer_step, steps)
    done = batch * steps
    return {
        "size": side,
        "batch": batch,
        "steps": steps,
        "train_per_s": done / train_wall,
        "train_per_cpu_s": done / train_cpu,
        "train_cpu_per_wall": train_cpu / train_wall,
        "infer_per_s": done / infer_wall,
        "infer_per_cpu_s": done / infer_cpu,
    }


def main() -> int:
    torch.set_num_threads(2)
    steps = int(os.environ.get("STEPS", "1"))
    load_before = os.getloadavg()
    rows = [measure(side, batch, steps) for side, batch in SHAPES]
    result: dict[str, Any] = {
        "network": "meddx.models.resnet.resnet18(spatial_dims=3), full widths 64-128-256-512",
        "threads": 2,
        "rows": rows,
        "load_before": list(load_before),
        "load_after": list(os.getloadavg()),
        "cpu": torch.backends.cpu.get_cpu_capability(),
    }
    result["note"] = (
        "Synthetic inputs of the datasets' shape (N, 1, S, S, S); training = forward, "
        "cross-entropy, backward, Adam step; inference = no-grad forward in eval mode. "
        f"{steps} timed steps after a warm-up, 2 threads, torch {torch.__version__}, native "
        f"kernels ({result['cpu']}). Load average (1 min) {load_before[0]:.1f} before, "
        f"{result['load_after'][0]:.1f} after, on a 2-core machine shared with other jobs: "
        "CPU/wall < 2 means the run got less than two cores, and vol/s scales up by about "
        "2 / (CPU/wall) on a quiet machine. Per CPU second: "
        + ", ".join(
            f"{r['size']}^3 train {r['train_per_cpu_s']:.2f}, inference {r['infer_per_cpu_s']:.2f}"
            for r in rows
        )
        + "."
    )
    print(write("throughput", result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
