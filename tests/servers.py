"""Real servers on loopback for tests and benchmarks: PostgreSQL and `mlflow server`.

PostgreSQL is Debian's server (`apt-get install postgresql`; .ci/run installs it), started
on a fresh cluster in a temporary folder on a free 127.0.0.1 port, trust authentication
for loopback only, and stopped (the folder removed) afterwards. Postgres refuses to run as
root, so as root the cluster belongs to the `postgres` account the Debian package creates
and every server command runs through `runuser`.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVER_USER = "postgres"  # the account Debian's package creates; used only when we are root
DB_USER = "meddx"


class Unavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (or no account that may run them)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_binaries() -> Path:
    """The folder of initdb/pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if not versions:
        raise Unavailable("no PostgreSQL server: apt-get install postgresql")
    return Path(versions[-1]).parent


def require() -> Path:
    """The server binaries' folder, once it is sure that they can be run here; else Unavailable."""
    bin_dir = server_binaries()
    _as_server_user([])
    return bin_dir


def _version(path: str) -> float:
    try:
        return float(Path(path).parents[1].name)
    except ValueError:
        return 0.0


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise Unavailable("running as root without runuser: cannot start postgres as a user")
    try:
        import pwd

        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise Unavailable(f"running as root and there is no '{SERVER_USER}' account") from None
    return ["runuser", "-u", SERVER_USER, "--", *command]


@contextmanager
def postgres() -> Iterator[str]:
    """A running server; yields `postgresql://meddx@127.0.0.1:<port>` (add `/<database>`)."""
    bin_dir = require()
    home = Path(tempfile.mkdtemp(prefix="meddx-pg-"))  # not pytest's: postgres must enter it
    data, log = home / "data", home / "server.log"
    if os.geteuid() == 0:
        import pwd

        account = pwd.getpwnam(SERVER_USER)
        os.chown(home, account.pw_uid, account.pw_gid)
    port = free_port()

    def run(*command: str) -> None:
        tool = [str(bin_dir / command[0]), *command[1:]]
        subprocess.run(_as_server_user(tool), check=True, capture_output=True, text=True)

    try:
        run("initdb", "-D", str(data), "-U", DB_USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' "
        options += "-c fsync=off -c max_connections=200"
        run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        try:
            yield f"postgresql://{DB_USER}@127.0.0.1:{port}"
        finally:
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    except subprocess.CalledProcessError as exc:
        server_log = log.read_text() if log.is_file() else ""
        raise RuntimeError(
            f"{exc.cmd} failed:\n{exc.stdout}\n{exc.stderr}\n{server_log[-3000:]}"
        ) from None
    finally:
        shutil.rmtree(home, ignore_errors=True)


def create_database(server: str, name: str) -> str:
    """A new, empty database on `server`; its URL."""
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


@contextmanager
def _serving(command: list[str], url: str, health: str, log_path: Path, env=None) -> Iterator[str]:
    """Run `command` in its own session until `url + health` answers; yield `url`; stop it."""
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    urllib.request.urlopen(f"{url}{health}", timeout=2).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{command[2:4]} did not start:\n{log_path.read_text()[-3000:]}"
                        ) from None
                    time.sleep(0.5)
            yield url
        finally:
            os.killpg(process.pid, signal.SIGTERM)  # the server and its workers
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def mlflow_server(backend: str, artifacts: Path, workers: int = 2) -> Iterator[str]:
    """`mlflow server` on a free loopback port with `backend` as its store; yields its URL."""
    artifacts.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        backend,
        "--serve-artifacts",
        "--artifacts-destination",
        str(artifacts),
        "--workers",
        str(workers),
    ]
    log_path = artifacts.parent / f"mlflow-server-{port}.log"
    with _serving(command, f"http://127.0.0.1:{port}", "/health", log_path) as url:
        yield url


@contextmanager
def model_server(model_uri: str, tracking_uri: str, log_dir: Path) -> Iterator[str]:
    """`mlflow models serve -m <model_uri> --env-manager local` (one worker) on a free loopback
    port, the model looked up in `tracking_uri`; yields its URL (POST /invocations)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    log_path = log_dir / f"model-server-{port}.log"
    with _serving(command, f"http://127.0.0.1:{port}", "/ping", log_path, env) as url:
        yield url
