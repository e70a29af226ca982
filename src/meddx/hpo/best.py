"""The file that carries the best trial from `tune` to `train_cnn`: a list of overrides.

Plain override strings (`cnn.optimizer.lr=0.0012`, `cnn=basic`) rather than a config
fragment, so train_cnn applies them exactly as a trial did and a reader sees what changed.
An empty list (hpo.n_trials=0, or no tune run) means: train with params.yaml as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from meddx.config import with_overrides
from meddx.errors import ConfigError
from meddx.io import write_text

HEADER = (
    "# Written by the `tune` stage (do not edit): train_cnn applies `overrides` on top of\n"
    "# params.yaml. Rerun `dvc repro tune` to refresh it.\n"
)


def write_best(path: Path, overrides: list[str], **facts: Any) -> None:
    write_text(path, HEADER + yaml.safe_dump({**facts, "overrides": overrides}, sort_keys=False))


def read_best(path: Path) -> list[str]:
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc}); rerun `dvc repro tune`") from None
    overrides = content.get("overrides") if isinstance(content, dict) else None
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(
            f"{path} needs a list of override strings under `overrides`; rerun `dvc repro tune`"
        )
    return overrides


def apply_best(cfg: DictConfig, path: Path) -> tuple[DictConfig, list[str]]:
    """`cfg` with the tuned overrides on top, when a tune result exists."""
    if not path.is_file():
        return cfg, []
    overrides = read_best(path)
    try:
        return with_overrides(cfg, overrides), overrides
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}; rerun `dvc repro tune`") from None
