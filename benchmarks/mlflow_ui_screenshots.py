"""`make bench-mlflow-ui`: what a user sees in the MLflow UI of a real offline pipeline run.

Builds the store (a `git clone` of this checkout into a temporary folder and `dvc repro` there,
the offline default, with this venv on PATH), or takes one (`--project DIR`, a tree that
`dvc repro` ran in), starts `mlflow server` on a free loopback port on it and opens, in
headless Chromium (Debian's `chromium`; `make bench-mlflow-ui` installs it when missing),
the `meddx` experiment as a fresh browser opens it, then with the model-training view of the
links meddx prints (`?workflowType=machine_learning`): the experiment list, the experiment,
the evaluate run's page and the registered model version's page. Writes a PNG of each and
`screenshots.md` under reports/benchmarks/mlflow_ui/: the store's facts behind each page
(experiment kind, source tags, dataset inputs, logged models, the version's description) and
which of the UI's own words the rendered page holds. What the PNGs show is described by a
person who looked at them, in observed.md beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import REPO

OUT = REPO / "reports" / "benchmarks" / "mlflow_ui"
# MLflow 3.17's UI picks GenAI or model-training views from a per-browser toggle (localStorage
# `mlflow.workflowType`, default GenAI), not from the experiment's `mlflow.experimentKind` tag
# (mlflow/mlflow#24498); a link carries the choice in this query parameter.
ML_VIEW = "workflowType=machine_learning"
BIN = Path(sys.executable).parent
EXPERIMENT = "meddx"
WINDOW = (1600, 1000)
PAGE_TIMEOUT_S = 240  # a loaded 2-core machine renders the SPA slowly
# Driven over the DevTools protocol rather than `--screenshot --virtual-time-budget`, which
# never returned on the MLflow SPA here (a loaded machine, 200 s): the script waits for the
# page's own text instead.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)
# Per page: words that mean it has rendered its data (waited for), then words looked up in it.
READY = {
    "experiments": (EXPERIMENT,),
    "experiment_fresh": (EXPERIMENT,),
    "experiment": ("evaluate cnn on synthetic",),
    "run": ("evaluate cnn on synthetic", "Source"),
    "model_version": ("Model card",),
}
LOOK_FOR = {
    "experiments": (EXPERIMENT,),
    "experiment_fresh": ("Runs", "Source", "Dataset", "Traces", "Overview", "Detect Issues"),
    "experiment": ("Runs", "Source", "Dataset", "Traces", "Overview", "train_cnn.py"),
    "run": ("Source", "Datasets", "Logged models", "Registered models", "evaluate.py"),
    "model_version": ("Model card", "Intended use", "Training data", "Calibration"),
}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    sys.exit("no chromium on PATH: `make bench-mlflow-ui` installs it (apt-get install chromium)")


def build_store() -> Path:
    """A fresh offline pipeline run of this checkout's HEAD in a temporary clone."""
    project = Path(tempfile.mkdtemp(prefix="meddx-ui-")) / "project"
    subprocess.run(["git", "clone", "-q", str(REPO), str(project)], check=True)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(project / "src"),
        "MEDDX_PIPELINE_ID": "bench-mlflow-ui",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    started = time.perf_counter()
    subprocess.run([str(BIN / "dvc"), "repro"], cwd=project, env=env, check=True)
    print(f"dvc repro: {time.perf_counter() - started:.0f} s in {project}")
    return project


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def server(project: Path) -> Iterator[str]:
    port = free_port()
    log = (project / "mlflow-server.log").open("w")
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{project / 'mlflow.db'}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow server did not start; see {log.name}") from None
                time.sleep(1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


async def _cdp_page(ws: Any, url: str, png: Path, ready: tuple[str, ...]) -> str:
    """Navigate, wait until the page's text holds every `ready` word (the SPA fetched its
    data) and stops changing, screenshot; the page's text."""
    ids = iter(range(1, 1_000_000))

    async def call(method: str, **params: Any) -> dict[str, Any]:
        number = next(ids)
        await ws.send_json({"id": number, "method": method, "params": params})
        while True:
            message = await ws.receive_json()
            if message.get("id") == number:
                return message.get("result", {})

    width, height = WINDOW
    await call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    await call("Page.navigate", url=url)
    text, stable, deadline = "", 0, time.monotonic() + PAGE_TIMEOUT_S
    while time.monotonic() < deadline and stable < 3:
        await asyncio.sleep(2)
        found = await call("Runtime.evaluate", expression="document.body.innerText")
        now = found.get("result", {}).get("value", "")
        ok = all(word in now for word in ready)
        stable = stable + 1 if ok and now == text else 0
        text = now
    shot = await call("Page.captureScreenshot", format="png")
    png.write_bytes(base64.b64decode(shot["data"]))
    return text


async def _browse_all(browser: str, pages: dict[str, tuple[str, tuple[str, ...]]]) -> dict:
    import aiohttp  # in the venv with DVC; speaks the DevTools websocket

    port = free_port()
    profile = tempfile.mkdtemp(prefix="meddx-chromium-")
    process = subprocess.Popen(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    texts = {}
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(120):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
                        targets = [t for t in await answer.json() if t["type"] == "page"]
                    if targets:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(1)
            else:
                raise RuntimeError("chromium's DevTools endpoint did not answer")
            ws_url = targets[0]["webSocketDebuggerUrl"]
            async with session.ws_connect(ws_url, max_msg_size=0) as ws:
                for page, (url, ready) in pages.items():
                    texts[page] = await _cdp_page(ws, url, OUT / f"{page}.png", ready)
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
    return texts


def store_facts(project: Path) -> dict[str, object]:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "tags.`meddx.stage` = 'evaluate'")
    run = runs[0]
    versions = client.search_model_versions(f"run_id='{run.info.run_id}'")
    models = client.search_logged_models([experiment.experiment_id])
    tags = run.data.tags
    return {
        "experiment_id": experiment.experiment_id,
        "experiment_kind": experiment.tags.get("mlflow.experimentKind"),
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "source": {k: tags.get(k) for k in ("mlflow.source.name", "mlflow.source.type")},
        "commit": tags.get("mlflow.source.git.commit"),
        "user": tags.get("mlflow.user"),
        "datasets": [
            {
                "name": i.dataset.name,
                "digest": i.dataset.digest,
                "context": {t.key: t.value for t in i.tags}.get("mlflow.data.context"),
            }
            for i in run.inputs.dataset_inputs
        ],
        "logged_models": [m.name for m in models],
        "version": (versions[0].name, versions[0].version) if versions else None,
        "description_chars": len(versions[0].description or "") if versions else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a tree `dvc repro` ran in (default: build)")
    args = parser.parse_args()
    browser = chromium()
    project = args.project.resolve() if args.project else build_store()
    facts = store_facts(project)
    experiment = f"#/experiments/{facts['experiment_id']}"
    pages = {  # a fresh browser profile: the first page sees MLflow's defaults
        "experiment_fresh": experiment,
        "experiments": f"#/experiments?{ML_VIEW}",
        "experiment": f"{experiment}?{ML_VIEW}",
        "run": f"{experiment}/runs/{facts['run_id']}?{ML_VIEW}",
    }
    if facts["version"]:
        name, version = facts["version"]
        pages["model_version"] = f"#/models/{name}/versions/{version}?{ML_VIEW}"
    OUT.mkdir(parents=True, exist_ok=True)
    seen: dict[str, dict[str, bool]] = {}
    with server(project) as url:
        visits = {p: (f"{url}/{route}", READY[p]) for p, route in pages.items()}
        started = time.perf_counter()
        texts = asyncio.run(_browse_all(browser, visits))
        print(f"{len(pages)} pages in {time.perf_counter() - started:.0f} s")
    for page, text in texts.items():
        seen[page] = {word: word in text for word in LOOK_FOR[page]}
    lines = [
        "# MLflow UI on a real offline pipeline run",
        "",
        f"Made by `make bench-mlflow-ui` (benchmarks/mlflow_ui_screenshots.py) on {project}: "
        f"`mlflow server` (MLflow of this venv) on loopback, headless {Path(browser).name} "
        f"at {WINDOW[0]}x{WINDOW[1]} over the DevTools protocol, each page shot once its "
        "data had rendered (its text held the run's name and stopped changing).",
        "",
        "## What the store holds",
        "",
        "```json",
        json.dumps(facts, indent=1),
        "```",
        "",
        "## Pages (PNG beside this file) and the UI's words found in each rendered page",
        "",
        "| page | route | words found | words absent |",
        "|---|---|---|---|",
    ]
    for page, route in pages.items():
        found = [w for w, hit in seen[page].items() if hit]
        absent = [w for w, hit in seen[page].items() if not hit]
        lines.append(f"| {page}.png | `{route}` | {', '.join(found)} | {', '.join(absent)} |")
    lines += ["", "What the screenshots show, looked at by eye: observed.md.", ""]
    (OUT / "screenshots.md").write_text("\n".join(lines))
    print((OUT / "screenshots.md").read_text())


if __name__ == "__main__":
    main()
