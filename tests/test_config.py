"""The config contract: conf/ composes the way DVC composes it, and bad options fail early."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from conftest import CONF, REPO
from meddx.config import compose, flatten, load_params, to_yaml
from meddx.errors import ConfigError


def test_params_yaml_equals_the_composition_of_conf() -> None:
    committed = (REPO / "params.yaml").read_text()
    assert committed == to_yaml(compose(conf_dir=CONF)), "params.yaml is stale: run `make params`"


def test_our_composition_matches_what_dvc_writes(tmp_path: Path) -> None:
    from dvc.utils.hydra import compose_and_dump

    target = tmp_path / "params.yaml"
    compose_and_dump(target, str(CONF), None, "config", str(tmp_path), ["cnn.max_epochs=3"])
    assert target.read_text() == to_yaml(compose(["cnn.max_epochs=3"], conf_dir=CONF))


def test_unknown_group_option_names_the_group_and_its_options() -> None:
    with pytest.raises(ConfigError) as err:
        compose(["cnn=nope"], conf_dir=CONF)
    message = str(err.value)
    assert "cnn/nope" in message
    assert "basic" in message


def test_wrongly_typed_value_names_the_key_and_expected_type() -> None:
    with pytest.raises(ConfigError, match=r"cnn\.optimizer\.lr.*'abc'.*float"):
        compose(["cnn.optimizer.lr=abc"], conf_dir=CONF)


def test_unknown_key_is_refused_with_the_known_keys() -> None:
    with pytest.raises(ConfigError, match=r"Unknown config key 'cnn\.nope'.*max_epochs"):
        compose(["cnn.nope=1"], conf_dir=CONF)


def test_integer_is_accepted_for_a_float_key() -> None:
    cfg = compose(["cnn.optimizer.lr=1"], conf_dir=CONF)
    assert cfg.cnn.optimizer.lr == 1.0
    assert isinstance(cfg.cnn.optimizer.lr, float)


def test_boolean_is_refused_for_an_integer_key() -> None:
    with pytest.raises(ConfigError, match=r"cnn\.max_epochs"):
        compose(["cnn.max_epochs=true"], conf_dir=CONF)


def test_params_file_takes_value_overrides(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(to_yaml(compose(conf_dir=CONF)))
    cfg = load_params(params, ["seed=7"])
    assert cfg.seed == 7


def test_params_file_refuses_group_overrides(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(to_yaml(compose(conf_dir=CONF)))
    with pytest.raises(ConfigError, match="dvc exp run"):
        load_params(params, ["cnn=basic"])


def test_composed_config_is_read_only_for_unknown_keys() -> None:
    cfg = compose(conf_dir=CONF)
    assert OmegaConf.is_struct(cfg)
    with pytest.raises(Exception):  # noqa: B017 - omegaconf raises its own key errors
        cfg.cnn.not_a_key = 1


EXPERIMENTS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_an_experiment_states_only_values_its_group_choices_do_not_already_have(
    experiment: str,
) -> None:
    """A value equal to the chosen options' own is a copy that goes stale when they change."""
    text = yaml.safe_load((CONF / "experiment" / f"{experiment}.yaml").read_text())
    choices = [  # its group choices; other defaults entries are part of the experiment
        f"{key.removeprefix('override /')}={option}"
        for entry in text.pop("defaults", [])
        if isinstance(entry, dict)
        for key, option in entry.items()
        if key.startswith("override /")
    ]
    without = flatten(compose(choices, conf_dir=CONF))
    stated = flatten(text)
    restated = sorted(key for key, value in stated.items() if without[key] == value)
    assert not restated, f"conf/experiment/{experiment}.yaml restates {restated}"
    assert flatten(compose([f"+experiment={experiment}"], conf_dir=CONF)).items() >= stated.items()


@pytest.mark.parametrize("subset", ["breastmnist", "bloodmnist"])  # bloodmnist flips both ways
def test_the_medmnist_v2_protocol_trains_without_augmentation_whichever_subset(
    subset: str,
) -> None:
    cfg = compose(["+experiment=medmnist_v2_resnet18", f"data/image={subset}"], conf_dir=CONF)
    assert not any(cfg.data.image.augment.values())
