"""`python benchmarks/bench_serve.py` (`make bench-serve`): how fast the registered image model
answers, served by the real `mlflow models serve`, and how many images `meddx predict` takes
per second, on this machine's 2 cores.

A ConvNet (conf/cnn/convnet.yaml, 1 epoch: speed does not depend on the weights) is trained,
evaluated and registered on PneumoniaMNIST (28 px, from the data mirror) in a temporary project
and store. Serving: `mlflow models serve -m models:/meddx-cnn-pneumoniamnist@best --env-manager
local` (one worker) on a loopback port; after WARMUP requests, REQUESTS requests of one raw test
image each (JSON `inputs`), one after another; latency per request as the client sees it.
Predict: `predict` on IMAGES test images written as PNG files, the whole command in-process
(model lookup and download included; MONAI and MLflow are already imported by the stages run
before it), and per image beyond a one-file run. Writes
reports/benchmarks/serve.{json,md} with the load average before and after.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, mirror

sys.path.insert(0, str(REPO / "tests"))
from image_files import raw_test_images, write_png
from meddx.config import compose
from meddx.io import write_json, write_text
from meddx.stages import acquire_images, evaluate, predict, preprocess_images, train_cnn
from servers import model_server
from test_serve import invoke

OUT = REPO / "reports" / "benchmarks"
DATASET = "PneumoniaMNIST (28 px), test split"
MODEL = "models:/meddx-cnn-pneumoniamnist@best"
WARMUP, REQUESTS, IMAGES = 5, 200, 300


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def trained_project(root: Path) -> Any:
    cfg = compose(
        [
            f"paths.root={root}",
            f"paths.mirror={mirror('medmnist/pneumoniamnist.npz')}",
            f"tracking.uri=sqlite:///{root / 'mlflow.db'}",
            "tracking.experiment=bench-serve",
            "data/image=pneumoniamnist",
            "cnn=convnet",
            "cnn.max_epochs=1",
            "evaluate.bootstrap=0",
        ],
        conf_dir=REPO / "conf",
    )
    for stage in (acquire_images, preprocess_images, train_cnn, evaluate):
        stage.run(cfg)
    return cfg


def serving(cfg: Any, images: np.ndarray, logs: Path) -> dict[str, float]:
    with model_server(MODEL, cfg.tracking.uri, logs) as url:
        for image in images[:WARMUP]:
            invoke(url, image[None])
        latencies = []
        for i in range(REQUESTS):
            started = time.perf_counter()
            invoke(url, images[i % len(images)][None])
            latencies.append((time.perf_counter() - started) * 1000)
    return {
        "requests": REQUESTS,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "mean_ms": float(np.mean(latencies)),
    }


def predicting(cfg: Any, images: np.ndarray, folder: Path) -> dict[str, float]:
    for i, image in enumerate(images[:IMAGES]):
        write_png(folder / "in" / f"case{i:04d}.png", image)
    first = folder / "first"
    write_png(first / "case.png", images[0])
    run = compose(
        [
            f"paths.root={cfg.paths.root}",
            f"tracking.uri={cfg.tracking.uri}",
            f"predict.model={MODEL}",
        ],
        conf_dir=REPO / "conf",
    )
    timings = {}
    for name, source in (("one", first), ("all", folder / "in")):
        run.predict.input, run.predict.output = str(source), str(folder / f"out-{name}")
        started = time.perf_counter()
        predict.run(run)
        timings[name] = time.perf_counter() - started
    per_image = (timings["all"] - timings["one"]) / (IMAGES - 1)
    return {
        "images": IMAGES,
        "wall_s": timings["all"],
        "images_per_s": IMAGES / timings["all"],
        "images_per_s_after_start": 1 / per_image,
        "start_s": timings["one"],
    }


def markdown(summary: dict[str, Any]) -> str:
    s, p = summary["serving"], summary["predict"]
    return "\n".join(
        [
            f"# Serving and predict speed on {summary['dataset']}",
            "",
            f"Model: {summary['model']} ({summary['network']}); {summary['cores']} cores; load "
            f"average (1 min) {summary['load_before'][0]:.2f} before, "
            f"{summary['load_after'][0]:.2f} after.",
            "",
            "| what | figure |",
            "|---|---|",
            f"| `mlflow models serve`, one image per request, p50 | {s['p50_ms']:.1f} ms |",
            f"| `mlflow models serve`, one image per request, p95 | {s['p95_ms']:.1f} ms |",
            f"| `meddx predict`, {p['images']} PNG files, whole command | "
            f"{p['images_per_s']:.1f} images/s ({p['wall_s']:.1f} s) |",
            f"| `meddx predict`, per image after a one-file run ({p['start_s']:.1f} s: model "
            "lookup and load, imports already paid in this process) | "
            f"{p['images_per_s_after_start']:.1f} images/s |",
            "",
            f"{s['requests']} sequential requests after {WARMUP} warm-up requests; latency as "
            "the client sees it (JSON encoding, HTTP on loopback, preprocessing, network).",
            "",
        ]
    )


def main() -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="meddx-bench-serve-") as tmp:
        root = Path(tmp)
        cfg = trained_project(root)
        images = raw_test_images(cfg)
        served = serving(cfg, images, root)
        predicted = predicting(cfg, images, root / "predict")
    summary = {
        "dataset": DATASET,
        "model": MODEL,
        "network": "cnn=convnet (1 epoch)",
        "cores": os.cpu_count(),
        "load_before": list(load_before),
        "load_after": list(os.getloadavg()),
        "serving": served,
        "predict": predicted,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    write_json(OUT / "serve.json", summary)
    write_text(OUT / "serve.md", markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
