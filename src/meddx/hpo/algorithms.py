"""The sampler and pruner that `hpo.sampler` and `hpo.pruner` name, with their kwargs."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from meddx.errors import ConfigError

if TYPE_CHECKING:
    import optuna

T = TypeVar("T")
SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "successive_halving", "hyperband", "none")


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
