"""Optuna plumbing: storage, sampler, pruner, a study that survives restarts and many workers.

Storage is a local sqlite file by default (`<project>/optuna.db`, beside mlflow.db and, like it,
never a DVC out: DVC would delete it before each rerun and the study could not resume).
`hpo.storage: journal` uses a journal file instead; any SQLAlchemy URL (PostgreSQL, MySQL)
shares one study between machines. Passwords never go in the config (params.yaml is
committed): put the whole URL in MEDDX_OPTUNA_STORAGE instead.
"""

from __future__ import annotations

import importlib.util
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from meddx.errors import ConfigError
from meddx.paths import project_root
from meddx.provenance import run_key

if TYPE_CHECKING:
    import optuna

T = TypeVar("T")
STORAGE_ENV = "MEDDX_OPTUNA_STORAGE"
SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "successive_halving", "hyperband", "none")
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


def _kwargs(section: str, cfg: DictConfig) -> dict[str, Any]:
    """`hpo.<section>_kwargs.<chosen name>`: kept per choice so switching needs one override."""
    name = cfg.hpo[section]
    node = OmegaConf.select(cfg, f"hpo.{section}_kwargs.{name}")
    kwargs = OmegaConf.to_container(node, resolve=True) if node is not None else {}
    if not isinstance(kwargs, dict):
        raise ConfigError(f"hpo.{section}_kwargs.{name} must be a mapping, got {kwargs!r}")
    return kwargs


def _build(kind: str, name: str, factory: Callable[..., T], kwargs: dict[str, Any]) -> T:
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"hpo.{kind}_kwargs do not fit hpo.{kind}={name}: {exc}") from None


def make_sampler(cfg: DictConfig, worker: int = 0) -> optuna.samplers.BaseSampler:
    """Seeded per worker: equal seeds would make parallel workers propose the same points."""
    from optuna import samplers

    name = cfg.hpo.sampler
    seed = int(cfg.seed) + worker
    kwargs = {"seed": seed, **_kwargs("sampler", cfg)}
    if name == "tpe":
        return _build("sampler", name, samplers.TPESampler, kwargs)
    if name == "random":
        return _build("sampler", name, samplers.RandomSampler, kwargs)
    if name == "cmaes":
        if importlib.util.find_spec("cmaes") is None:
            raise ConfigError("hpo.sampler=cmaes needs the `cmaes` package: pip install cmaes")
        return _build("sampler", name, samplers.CmaEsSampler, kwargs)
    raise ConfigError(f"hpo.sampler={name!r} is not known; use one of {', '.join(SAMPLERS)}")


def make_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    from optuna import pruners

    name = cfg.hpo.pruner
    factories: dict[str, Callable[..., pruners.BasePruner]] = {
        "median": pruners.MedianPruner,
        "successive_halving": pruners.SuccessiveHalvingPruner,
        "hyperband": pruners.HyperbandPruner,
        "none": pruners.NopPruner,
    }
    if name not in factories:
        raise ConfigError(f"hpo.pruner={name!r} is not known; use one of {', '.join(PRUNERS)}")
    return _build("pruner", name, factories[name], _kwargs("pruner", cfg))


def study_name(cfg: DictConfig, input_digests: list[str]) -> str:
    """`hpo.study_name`, else a name that changes with everything that makes trials comparable.

    Same space, objective, base config and data -> same study, so a rerun resumes it (and more
    `n_trials` extends it); change any of them and the search starts afresh rather than
    mixing incomparable trials. Sampler, pruner and worker count do not change the name.
    """
    if cfg.hpo.study_name:
        return str(cfg.hpo.study_name)
    hpo = cfg.hpo
    key = run_key(
        cfg.seed,
        cfg.cnn,
        cfg.trainer,
        cfg.data.image.augment,
        hpo.space,
        hpo.metric,
        hpo.direction,
        hpo.trial_overrides,
        input_digests,
    )
    return f"{hpo.name}-{key[:10]}"


def create_study(cfg: DictConfig, url: str, name: str) -> optuna.Study:
    """Create (or load, to resume) the study; done once, before any worker starts."""
    import optuna

    direction = cfg.hpo.direction
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"hpo.direction={direction!r}; use maximize or minimize")
    storage = open_storage(url, create=True)
    study = retry_locked(
        lambda: optuna.create_study(
            storage=storage,
            study_name=name,
            sampler=make_sampler(cfg),
            pruner=make_pruner(cfg),
            direction=direction,
            load_if_exists=True,
        )
    )
    if study.direction.name.lower() != direction:
        raise ConfigError(
            f"Study '{name}' in {redacted(url)} was created to "
            f"{study.direction.name.lower()}, not {direction}: set another "
            "hpo.study_name"
        )
    return study


def load_study(cfg: DictConfig, url: str, name: str, worker: int) -> optuna.Study:
    import optuna

    storage = open_storage(url, create=False)
    return retry_locked(
        lambda: optuna.load_study(
            study_name=name,
            storage=storage,
            sampler=make_sampler(cfg, worker),
            pruner=make_pruner(cfg),
        )
    )


ORPHAN_ATTR = "meddx_orphaned"


def fail_orphans(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Mark trials left RUNNING by a killed stage as failed, so a rerun does not wait on them.

    Only for local storages: DVC runs one stage at a time per project, so at start-up nothing
    else can be running trials there. Shared databases rely on Optuna's heartbeat instead.
    """
    from optuna.trial import TrialState

    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    storage = study._storage
    for trial in orphans:
        storage.set_trial_user_attr(trial._trial_id, ORPHAN_ATTR, True)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return orphans


def used_budget(study: optuna.Study) -> int:
    """Trials that count toward `hpo.n_trials`: finished or running, except orphans of a kill."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return sum(
        1
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        or (t.state == TrialState.FAIL and not t.user_attrs.get(ORPHAN_ATTR))
    )
