"""Turning `conf/` (or the composed `params.yaml`) plus overrides into one checked config.

Two sources, one rule set:
- `compose(overrides)` composes the Hydra groups in `conf/` exactly as DVC does for
  `dvc exp run` (`version_base=None`, resolved, dumped with `OmegaConf.to_yaml`), so that
  `params.yaml` can be compared with, and regenerated from, `conf/`.
- `load_params(path, overrides)` reads a composed file; this is what DVC stages do, since
  `dvc exp run -S ...` writes its composition to `params.yaml` before the stages start.

Value overrides (`cnn.lr=0.01`) are checked against the type of the value they replace, and
every resulting config against the meaning of its numbers (`meddx.config_schema`) and its
`paths.root`, so a typo or an impossible value fails before any work starts (no MLflow run,
no checkpoint folder) instead of deep inside an optimizer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from meddx.config_schema import problems
from meddx.errors import ConfigError

CONFIG_NAME = "config"
PARAMS_FILE = "params.yaml"
PIPELINES = "pipelines"


def default_conf_dir() -> Path:
    """`MEDDX_CONF_DIR`, else `./conf` when run from a project checkout, else the repo's own."""
    env = os.environ.get("MEDDX_CONF_DIR")
    if env:
        return Path(env).resolve()
    local = Path.cwd() / "conf"
    if (local / f"{CONFIG_NAME}.yaml").is_file():
        return local.resolve()
    return Path(__file__).resolve().parents[2] / "conf"


def is_group_override(override: str, conf_dir: Path) -> bool:
    """Group choices (`cnn=resnet18`, `data/image=x`, `+experiment=y`) name a folder in conf/."""
    key = override.split("=", 1)[0].lstrip("+~")
    return "/" in key or (conf_dir / key).is_dir()


def _parse_value_overrides(overrides: Sequence[str]) -> list[tuple[str, Any]]:
    if not overrides:  # what every DVC stage passes: no need to import Hydra's parser
        return []
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException as exc:
        raise ConfigError(f"Cannot parse override: {exc}") from None
    result = []
    for item in parsed:
        if item.is_sweep_override():
            raise ConfigError(
                f"'{item.input_line}' is a sweep; run sweeps with `dvc exp run --queue -S ...` "
                "or the tune stage"
            )
        if item.is_delete() or item.is_add():
            raise ConfigError(
                f"'{item.input_line}': adding or deleting keys is not allowed; "
                "change the config in conf/ instead"
            )
        result.append((item.key_or_group, item.value()))
    return result


def _describe(value: Any) -> str:
    return type(value).__name__


def _coerce(key: str, old: Any, new: Any, origin: str) -> Any:
    """Accept `new` if it fits the type of `old`; otherwise say what was expected."""
    if old is None or isinstance(old, str) or new is None:
        return new
    expected: tuple[type, ...]
    if isinstance(old, bool):
        expected = (bool,)
    elif isinstance(old, int):
        expected = (int,)
    elif isinstance(old, float):
        expected = (int, float)
    elif isinstance(old, (list, tuple)) or OmegaConf.is_list(old):
        expected = (list, tuple)
    elif isinstance(old, dict) or OmegaConf.is_dict(old):
        expected = (dict,)
    else:
        return new
    # bool is an int subclass: `true` must not pass for an integer key.
    if (isinstance(new, bool) and bool not in expected) or not isinstance(new, expected):
        raise ConfigError(
            f"Invalid value for '{key}': {new!r} is a {_describe(new)}, expected a "
            f"{_describe(old)} (the value in {origin} is {old!r})"
        )
    if isinstance(old, float) and isinstance(new, int):
        return float(new)
    return new


def apply_value_overrides(cfg: DictConfig, overrides: Sequence[str], origin: str) -> DictConfig:
    """Set `key=value` overrides on `cfg`, refusing unknown keys and values of the wrong type."""
    for key, new in _parse_value_overrides(overrides):
        try:
            old = OmegaConf.select(cfg, key, throw_on_missing=False, default=KeyError)
        except Exception as exc:  # interpolation errors and the like
            raise ConfigError(f"Cannot read '{key}': {exc}") from None
        if old is KeyError:
            parent = key.rpartition(".")[0]
            node = OmegaConf.select(cfg, parent) if parent else cfg
            known = sorted(node.keys()) if OmegaConf.is_dict(node) else []
            raise ConfigError(
                f"Unknown config key '{key}'"
                + (
                    f"; keys under '{parent or '<root>'}': {', '.join(map(str, known))}"
                    if known
                    else ""
                )
            )
        value = _coerce(key, old, new, origin)
        OmegaConf.update(cfg, key, value, merge=False, force_add=False)
    return cfg


def compose(
    overrides: Sequence[str] = (), conf_dir: Path | None = None, pipeline: str | None = None
) -> DictConfig:
    """Compose `conf/` with overrides the way DVC does, and check the value overrides.

    `pipeline` selects an entry of `pipelines` (`select_pipeline`) before the value overrides,
    so that they set that pipeline's values."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    conf_dir = (conf_dir or default_conf_dir()).resolve()
    if not (conf_dir / f"{CONFIG_NAME}.yaml").is_file():
        raise ConfigError(f"No {CONFIG_NAME}.yaml in config folder {conf_dir}")
    groups = [o for o in overrides if is_group_override(o, conf_dir)]
    values = [o for o in overrides if not is_group_override(o, conf_dir)]
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base=None):
            cfg = hydra_compose(config_name=CONFIG_NAME, overrides=groups)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(str(exc).strip()) from None
    except yaml.YAMLError as exc:
        raise _syntax_error(exc) from None
    if pipeline:
        cfg = _selected(cfg, pipeline)
    apply_value_overrides(cfg, values, origin=f"the composition of {conf_dir}")
    return _resolved(cfg)


def load_params(
    path: str | os.PathLike[str] = PARAMS_FILE,
    overrides: Sequence[str] = (),
    pipeline: str | None = None,
) -> DictConfig:
    """Read a composed params file (what `dvc exp run` wrote), select `pipeline` (if given)
    and apply value overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Params file {path} not found; create it with `make params`")
    try:
        cfg = OmegaConf.load(path)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc) from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    conf_dir = default_conf_dir()
    groups = [o for o in overrides if is_group_override(o, conf_dir)]
    if groups:
        raise ConfigError(
            f"Group overrides ({', '.join(groups)}) need composition from conf/: run the stage "
            "without --params, or `dvc exp run -S '<group>=<option>'`"
        )
    OmegaConf.set_struct(cfg, True)
    if pipeline:
        cfg = _selected(cfg, pipeline)
    apply_value_overrides(cfg, overrides, origin=str(path))
    return _resolved(cfg)


def _sections(entry: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of each section a pipeline entry replaces: a mapping of mappings
    (`data`) is a namespace and is walked; any other value (`data.image`, `cnn`) is a section."""
    for key, value in entry.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if OmegaConf.is_dict(value) and value and all(OmegaConf.is_dict(v) for v in value.values()):
            yield from _sections(value, name)
        else:
            yield name, value


def _selected(cfg: DictConfig, name: str) -> DictConfig:
    """`cfg` as the image pipeline `name` sees it: each section of `pipelines.<name>` in place
    of the default pipeline's, whole (no key of the default's `data.image` leaks into a volume
    dataset's), and `paths.pipeline` set, so that `Layout` puts every file of the pipeline
    below a folder of its own (meddx.paths).

    Why entries of one params file rather than a params file per pipeline: DVC's `foreach`
    over `pipelines` makes one set of stages per entry from the same stage modules, `dvc exp run
    -S pipelines.volume.cnn.max_epochs=4` and `dvc params diff` work as for the default, and
    one Hydra composition (`conf/pipelines/<name>.yaml`) checks every pipeline's values.
    """
    import copy

    from omegaconf import open_dict

    entries = cfg.get(PIPELINES) or {}
    if name not in entries:
        raise ConfigError(
            f"--pipeline {name}: no such pipeline; the config has {sorted(entries) or 'none'} "
            f"under '{PIPELINES}' (add conf/{PIPELINES}/{name}.yaml to the `{PIPELINES}` list of "
            f"conf/{CONFIG_NAME}.yaml)"
        )
    out = copy.deepcopy(cfg)
    with open_dict(out):
        for key, section in _sections(entries[name]):
            OmegaConf.update(out, key, copy.deepcopy(section), merge=False)
        out.paths.pipeline = name
    return out


def with_overrides(
    cfg: DictConfig, overrides: Sequence[str], conf_dir: Path | None = None
) -> DictConfig:
    """A copy of a composed config with more overrides on top (HPO trials, tuned training).

    A value override is checked as everywhere else. A group choice (`cnn=resnet`) replaces
    that one section with the option's file from conf/, leaving every other section as the
    base has it (params.yaml edits included); choosing the option the section already holds
    (its `name`) keeps the section untouched, value edits and all.
    """
    import copy

    from omegaconf import open_dict

    conf_dir = (conf_dir or default_conf_dir()).resolve()
    out = copy.deepcopy(cfg)
    values = []
    for override in overrides:
        if not is_group_override(override, conf_dir):
            values.append(override)
            continue
        group, _, choice = override.partition("=")
        if group.startswith(("+", "~")) or not (conf_dir / group / f"{choice}.yaml").is_file():
            raise ConfigError(
                f"'{override}': a group choice must name a file conf/{group.lstrip('+~')}/"
                f"<option>.yaml in {conf_dir}"
            )
        key = group.replace("/", ".")
        current = OmegaConf.select(out, key)
        if OmegaConf.is_dict(current) and current.get("name") == choice:
            continue
        section = OmegaConf.select(compose([override], conf_dir), key)
        if section is None:
            raise ConfigError(f"'{override}': conf/{group}/{choice}.yaml is not packaged at {key}")
        with open_dict(out):
            OmegaConf.update(out, key, section, merge=False)
    apply_value_overrides(out, values, origin="the base config")
    return _resolved(out)


def _syntax_error(exc: yaml.YAMLError) -> ConfigError:
    """Where the YAML is broken and how, instead of the parser's traceback through Hydra."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
    problem = getattr(exc, "problem", None) or str(exc)
    return ConfigError(f"YAML syntax error in {where}: {problem}; fix the file and rerun")


def _check_values(cfg: DictConfig) -> None:
    """Refuse numbers against their meaning, and a project root that is not there.

    A missing `paths.root` would otherwise be created on the fly: a new, empty project tree
    and MLflow store, while the user's data and runs sit elsewhere.
    """
    found = problems(flatten(cfg))
    if found:
        raise ConfigError(
            "Invalid config value (change it in conf/ or params.yaml, or override it with "
            "key=value):\n  " + "\n  ".join(found)
        )
    root = OmegaConf.select(cfg, "paths.root")
    if root is not None and not Path(root).expanduser().is_dir():
        raise ConfigError(
            f"paths.root={root!r} is not an existing folder; point paths.root at the project "
            "checkout, or create the folder first for a new project"
        )


def _resolved(cfg: DictConfig) -> DictConfig:
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"Cannot resolve the config: {exc}") from None
    _check_values(cfg)
    OmegaConf.set_struct(cfg, True)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    """The exact text DVC writes to params.yaml for this config."""
    return OmegaConf.to_yaml(cfg)


def to_container(cfg: DictConfig) -> dict[str, Any]:
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return container


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys for a nested mapping; lists stay whole (MLflow params are strings anyway)."""
    if OmegaConf.is_config(tree):
        tree = OmegaConf.to_container(tree, resolve=True)
    flat: dict[str, Any] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if (isinstance(value, dict) or OmegaConf.is_dict(value)) and value:
                flat.update(flatten(value, name))
            else:
                flat[name] = value
    else:
        flat[prefix] = tree
    return flat
