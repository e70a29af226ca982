"""A mirror folder's checksum manifest (`md5sum` / `sha256sum` output) and the files it covers.

HC18 and MSD Hippocampus come as many small files with a `CHECKSUMS.md5` beside them. Every
file is read only after its digest matches its manifest line, and a file the manifest does
not list is refused, so a corrupt, edited or foreign file fails here, naming itself. The
manifest itself is pinned by its SHA-256 in the dataset config: an edited manifest would
otherwise vouch for edited files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from meddx.data import fetch
from meddx.errors import DataError
from meddx.io import file_digest
from meddx.paths import MIRROR_ENV

MANIFEST = "CHECKSUMS.md5"


@dataclass(frozen=True)
class Manifest:
    """The verified files of one dataset folder in the mirror."""

    folder: Path
    sums: dict[str, fetch.Checksum]

    def path(self, name: str) -> Path:
        """`folder/name` once it exists, is listed and matches its digest; else a DataError."""
        path = self.folder / name
        if not path.is_file():
            raise DataError(f"{path} is missing from the mirror: restore the dataset folder")
        checksum = self.sums.get(name)
        if checksum is None:
            raise DataError(
                f"{path} is not listed in {self.folder / MANIFEST}: only listed files are read"
            )
        fetch.verify(path, checksum, name)
        return path


def dataset_folder(mirror: Path | None, subdir: str, dataset: str) -> Path:
    """`<mirror>/<subdir>`: these datasets are read from a mirror only (no download here)."""
    if mirror is None:
        raise DataError(
            f"{dataset} is read from a data mirror, and none is set: `export {MIRROR_ENV}="
            f"/path/to/mirror` (holding {subdir}/{MANIFEST} and the files it lists) or the "
            "override `paths.mirror=/path/to/mirror`"
        )
    folder = mirror / subdir
    if not (folder / MANIFEST).is_file():
        raise DataError(
            f"{dataset}: {folder / MANIFEST} not found; the mirror {mirror} must hold the "
            f"dataset in {subdir}/ with its checksum manifest"
        )
    return folder


def read_manifest(folder: Path, expected_sha256: str) -> Manifest:
    """The manifest of `folder`, after checking its own SHA-256 against the config's pin."""
    manifest = folder / MANIFEST
    actual = file_digest(manifest, "sha256")
    if actual != expected_sha256.lower():
        raise DataError(
            f"{manifest}: SHA-256 {actual} is not the pinned {expected_sha256} (data.image "
            "manifest_sha256): the manifest was changed; restore it from the mirror's source"
        )
    sums: dict[str, fetch.Checksum] = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        if name:
            sums[name.lstrip("*")] = fetch.Checksum("md5", digest.lower(), manifest)
    return Manifest(folder, sums)
