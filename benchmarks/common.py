"""Helpers shared by the benchmark scripts: the data mirror and a project rooted elsewhere."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from omegaconf import DictConfig

from meddx.config import compose
from meddx.errors import DataError
from meddx.paths import Layout

REPO = Path(__file__).resolve().parents[1]


def mirror(needed: str = "") -> Path:
    """$MEDDX_DATA_MIRROR, else ../shared/data; a DataError when it lacks `needed` (relative)."""
    configured = os.environ.get("MEDDX_DATA_MIRROR")
    path = Path(configured) if configured else REPO.parent / "shared" / "data"
    if not (path / needed).exists():
        raise DataError(
            f"no {needed or 'folder'} in the real-data mirror {path}: set MEDDX_DATA_MIRROR"
        )
    return path.resolve()


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the repository's own sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{REPO / 'mlflow.db'}"


def project(root: Path, *overrides: str, experiment: str = "meddx-bench") -> DictConfig:
    """conf/ composed for a project rooted in `root`, tracked in the repository's MLflow store."""
    return compose(
        [
            f"paths.root={root}",
            f"tracking.uri={tracking_uri()}",
            f"tracking.experiment={experiment}",
            *overrides,
        ],
        conf_dir=REPO / "conf",
    )


def stage_medmnist(cfg: DictConfig) -> None:
    """Put `<mirror>/medmnist/<name>.npz` where `acquire_images` would (same MedMNIST layout)."""
    source = mirror() / "medmnist" / f"{cfg.data.image.name}.npz"
    if not source.is_file():
        raise DataError(f"{source} is missing from the data mirror")
    target = Layout.of(cfg).raw_images
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def seeds() -> list[int]:
    return [int(s) for s in os.environ.get("SEEDS", "0 1 2").split()]
