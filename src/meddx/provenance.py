"""What produced a run: code version, stage, input data, and its pipeline execution."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from meddx.io import file_digest


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_state(cwd: Path) -> dict[str, str]:
    """Commit and dirty flag of the checkout holding `cwd` (tracked files only).

    Stages pass the location of the meddx code itself: what ran is what must be identified,
    wherever the data root lives.
    """
    commit = _git("rev-parse", "HEAD", cwd=cwd)
    if commit is None:
        return {"git.commit": "unknown", "git.dirty": "unknown"}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return {"git.commit": commit, "git.dirty": str(bool(status)).lower()}


def path_digest(path: Path) -> str:
    """md5 of a file, or of the sorted (name, md5) pairs of a folder, as DVC identifies data."""
    if path.is_file():
        return file_digest(path)
    digest = hashlib.md5()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{child.relative_to(path)}:{file_digest(child)}\n".encode())
    return digest.hexdigest()


def input_name(path: Path, root: Path) -> str:
    """How a run names an input file: its path inside the project, else as given."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def input_hashes(paths: list[Path], root: Path) -> dict[str, str]:
    return {
        f"input.{input_name(path, root)}": path_digest(path) if path.exists() else "missing"
        for path in paths
    }


def pipeline_id(root: Path) -> str:
    """One id shared by the runs of one pipeline execution.

    `make repro` sets MEDDX_PIPELINE_ID once per call; `dvc exp run` names the experiment;
    otherwise the runs of one commit and one params.yaml belong together.
    """
    for var in ("MEDDX_PIPELINE_ID", "DVC_EXP_NAME"):
        if os.environ.get(var):
            return os.environ[var]
    params = root / "params.yaml"
    digest = hashlib.sha1()
    digest.update((_git("rev-parse", "HEAD", cwd=root) or "nogit").encode())
    if params.is_file():
        digest.update(params.read_bytes())
    return digest.hexdigest()[:12]


def run_key(*parts: Any) -> str:
    """A short stable hash of the config sections and input digests that define a run."""
    blob = json.dumps(
        [OmegaConf.to_container(p, resolve=True) if OmegaConf.is_config(p) else p for p in parts],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]
