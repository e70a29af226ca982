"""`tracking=server`: stages log to a real MLflow server over HTTP; a dead server loses nothing."""

from __future__ import annotations

import base64
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import servers
from conftest import CONF, REPO, TINY_IMAGES
from meddx import cli
from meddx.config import compose
from meddx.errors import ConfigError, TrackingError
from meddx.stages import acquire_images, preprocess_images, train_cnn

# Planted credentials: they must never appear in any output or file.
PLANTED = "PLANTED-pw-7f3a"
PLANTED_ENV = "PLANTED-env-91c2"


def _get(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def _post(url: str, payload: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real `mlflow server` for the module (it takes seconds to start); always stopped."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with servers.mlflow_server(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts", 1) as url:
        yield url


class _Guard(http.server.BaseHTTPRequestHandler):
    """Basic auth in front of the MLflow server (which has none): 503 while `server.down`."""

    server: _GuardServer

    def log_message(self, *args: Any) -> None:
        return None

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.down or self.headers.get("Authorization") != self.server.expected:
            self._answer(503 if self.server.down else 401, b"", "text/plain")
            return
        request = urllib.request.Request(
            self.server.upstream + self.path,
            data=body if self.command in ("POST", "PUT", "PATCH") else None,
            headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
            method=self.command,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, payload, kind = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, payload, kind = exc.code, exc.read(), exc.headers
        self._answer(status, payload, kind.get("Content-Type", "application/json"))

    def _answer(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward


class _GuardServer(http.server.ThreadingHTTPServer):
    def __init__(self, upstream: str, user: str, password: str) -> None:
        super().__init__(("127.0.0.1", 0), _Guard)
        self.upstream, self.down = upstream, True
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def guarded(server: str) -> Iterator[_GuardServer]:
    """The module's server behind a password, down until the test brings it up."""
    guard = _GuardServer(server, "bob", PLANTED)
    thread = threading.Thread(target=guard.serve_forever, daemon=True)
    thread.start()
    yield guard
    guard.shutdown()
    thread.join()
    guard.server_close()


def _runs(server: str, experiment: str, stage: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"experiment_name": experiment})
    found = _get(f"{server}/api/2.0/mlflow/experiments/get-by-name?{query}")
    body = _post(
        f"{server}/api/2.0/mlflow/runs/search",
        {
            "experiment_ids": [found["experiment"]["experiment_id"]],
            "filter": f"tags.`meddx.stage` = '{stage}'",
        },
    )
    return body.get("runs", [])


def _artifacts(server: str, run_id: str, path: str = "") -> list[str]:
    query = urllib.parse.urlencode({"run_id": run_id, "path": path})
    files = _get(f"{server}/api/2.0/mlflow/artifacts/list?{query}").get("files", [])
    return [f["path"] for f in files]


def _by_key(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {item["key"]: item["value"] for item in items}


def test_the_server_address_comes_only_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from meddx.tracking.uri import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose(["tracking=server"], conf_dir=CONF)
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI"):
        tracking_uri(cfg)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example.org")
    assert tracking_uri(cfg) == "https://mlflow.example.org"
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_PASSWORD"):
        tracking_uri(
            compose(
                ["tracking=server", "tracking.uri=https://me:secret@mlflow.example.org"],
                conf_dir=CONF,
            )
        )


def test_a_stage_logs_its_run_to_the_server(
    server: str, make_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    cfg = make_cfg(*TINY_IMAGES, "tracking=server", "tracking.uri=null")

    acquire_images.run(cfg)

    (run,) = _runs(server, cfg.tracking.experiment, "acquire_images")
    assert run["info"]["status"] == "FINISHED"
    assert _by_key(run["data"]["params"])["seed"] == "42"
    assert _by_key(run["data"]["metrics"])["n_train"] == 160
    assert "config.yaml" in _artifacts(server, run["info"]["run_id"])  # through the server


def test_an_unreachable_server_loses_no_result_and_upload_sends_it_later(
    server: str, make_cfg, tmp_path: Path
) -> None:
    cfg = make_cfg(*TINY_IMAGES)
    acquire_images.run(cfg)
    preprocess_images.run(cfg)
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
        offline = make_cfg(
            *TINY_IMAGES,
            f"tracking.uri={dead}",
            "tracking.retries=1",
            "tracking.backoff=0",
            "tracking.timeout=5",
        )
        started = time.monotonic()
        with pytest.raises(TrackingError, match="python -m meddx upload") as failure:
            train_cnn.run(offline)
        elapsed = time.monotonic() - started

    assert dead in str(failure.value)
    metrics = json.loads((tmp_path / "reports" / "metrics" / "train_cnn.json").read_text())
    assert (tmp_path / "models" / "cnn" / "model.pt").is_file()
    (spool,) = (tmp_path / "runs" / "unsent").glob("*.json")
    kept = json.loads(spool.read_text())
    assert kept["status"] == "FINISHED" and kept["run_id"] is None
    assert kept["params"]["cnn.max_epochs"] == "2"
    assert kept["tags"]["meddx.stage"] == "train_cnn"
    assert {(key, step) for key, _, _, step in kept["metrics"]} >= {("val_auc", 0), ("val_auc", 1)}
    assert {"config.yaml", "model/model.pt", "metrics/train_cnn.json"} <= set(kept["artifacts"])
    assert elapsed < 120  # one round of retries, not one per epoch

    status = cli.main(["upload", f"paths.root={tmp_path}", f"tracking.uri={server}"])

    assert status == 0
    assert not list((tmp_path / "runs" / "unsent").iterdir())
    (run,) = _runs(server, cfg.tracking.experiment, "train_cnn")
    assert run["info"]["status"] == "FINISHED"
    assert _by_key(run["data"]["metrics"])["best_val_auc"] == pytest.approx(metrics["best_val_auc"])
    assert "model.pt" in " ".join(_artifacts(server, run["info"]["run_id"], "model"))


def test_a_tracking_password_is_never_printed_nor_stored(tmp_path: Path) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        address = f"http://bob:{PLANTED}@127.0.0.1:{closed.getsockname()[1]}"
        path = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": address,
            "MLFLOW_TRACKING_PASSWORD": PLANTED_ENV,
            "PYTHONPATH": path,
        }
        stage = [sys.executable, "-m", "meddx", "acquire_images", f"paths.root={tmp_path}"]
        limits = ["tracking.retries=0", "tracking.timeout=5", "tracking.backoff=0"]
        done = subprocess.run(
            [*stage, *limits, *TINY_IMAGES], env=env, capture_output=True, text=True, timeout=300
        )

    assert done.returncode == 2 and "python -m meddx upload" in done.stderr, done.stderr
    assert "http://bob:***@127.0.0.1" in done.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"config.yaml", "images.npz"} <= {p.name for p in written}
    assert [p for p in written if p.parent.name == "unsent"]
    texts = {"stdout": done.stdout, "stderr": done.stderr}
    texts.update((str(p), p.read_bytes().decode("utf-8", "replace")) for p in written)
    assert [name for name, text in texts.items() if PLANTED in text or PLANTED_ENV in text] == []


def test_upload_takes_the_spooled_servers_password_from_the_environment(
    server: str,
    guarded: _GuardServer,
    make_cfg,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    address = f"http://bob:{PLANTED}@127.0.0.1:{guarded.server_address[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", address)
    cfg = make_cfg(*TINY_IMAGES, "tracking.uri=null", "tracking.retries=0", "tracking.backoff=0")
    with pytest.raises(TrackingError):
        acquire_images.run(cfg)  # the server is down
    (spool,) = (tmp_path / "runs" / "unsent").glob("*.json")
    assert PLANTED not in spool.read_text()
    guarded.down = False

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert cli.main(["upload", f"paths.root={tmp_path}"]) == 2
    assert "export MLFLOW_TRACKING_URI" in capsys.readouterr().err
    assert spool.is_file()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", address)
    assert cli.main(["upload", f"paths.root={tmp_path}"]) == 0

    (run,) = _runs(server, cfg.tracking.experiment, "acquire_images")
    assert run["info"]["status"] == "FINISHED"
    assert _by_key(run["data"]["metrics"])["n_train"] == 160
    assert "config.yaml" in _artifacts(server, run["info"]["run_id"])
