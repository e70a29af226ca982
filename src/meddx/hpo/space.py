"""The search space as declared in `conf/hpo/<name>.yaml`, checked before any trial runs.

Each entry of `hpo.space` names an Optuna parameter and the config key it sets:

    lr:        {key: cnn.optimizer.lr, type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    hidden:    {key: cnn.net.hidden, type: int, low: 128, high: 512, step: 128}
    optimizer: {key: cnn.optimizer._target_, type: categorical, choices: [torch.optim.Adam, ...]}
    network:   {key: cnn, type: categorical, choices: [basic, ...]}   # a group choice

Short names keep the entries overridable from the command line (`hpo.space.lr.high=0.1`),
which dotted config keys as YAML keys would not be. A trial becomes a list of overrides, the
same strings a user would type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from meddx.config import default_conf_dir, is_group_override, with_overrides
from meddx.errors import ConfigError

if TYPE_CHECKING:
    import optuna

TYPES = ("float", "int", "categorical")
FIELDS = {
    "float": {"key", "type", "low", "high", "log", "step"},
    "int": {"key", "type", "low", "high", "log", "step"},
    "categorical": {"key", "type", "choices"},
}


@dataclass(frozen=True)
class Param:
    """One searched dimension: Optuna parameter `name` sets config `key`."""

    name: str
    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    group: bool = False

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return trial.suggest_categorical(self.name, list(self.choices))

    def override(self, value: Any) -> str:
        return as_override(self.key, value, group=self.group)

    def extremes(self) -> list[Any]:
        """Values that together exercise every type a trial can set (for the up-front check)."""
        if self.type == "categorical":
            return list(self.choices)
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]


def as_override(key: str, value: Any, group: bool) -> str:
    """The override that sets `key` to `value`: `cnn=basic` for a group, else a literal."""
    return f"{key}={value}" if group else f"{key}={_literal(value)}"


def _literal(value: Any) -> str:
    """A Hydra override literal that parses back to exactly `value` (strings always quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _number(where: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = " (YAML reads 1e-4 as text: write 1.0e-4)" if isinstance(value, str) else ""
        raise ConfigError(f"{where}.{field} must be a number, got {value!r}{hint}")
    return float(value)


def _parse_one(name: str, spec: Any, where: str, conf_dir: Path) -> Param:
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where} must be a mapping like {{key: cnn.optimizer.lr, type: float, "
            f"low: 1.0e-4, high: 1.0e-2}}, got {spec!r}"
        )
    kind = spec.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{where}.type is {kind!r}; use one of {', '.join(TYPES)}")
    unknown = set(spec) - FIELDS[kind]
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {sorted(unknown)} for type {kind}; "
            f"allowed: {sorted(FIELDS[kind])}"
        )
    key = spec.get("key")
    if not isinstance(key, str) or not key or "=" in key:
        raise ConfigError(
            f"{where}.key must name a config key (cnn.optimizer.lr) or a group (cnn), got {key!r}"
        )
    group = is_group_override(key, conf_dir)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, Sequence) or isinstance(choices, str) or not choices:
            raise ConfigError(f"{where}.choices must be a non-empty list, got {choices!r}")
        for choice in choices:
            if choice is not None and not isinstance(choice, (bool, int, float, str)):
                raise ConfigError(
                    f"{where}.choices: {choice!r} is not a scalar "
                    "(Optuna stores None, bool, int, float or str)"
                )
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"{where}.choices has duplicates: {list(choices)}")
        if group:
            missing = [c for c in choices if not (conf_dir / key / f"{c}.yaml").is_file()]
            if missing:
                raise ConfigError(
                    f"{where}: no option {missing} in group '{key}' "
                    f"(files conf/{key}/<option>.yaml in {conf_dir})"
                )
        return Param(name, key, kind, choices=tuple(choices), group=group)
    if group:
        raise ConfigError(f"{where}: '{key}' is a config group; search it with type categorical")
    low = _number(where, "low", spec.get("low"))
    high = _number(where, "high", spec.get("high"))
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log must be true or false, got {log!r}")
    step = spec.get("step")
    step = None if step is None else _number(where, "step", step)
    if low >= high:
        raise ConfigError(f"{where}: low ({low:g}) must be below high ({high:g})")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log scale needs low > 0, got {low:g}")
    if log and step is not None:
        raise ConfigError(f"{where}: choose log or step, not both (Optuna refuses the pair)")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}.step must be positive, got {step:g}")
    if kind == "int" and not all(v is None or float(v).is_integer() for v in (low, high, step)):
        raise ConfigError(f"{where}: an int range needs whole low/high/step")
    return Param(name, key, kind, low=low, high=high, log=log, step=step)


def parse_space(space: Any, conf_dir: Path | None = None) -> list[Param]:
    """`hpo.space` as Params, group choices first (they replace whole sections)."""
    conf_dir = (conf_dir or default_conf_dir()).resolve()
    if OmegaConf.is_config(space):
        space = OmegaConf.to_container(space, resolve=True)
    if not isinstance(space, Mapping) or not space:
        raise ConfigError(f"hpo.space must be a non-empty mapping of name -> spec, got {space!r}")
    params = [
        _parse_one(str(name), spec, f"hpo.space.{name}", conf_dir) for name, spec in space.items()
    ]
    keys = [p.key for p in params]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"hpo.space sets {twice} more than once")
    return sorted(params, key=lambda p: not p.group)


def to_overrides(params: Sequence[Param], values: Mapping[str, Any]) -> list[str]:
    """The overrides of one point of the space (e.g. a trial's `params`)."""
    return [p.override(values[p.name]) for p in params if p.name in values]


def to_settings(params: Sequence[Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """The config keys one point of the space sets, with their values (groups first)."""
    return {p.key: values[p.name] for p in params if p.name in values}


def check_space(
    params: Sequence[Param],
    cfg: DictConfig,
    fixed: Sequence[str] = (),
    conf_dir: Path | None = None,
) -> None:
    """Fail now, not in trial 7, when a key is unknown or a range does not fit its key's type."""
    fixed_keys = {o.split("=", 1)[0] for o in fixed}
    clash = sorted(fixed_keys & {p.key for p in params})
    if clash:
        raise ConfigError(f"hpo.trial_overrides fixes {clash}, which hpo.space also searches")
    for param in params:
        for value in param.extremes():
            try:
                with_overrides(cfg, [param.override(value), *fixed], conf_dir)
            except ConfigError as exc:
                raise ConfigError(f"hpo.space.{param.name}: {exc}") from None
