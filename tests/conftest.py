"""Shared fixtures: configs composed from conf/, a real MLflow sqlite store, the data mirror."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from omegaconf import DictConfig

from meddx.config import compose

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"

# Small enough for seconds, big enough that training measurably learns.
TINY_IMAGES = (
    "data.image.synthetic.train=160",
    "data.image.synthetic.val=80",
    "data.image.synthetic.test=80",
    "cnn.max_epochs=2",
    "cnn.batch_size=32",
)


# The same tiny DAG written into a copy's conf/ files rather than given as overrides, so that
# `dvc exp run -S` (DVC's Hydra composition of conf/) keeps it tiny too.
TINY_CONF = {
    "conf/data/image/synthetic.yaml": {
        ("synthetic", "train"): 160,
        ("synthetic", "val"): 80,
        ("synthetic", "test"): 80,
    },
    "conf/cnn/basic.yaml": {("max_epochs",): 2, ("batch_size",): 32},
    "conf/rnn/lstm.yaml": {("max_epochs",): 1, ("net", "hidden"): 16},
    "conf/data/ecg/synthetic.yaml": {("synthetic", "beats_per_record"): 20},
    "conf/gan/base/default.yaml": {("max_epochs",): 1, ("generate", "per_class"): 10},
    "conf/hpo/basic.yaml": {("n_trials",): 2, ("trial_overrides",): ["cnn.max_epochs=1"]},
    "conf/data/image/synthetic3d.yaml": {
        ("synthetic", "train"): 48,
        ("synthetic", "val"): 24,
        ("synthetic", "test"): 24,
    },
    "conf/pipelines/volume.yaml": {("cnn", "max_epochs"): 1},
}


def run_ok(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`cmd` in `cwd`; a test failure with its output when it fails."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    output = f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{output}"
    return result


def _shrink(repo: Path) -> None:
    for name, changes in TINY_CONF.items():
        path = repo / name
        text = path.read_text()
        header = "".join(line for line in text.splitlines(True) if line.startswith("# @package"))
        data = yaml.safe_load(text)
        for keys, value in changes.items():
            node = data
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = value
        path.write_text(header + yaml.safe_dump(data, sort_keys=False))


@dataclass(frozen=True)
class TinyPipeline:
    """A committed copy of this checkout on TINY_CONF after one `dvc repro` (results committed
    on top): `root`, the `env` its commands run in, what `dvc repro` printed, and the commit
    the stages ran at."""

    root: Path
    env: dict[str, str]
    repro_output: str
    ran_at: str


def copy_project(source: Path, target: Path) -> Path:
    """A copy of a built project (git, DVC cache, outputs, MLflow store) that a test may change
    without changing it for the others; a few MB, seconds, not a rebuild."""
    shutil.copytree(source, target, symlinks=True)
    return target


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> TinyPipeline:
    """The whole DAG (images, volume, ECG, GAN, tune) built once for the session: building it
    costs minutes, and the pipeline tests read it (or change a copy_project of it)."""
    root = tmp_path_factory.mktemp("pipeline") / "project"
    files = run_ok(["git", "ls-files", "-co", "--exclude-standard"], REPO, dict(os.environ))
    for name in files.stdout.split():
        source = REPO / name
        if source.is_file() and not name.startswith(("reports/", "dvc.lock")):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "MEDDX_PIPELINE", "MEDDX_CONF_DIR", "DVC_"))
    }
    # Stages run `python -m meddx` from the copy's own code, as in a clone.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(root / "src")
    _shrink(root)
    run_ok([sys.executable, "-m", "meddx", "compose", "--output", "params.yaml"], root, env)
    git = ["git", "-c", "user.name=meddx", "-c", "user.email=ci@meddx"]
    for cmd in (["git", "init", "-q", "-b", "main"], [*git, "add", "-A"]):
        run_ok(cmd, root, env)
    run_ok([*git, "commit", "-qm", "tiny pipeline"], root, env)
    ran_at = run_ok(["git", "rev-parse", "HEAD"], root, env).stdout.strip()
    output = run_ok(["dvc", "repro"], root, env).stdout
    run_ok([*git, "add", "-A"], root, env)
    run_ok([*git, "commit", "-qm", "results"], root, env)
    return TinyPipeline(root, env, output, ran_at)


@pytest.fixture(scope="session")
def tracking_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One real MLflow sqlite store for the session (creating one costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def make_cfg(
    tmp_path: Path, tracking_db: str, request: pytest.FixtureRequest
) -> Callable[..., DictConfig]:
    """Compose conf/ with the project rooted in tmp_path and an experiment of the test's own."""
    # Parametrized ids ("test_x[a-b]") are not valid override values: keep word characters.
    experiment = re.sub(r"[^\w.-]+", "_", request.node.name)[:200]

    def _make(*overrides: str) -> DictConfig:
        return compose(
            [
                f"paths.root={tmp_path}",
                f"tracking.uri={tracking_db}",
                f"tracking.experiment={experiment}",
                *overrides,
            ],
            conf_dir=CONF,
        )

    return _make


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The real-data mirror; a skip on a developer machine without it, a failure under CI."""
    configured = os.environ.get("MEDDX_DATA_MIRROR")
    path = Path(configured) if configured else REPO.parent / "shared" / "data"
    if path.is_dir():
        return path.resolve()
    message = f"real-data mirror not found at {path} (set MEDDX_DATA_MIRROR)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


# One PneumoniaMNIST epoch of a narrow ConvNet: seconds, and a model whose probabilities vary.
PNEUMONIA_TINY = (
    "data/image=pneumoniamnist",
    "cnn=convnet",
    "cnn.net.channels=[8,16,16]",
    "cnn.max_epochs=1",
    "evaluate.bootstrap=0",
    "evaluate.gradcam.per_class=1",
)


@pytest.fixture(scope="session")
def pneumonia(tmp_path_factory: pytest.TempPathFactory, tracking_db: str, mirror: Path):
    """A project that trained, evaluated and registered a tiny pneumonia model (real data);
    its config. Shared by the predict and serving tests: training it once costs ~30 s."""
    from meddx.stages import acquire_images, evaluate, preprocess_images, train_cnn

    root = tmp_path_factory.mktemp("pneumonia")
    cfg = compose(
        [
            f"paths.root={root}",
            f"paths.mirror={mirror}",
            f"tracking.uri={tracking_db}",
            "tracking.experiment=pneumonia-serve",
            *PNEUMONIA_TINY,
        ],
        conf_dir=CONF,
    )
    for stage in (acquire_images, preprocess_images, train_cnn, evaluate):
        stage.run(cfg)
    return cfg
