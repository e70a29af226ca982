"""The portable numeric profile: the same bits whatever vector level the CPU (or caller) offers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from conftest import REPO, TINY_IMAGES
from meddx import cli, numerics
from meddx.errors import ConfigError

pytestmark = pytest.mark.skipif(not numerics.pins_apply(), reason="needs an x86-64 CPU with AVX2")

# What differs between CPUs, set by the caller: the widest ATen level, oneDNN's ISA, MKL's branch.
OTHER_CPUS = (
    {"ATEN_CPU_CAPABILITY": "avx512"},
    {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
)


def test_portable_overrides_the_instruction_sets_the_caller_set() -> None:
    env = numerics.environment("portable", 2, {"ATEN_CPU_CAPABILITY": "avx512", "HOME": "/h"})
    assert env["ATEN_CPU_CAPABILITY"] == "avx2"
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert env["MKL_CBWR"] == "COMPATIBLE"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert env["HOME"] == "/h"


def test_native_leaves_the_callers_settings() -> None:
    env = numerics.environment("native", 2, {"ATEN_CPU_CAPABILITY": "avx512"})
    assert env["ATEN_CPU_CAPABILITY"] == "avx512"
    assert "MKL_CBWR" not in env


def test_an_unknown_profile_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.numerics"):
        numerics.environment("fast", 2, {})


def test_identity_needs_portable_on_both_sides_but_not_the_same_cpu_model() -> None:
    here = {"profile": "portable", "capability": "AVX2", "cpu": "AMD EPYC"}
    assert numerics.identical_numerics(here, {**here, "cpu": "Intel Xeon"})
    assert not numerics.identical_numerics(here, {**here, "capability": "AVX512"})
    assert not numerics.identical_numerics(here, {**here, "profile": "native"})


def test_identity_needs_the_same_cpu_vendor_and_l2_size() -> None:
    """Measured: Zen 4 rebuilt Zen 5's metrics exactly; an Intel Xeon did not."""
    here = {"profile": "portable", "vendor": "AuthenticAMD", "l2_cache": "1024K"}
    assert not numerics.identical_numerics(here, {**here, "vendor": "GenuineIntel"})
    assert not numerics.identical_numerics(here, {**here, "l2_cache": "1280K"})


def test_the_facts_name_this_cpu_s_vendor_and_l2_size() -> None:
    facts = numerics.facts()
    assert facts["vendor"] != "" and facts["l2_cache"] != ""


def _train(root: Path, profile: str, caller: dict[str, str]) -> dict[str, torch.Tensor]:
    """`python -m meddx train_cnn` as DVC runs it, in a process the caller configured."""
    env = {**os.environ, **caller}
    env.pop(numerics.REEXEC_MARKER, None)
    command = [sys.executable, "-m", "meddx", "train_cnn", *TINY_IMAGES, f"paths.root={root}"]
    command += [f"tracking.uri=sqlite:///{root / 'mlflow.db'}", f"trainer.numerics={profile}"]
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
    facts = json.loads((root / "reports/metrics/train_cnn.json").read_text())["numerics"]
    assert facts["profile"] == profile
    blob = torch.load(root / "models/cnn/model.pt", map_location="cpu", weights_only=False)
    return blob.get("state_dict", blob)


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["portable", "native"])
def test_one_training_on_simulated_cpus_is_identical_only_under_portable(
    tmp_path: Path, make_cfg: Callable[..., DictConfig], profile: str
) -> None:
    tracking = make_cfg().tracking.uri
    for stage in ("acquire_images", "preprocess_images"):
        cli.main([stage, *TINY_IMAGES, f"paths.root={tmp_path}", f"tracking.uri={tracking}"])
    weights = []
    for i, caller in enumerate(OTHER_CPUS):
        root = tmp_path / f"cpu{i}"
        shutil.copytree(tmp_path / "data", root / "data")
        weights.append(_train(root, profile, caller))
    assert _same(*weights) == (profile == "portable")
