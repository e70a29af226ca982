"""Downloads against a real local HTTP server: Range resume after a dropped connection, and
nothing left behind when the checksum is wrong."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from meddx.data.fetch import Checksum, download, fetch
from meddx.errors import DataError
from meddx.paths import Layout

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class Server:
    """Serves PAYLOAD with Range support; the first `drops` responses stop half-way."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.ranges: list[str | None] = []
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                header = self.headers.get("Range")
                state.ranges.append(header)
                start = int(header.removeprefix("bytes=").rstrip("-")) if header else 0
                body = PAYLOAD[start:]
                self.send_response(206 if header else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if state.drops > 0:
                    state.drops -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/breastmnist.npz"


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    srv = Server(drops=getattr(request, "param", 0))
    thread = threading.Thread(target=srv.httpd.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.mark.parametrize("server", [2], indirect=True)
def test_download_resumes_with_range_after_dropped_connections(
    server: Server, tmp_path: Path
) -> None:
    target = tmp_path / "cache" / "breastmnist.npz"
    download(
        server.url,
        target,
        Checksum("md5", hashlib.md5(PAYLOAD).hexdigest()),
        target.name,
        backoff=0,
    )
    assert target.read_bytes() == PAYLOAD
    assert server.ranges[0] is None
    assert all(r and r.startswith("bytes=") and r != "bytes=0-" for r in server.ranges[1:])
    assert len(server.ranges) == 3
    assert list(target.parent.iterdir()) == [target]


def test_download_with_wrong_checksum_leaves_nothing(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(
        DataError,
        match=r"breastmnist\.npz: checksum mismatch.*expected MD5 "
        r"0{32}, got " + hashlib.md5(PAYLOAD).hexdigest(),
    ):
        download(
            server.url,
            cache / "breastmnist.npz",
            Checksum("md5", "0" * 32),
            "breastmnist.npz",
            backoff=0,
        )
    assert list(cache.iterdir()) == []


def test_fetch_downloads_into_the_cache_when_there_is_no_mirror(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDDX_OFFLINE", raising=False)
    md5 = Checksum("md5", hashlib.md5(PAYLOAD).hexdigest())
    got = fetch("breastmnist.npz", md5, server.url, tmp_path / "cache", None, "medmnist", backoff=0)
    assert got.origin == "download" and got.path == tmp_path / "cache" / "breastmnist.npz"
    assert (
        fetch("breastmnist.npz", md5, server.url, tmp_path / "cache", None, "medmnist").origin
        == "cache"
    )
    assert len(server.ranges) == 1


def test_layout_resolves_cache_and_mirror_from_the_config_relative_to_root(
    make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDDX_DATA_MIRROR", str(tmp_path / "from_env"))
    default = Layout.of(make_cfg())
    assert default.cache == tmp_path / "data" / "cache"
    assert default.cache_dir("mitbih") == tmp_path / "data" / "cache" / "mitbih"
    assert default.mirror == tmp_path / "from_env"
    configured = Layout.of(make_cfg("paths.cache=downloads", "paths.mirror=share"))
    assert configured.cache == tmp_path / "downloads"
    assert configured.mirror == tmp_path / "share"
    monkeypatch.delenv("MEDDX_DATA_MIRROR")
    assert Layout.of(make_cfg()).mirror is None
