"""The command line DVC calls: fast to start, clear about bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def _meddx(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meddx", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_stage() -> None:
    result = _meddx("--help")
    assert result.returncode == 0
    for stage in ("acquire_images", "preprocess_images", "train_cnn", "evaluate"):
        assert stage in result.stdout


def test_help_imports_no_heavy_library() -> None:
    probe = (
        "import sys, runpy; sys.argv=['meddx','--help']\n"
        "try:\n    runpy.run_module('meddx', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'pytorch_lightning', 'mlflow', 'monai')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO)
    assert result.stdout.strip().splitlines()[-1] == "HEAVY="


def test_unknown_group_option_fails_with_the_allowed_values() -> None:
    result = _meddx("train_cnn", "cnn=nope")
    assert result.returncode == 2
    assert "cnn/nope" in result.stderr and "basic" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrongly_typed_override_fails_naming_the_key() -> None:
    result = _meddx("train_cnn", "cnn.optimizer.lr=abc")
    assert result.returncode == 2
    assert "cnn.optimizer.lr" in result.stderr


def test_missing_input_names_the_stage_that_produces_it(tmp_path: Path) -> None:
    result = _meddx("train_cnn", f"paths.root={tmp_path}")
    assert result.returncode == 2
    assert "preprocess_images" in result.stderr
    assert not (tmp_path / "models").exists()


def test_compose_check_detects_a_stale_params_file(tmp_path: Path) -> None:
    stale = tmp_path / "params.yaml"
    stale.write_text("seed: 1\n")
    result = _meddx("compose", "--output", str(stale), "--check")
    assert result.returncode == 1
    assert "make params" in result.stderr


def test_an_impossible_number_in_params_fails_before_any_run_or_folder_is_made(
    tmp_path: Path,
) -> None:
    from meddx.config import compose, to_yaml

    params = tmp_path / "params.yaml"
    project = [f"paths.root={tmp_path}", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    text = to_yaml(compose(project, conf_dir=REPO / "conf"))
    params.write_text(text.replace("      train: 1200", "      train: -5"))
    result = _meddx("acquire_images", "--params", str(params))
    assert result.returncode == 2
    assert "data.image.synthetic.train=-5" in result.stderr
    assert "Traceback" not in result.stderr
    assert [path.name for path in tmp_path.iterdir()] == ["params.yaml"]  # no store, no runs/


def test_overrides_may_follow_the_pipeline_option() -> None:
    """`seed_spread` and users write `train_cnn --pipeline volume seed=1`."""
    from meddx.cli import _parser

    args = _parser().parse_intermixed_args(["train_cnn", "--pipeline", "volume", "seed=1"])
    assert (args.command, args.pipeline, args.overrides) == ("train_cnn", "volume", ["seed=1"])
