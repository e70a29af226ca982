"""The Optuna study of a search: its name, created once, then loaded by every worker.

Where it is stored is `meddx.hpo.storage`; how it samples and prunes, `meddx.hpo.algorithms`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig

from meddx.errors import ConfigError
from meddx.hpo.algorithms import make_pruner, make_sampler
from meddx.hpo.storage import open_storage, redacted, retry_locked
from meddx.provenance import run_key

if TYPE_CHECKING:
    import optuna


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
