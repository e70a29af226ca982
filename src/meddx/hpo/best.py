"""The file that carries the best trial from `tune` to `train_cnn`: a DVC params file.

`models/tune/best.yaml` maps each config key the search set to the value of the best trial
(`cnn.optimizer.lr: 0.0012`; `cnn: basic` for a group choice). dvc.yaml lists the whole file
under train_cnn's `params:`, so dvc.lock, `dvc params diff` and `dvc exp show` show the tuned
values beside params.yaml's, and a change to either reruns train_cnn: no value is trained that
a DVC view does not show. The keys stay flat (dotted, as overrides name them) rather than
nested, because a group (`cnn`) and a key inside it (`cnn.optimizer.lr`) can both be searched.
An empty mapping (`hpo.n_trials=0`) or no file (train_cnn run without tune) means: train
params.yaml as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from meddx.config import default_conf_dir, is_group_override, with_overrides
from meddx.errors import ConfigError
from meddx.hpo.space import as_override
from meddx.io import write_text

HEADER = (
    "# Written by the `tune` stage (do not edit): the config values of its best trial. A params\n"
    "# file of train_cnn in dvc.yaml, applied on top of params.yaml. Rerun `dvc repro tune`.\n"
)
SCALARS = (str, int, float, bool, type(None))


def write_best(path: Path, settings: Mapping[str, Any], note: str) -> None:
    """`settings` (config key -> value) under the header and a one-line `note` on their origin."""
    body = yaml.safe_dump(dict(settings), sort_keys=False) if settings else "{}\n"
    write_text(path, f"{HEADER}# {note}\n{body}")


def read_best(path: Path) -> dict[str, Any]:
    """The tuned settings in the file's order; a clear error when the file is not one."""
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc}); rerun `dvc repro tune`") from None
    if not isinstance(content, dict) or not all(
        isinstance(k, str) and isinstance(v, SCALARS) for k, v in content.items()
    ):
        raise ConfigError(
            f"{path} must map config keys to single values (cnn.optimizer.lr: 0.001); "
            "rerun `dvc repro tune`"
        )
    return content


def as_overrides(settings: Mapping[str, Any], conf_dir: Path | None = None) -> list[str]:
    """The overrides that apply `settings`, exactly as the trial that chose them had them."""
    conf_dir = (conf_dir or default_conf_dir()).resolve()
    return [as_override(k, v, group=is_group_override(k, conf_dir)) for k, v in settings.items()]


def apply_best(cfg: DictConfig, path: Path) -> tuple[DictConfig, dict[str, Any]]:
    """`cfg` with the tuned settings on top, and those settings (none without the file)."""
    if not path.is_file():
        return cfg, {}
    settings = read_best(path)
    try:
        return with_overrides(cfg, as_overrides(settings)), settings
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}; rerun `dvc repro tune`") from None
