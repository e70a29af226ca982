"""Where the Optuna study lives: the storage URL, its redacted form, and opening it.

Storage is a local sqlite file by default (`<project>/optuna.db`, beside mlflow.db and, like it,
never a DVC out: DVC would delete it before each rerun and the study could not resume).
`hpo.storage: journal` uses a journal file instead; any SQLAlchemy URL (PostgreSQL, MySQL)
shares one study between machines. Passwords never go in the config (params.yaml is
committed): put the whole URL in MEDDX_OPTUNA_STORAGE instead.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from omegaconf import DictConfig

from meddx.errors import ConfigError
from meddx.paths import project_root

if TYPE_CHECKING:
    import optuna

T = TypeVar("T")
STORAGE_ENV = "MEDDX_OPTUNA_STORAGE"
HEARTBEAT_S = 20  # a trial's process is presumed dead after GRACE_S without a heartbeat
GRACE_S = 60
SQLITE_TIMEOUT_S = 60  # writers wait this long for the sqlite lock instead of failing


def storage_url(cfg: DictConfig) -> str:
    """`hpo.storage`, else MEDDX_OPTUNA_STORAGE, else sqlite:///<project>/optuna.db."""
    configured = cfg.hpo.storage
    root = project_root(cfg.paths.root)
    if configured:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if configured == "journal":
            return f"journal:{root / 'optuna.journal'}"
        if str(configured).startswith(("journal:", "sqlite:")):
            return str(configured)
        try:
            password = make_url(str(configured)).password
        except ArgumentError as exc:
            raise ConfigError(f"hpo.storage={configured!r} is not a storage URL: {exc}") from None
        if password:
            raise ConfigError(
                "hpo.storage holds a password, and params.yaml is committed: "
                f"set the URL in ${STORAGE_ENV} instead and leave hpo.storage null"
            )
        return str(configured)
    return os.environ.get(STORAGE_ENV) or f"sqlite:///{root / 'optuna.db'}"


def is_local(url: str) -> bool:
    """A file on this machine: only this stage's workers use it, so RUNNING means orphaned."""
    return url.startswith(("sqlite:", "journal:"))


def redacted(url: str) -> str:
    if is_local(url):
        return url
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def retry_locked(fn: Callable[[], T], attempts: int = 8, delay_s: float = 0.25) -> T:
    """Run `fn`, retrying while sqlite says "database is locked" (several writing workers)."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if "database is locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(delay_s * 2**attempt)
    raise AssertionError("unreachable")


def open_storage(url: str, create: bool) -> optuna.storages.BaseStorage:
    """The storage behind `url`; only the first opener (`create`) may create tables."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", ExperimentalWarning)
        return retry_locked(
            lambda: RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                skip_table_creation=not create,
            )
        )
