"""Getting one checksummed data file: local cache -> local mirror -> official download.

- The cache (`paths.cache`, default `data/cache`) holds downloads only; it is not a DVC out
  and not in git. A cached file that fails its checksum is evicted and fetched again.
- A mirror (`paths.mirror`, else `$MEDDX_DATA_MIRROR`; resolved by `Layout.of`) is a
  read-only folder the user keeps (e.g. a lab share); files are read in place, never copied,
  and a mirror file that fails its checksum is an error (it is the user's copy to repair,
  not ours to replace).
- A download goes to `<cache>/<file>.part`, resumes with an HTTP Range request after a
  dropped connection (also in a later run), and is renamed onto `<cache>/<file>` only
  once its checksum matches; a mismatch deletes the `.part`, so nothing half-written can be
  mistaken for data. `MEDDX_OFFLINE=1` turns downloads off.

Every source (MedMNIST: MD5 from the registry; MIT-BIH: SHA-256 from PhysioNet's
SHA256SUMS.txt, or none where the list has no entry) goes through these functions.
Plain urllib: no extra dependency for a job this small.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from meddx.errors import DataError
from meddx.io import file_digest
from meddx.paths import MIRROR_ENV

OFFLINE_ENV = "MEDDX_OFFLINE"
CHUNK = 1 << 20
LABELS = {"md5": "MD5", "sha256": "SHA-256"}


@dataclass(frozen=True)
class Checksum:
    """The expected digest of a file; `listed_in` says where it comes from, for the error."""

    algorithm: str  # a hashlib name: "md5" | "sha256"
    expected: str
    listed_in: Path | None = None


@dataclass(frozen=True)
class Fetched:
    path: Path
    origin: str  # "cache" | "mirror" | "download"
    checked: bool  # False when there was no checksum to verify against


class _Retryable(Exception):
    """A transfer failure that another attempt may get past (timeouts, resets, 5xx)."""


# What a failed `download` raises besides DataError (checksum): network, HTTP, disk.
DOWNLOAD_ERRORS = (_Retryable, urllib.error.URLError, OSError)


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").lower() in ("1", "true", "yes")


def mirror_folders(mirror: Path, subdir: str) -> list[Path]:
    """Where a mirror may hold a dataset's files: in the dataset's folder, or at its top."""
    return [mirror / subdir, mirror]


def verify(path: Path, checksum: Checksum | None, file_name: str) -> bool:
    """True when checked, False when there is no checksum; DataError on a mismatch."""
    if checksum is None:
        return False
    actual = file_digest(path, checksum.algorithm)
    if actual != checksum.expected.lower():
        label = LABELS.get(checksum.algorithm, checksum.algorithm)
        listed = f" (as listed in {checksum.listed_in})" if checksum.listed_in else ""
        raise DataError(
            f"{file_name}: checksum mismatch at {path}: expected {label} {checksum.expected}, "
            f"got {actual}{listed}. The file is corrupt or not the official release: replace "
            "it with an intact copy."
        )
    return True


def fetch(
    file_name: str,
    checksum: Checksum | None,
    url: str | None,
    cache_dir: Path,
    mirror: Path | None,
    subdir: str,
    *,
    attempts: int = 4,
    backoff: float = 1.0,
    timeout: float = 30.0,
    context: str = "",
    url_key: str = "",
) -> Fetched:
    """A local, verified copy of `file_name`, trying cache, mirror, then `url` (None: never).

    `context` prefixes the error for a missing file (e.g. which record needs it);
    `url_key` names the setting that switches downloads on when `url` is None.
    """
    cached = cache_dir / file_name
    if cached.is_file():
        try:
            return Fetched(cached, "cache", verify(cached, checksum, file_name))
        except DataError as exc:
            print(f"meddx: evicting a bad cache entry: {exc}", file=sys.stderr)
            cached.unlink()
    mirror_note = "no mirror is used"
    if mirror is not None:
        candidates = [folder / file_name for folder in mirror_folders(mirror, subdir)]
        found = next((path for path in candidates if path.is_file()), None)
        if found is not None:
            return Fetched(found, "mirror", verify(found, checksum, file_name))
        mirror_note = (
            f"the mirror {mirror} does not exist"
            if not mirror.is_dir()
            else f"the mirror holds neither {candidates[0]} nor {candidates[1]}"
        )
    if url is None:
        setting = f": {url_key} is null" if url_key else ""
        download_note = f"downloading is switched off (no download URL{setting})"
    elif offline():
        download_note = f"downloads are turned off ({OFFLINE_ENV}=1)"
    else:
        try:
            download(
                url,
                cached,
                checksum,
                file_name,
                attempts=attempts,
                backoff=backoff,
                timeout=timeout,
            )
            return Fetched(cached, "download", checksum is not None)
        except DOWNLOAD_ERRORS as exc:
            download_note = f"downloading {url} failed ({reason(exc)})"
    online = (
        f"run online, so that {url} is downloaded into {cached}, or download it where "
        f"there is network access and put it at {cached}"
        if url
        else f"set {url_key or 'its download URL'} and run online, or put a copy at {cached}"
    )
    raise DataError(
        f"{context}{file_name} is not available: it is not in the cache {cache_dir}, "
        f"{mirror_note}, and {download_note}. Supply it in one of two ways: (1) a mirror "
        f"folder holding {subdir}/{file_name} (or {file_name}): `export {MIRROR_ENV}="
        f"/path/to/mirror` or the override `paths.mirror=/path/to/mirror`; (2) {online}."
    )


def reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def download(
    url: str,
    target: Path,
    checksum: Checksum | None,
    file_name: str,
    *,
    attempts: int = 4,
    backoff: float = 1.0,
    timeout: float = 30.0,
) -> None:
    """Fetch `url` into `target` through `<target>.part`, resuming and retrying (bounded)."""
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        try:
            _transfer(url, part, timeout)
            break
        except _Retryable as exc:
            if attempt == attempts:
                raise
            wait = backoff * 2 ** (attempt - 1)
            print(
                f"meddx: {file_name}: {exc}; retry {attempt}/{attempts - 1} in {wait:.0f} s",
                file=sys.stderr,
            )
            time.sleep(wait)
    try:
        verify(part, checksum, file_name)
    except DataError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, target)


def _transfer(url: str, part: Path, timeout: float) -> None:
    """One attempt: request the bytes after what `part` already holds and append them."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "meddx"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing after `offset`: the part is complete
            return
        if exc.code >= 500 or exc.code == 429:
            raise _Retryable(f"HTTP {exc.code}") from None
        raise
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, socket.gaierror):  # no DNS: offline, retrying will not help
            raise
        raise _Retryable(str(exc.reason)) from None
    except (TimeoutError, ConnectionError) as exc:
        raise _Retryable(str(exc) or type(exc).__name__) from None
    with response:
        if offset and response.status != 206:  # the server ignored Range: start over
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        progress = _Progress(part.name.removesuffix(".part"), total, offset)
        try:
            with open(part, "ab" if offset else "wb") as handle:
                while chunk := response.read(CHUNK):
                    handle.write(chunk)
                    progress.update(len(chunk))
        except (TimeoutError, ConnectionError, http.client.IncompleteRead) as exc:
            raise _Retryable(f"connection lost ({type(exc).__name__})") from None
        finally:
            progress.close()
    if total is not None and part.stat().st_size < total:
        raise _Retryable(f"connection closed at {part.stat().st_size} of {total} bytes")


class _Progress:
    """A progress line on stderr: redrawn on a terminal, every 10 % in a log."""

    def __init__(self, name: str, total: int | None, done: int) -> None:
        self.name, self.total, self.done = name, total, done
        self.tty = sys.stderr.isatty()
        self.last_decile = -1
        self.update(0)

    def update(self, nbytes: int) -> None:
        self.done += nbytes
        mb = self.done / 1e6
        if self.total:
            percent = 100 * self.done / self.total
            text = f"{self.name}: {mb:.1f}/{self.total / 1e6:.1f} MB ({percent:.0f} %)"
            decile = int(percent // 10)
        else:
            text, decile = f"{self.name}: {mb:.1f} MB", int(mb // 10)
        if self.tty:
            print(f"\r{text}", end="", file=sys.stderr, flush=True)
        elif decile != self.last_decile:
            print(text, file=sys.stderr, flush=True)
        self.last_decile = decile

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)
