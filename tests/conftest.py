"""Shared fixtures: configs composed from conf/, a real MLflow sqlite store, the data mirror."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
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
# The whole DAG (images, ECG, RNN, GAN, tune) in seconds rather than minutes.
TINY_PIPELINE = (
    *TINY_IMAGES,
    "data.ecg.synthetic.beats_per_record=20",
    "rnn.max_epochs=1",
    "rnn.net.hidden=16",
    "gan.max_epochs=1",
    "gan.generate.per_class=10",
    "hpo.n_trials=1",
    "hpo.trial_overrides=['cnn.max_epochs=1']",
    "pipelines.volume.data.image.synthetic.train=48",
    "pipelines.volume.data.image.synthetic.val=24",
    "pipelines.volume.data.image.synthetic.test=24",
    "pipelines.volume.cnn.max_epochs=1",
)


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
