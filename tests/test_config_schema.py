"""Impossible values fail when the config is composed or loaded, naming the key and the fix."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
from omegaconf import DictConfig

from conftest import CONF
from meddx.config import compose, flatten, load_params, to_yaml
from meddx.config_schema import declared
from meddx.errors import ConfigError

GROUPS = ("data/image", "data/ecg", "cnn", "rnn", "gan", "trainer", "tracking", "hpo", "evaluate")


@functools.cache
def every_option() -> tuple[DictConfig, ...]:
    """The default composition plus one per option of every group and every experiment."""
    choices = [f"{group}={path.stem}" for group in GROUPS for path in (CONF / group).glob("*.yaml")]
    choices += [f"+experiment={path.stem}" for path in (CONF / "experiment").glob("*.yaml")]
    return (compose(conf_dir=CONF), *(compose([choice], conf_dir=CONF) for choice in choices))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("cnn.max_epochs=-1", "cnn.max_epochs=-1"),  # Lightning's "no limit": trained forever
        ("cnn.max_epochs=0", "cnn.max_epochs=0"),
        ("cnn.max_epochs=null", "cnn.max_epochs=null"),
        ("cnn.optimizer.lr=nan", "cnn.optimizer.lr=nan"),
        ("cnn.batch_size=0", "cnn.batch_size=0"),
        ("seed=-1", "seed=-1"),
        (f"seed={2**32}", f"seed={2**32}"),
        ("data.image.synthetic.train=-5", "data.image.synthetic.train=-5"),
        ("cnn.net.dropout=1.5", "cnn.net.dropout=1.5"),
        ("rnn.eval_batch_size=0", "rnn.eval_batch_size=0"),
        ("gan.optimizer_d.betas=[0.5,1.0]", "gan.optimizer_d.betas[1]=1.0"),
        ("hpo.n_workers=0", "hpo.n_workers=0"),
        ("trainer.num_threads=0", "trainer.num_threads=0"),
        ("data.ecg.fs=0", "data.ecg.fs=0"),
        ("evaluate.confidence=1.0", "evaluate.confidence=1.0"),
    ],
)
def test_an_impossible_number_is_refused_naming_the_key_the_value_and_the_range(
    override: str, named: str
) -> None:
    with pytest.raises(ConfigError) as err:
        compose([override], conf_dir=CONF)
    assert f"{named}: " in str(err.value)
    assert " must be an integer" in str(err.value) or " must be a finite number" in str(err.value)


def test_a_params_file_with_an_impossible_number_is_refused_when_loaded(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(to_yaml(compose(conf_dir=CONF)).replace("train: 1200", "train: -5"))
    with pytest.raises(ConfigError, match=r"data\.image\.synthetic\.train=-5: a split size"):
        load_params(params)


def test_every_option_in_conf_is_valid() -> None:
    for cfg in every_option():
        assert cfg.seed == 42  # composing did not raise


def test_every_number_in_conf_has_a_declared_meaning() -> None:
    numeric = {
        key
        for cfg in every_option()
        for key, value in flatten(cfg).items()
        if _is_number(value) or (isinstance(value, list) and any(map(_is_number, value)))
    }
    undeclared = sorted(k for k in numeric if not declared(k))
    assert not undeclared, f"add these keys to meddx.config_schema.SCHEMA: {undeclared}"


def test_a_yaml_syntax_error_in_conf_names_the_file_and_line(tmp_path: Path) -> None:
    conf = shutil.copytree(CONF, tmp_path / "conf")
    broken = conf / "cnn" / "basic.yaml"
    lines = broken.read_text().splitlines()
    broken.write_text("\n".join([*lines[:3], "name: [basic", *lines[4:]]) + "\n")
    with pytest.raises(ConfigError, match=rf"YAML syntax error in {broken}, line \d+"):
        compose(conf_dir=conf)


def test_a_yaml_syntax_error_in_the_params_file_names_the_file_and_line(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("seed: 1\ncnn: {max_epochs: 2\n")
    with pytest.raises(ConfigError, match=rf"YAML syntax error in {params}, line 3"):
        load_params(params)


def test_a_project_root_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"paths\.root=.*missing.*not an existing folder"):
        compose([f"paths.root={tmp_path / 'missing'}"], conf_dir=CONF)
    assert not (tmp_path / "missing").exists()


def test_an_image_pipeline_s_numbers_mean_what_the_default_pipeline_s_do() -> None:
    from meddx.config_schema import problems

    assert problems({"pipelines.volume.data.image.size": 0})  # a side of 0 pixels
    assert not problems({"pipelines.volume.data.image.size": 16})
