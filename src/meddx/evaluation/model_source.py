"""Which exported model (`model.pt`, `meddx.models.export`) a user means: a path, an MLflow run,
or a registered model `name@alias` / `name/version`.

The exported model.pt, not a bare network, is what is looked for, because it carries what the
network alone does not: the class names, the task and the preprocessing its inputs need. The
training stages log it under the artifact path `model/` of their run; a registered version
is followed to the model.pt of its source (a run's artifact path, or an MLflow 3 logged
model, as `evaluate` registers: the pyfunc keeps model.pt among its artifacts), else of its
run.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig

from meddx.errors import ConfigError, DataError
from meddx.tracking.uri import tracking_uri

KEY = "predict.model"
MODEL_FILE = "model.pt"
RUN_ARTIFACT = f"model/{MODEL_FILE}"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
REGISTERED = re.compile(r"^(models:/)?(?P<name>[^@/]+)(@(?P<alias>[\w-]+)|/(?P<version>\d+))$")
FORMS = (
    f"a {MODEL_FILE} path (or its folder), an MLflow run id, runs:/<run id>/<artifact path>, "
    "or a registered model as <name>@<alias>, <name>/<version> or models:/<name>@<alias>"
)


def _found(folder: Path, what: str) -> Path:
    candidates = sorted(folder.rglob(MODEL_FILE)) if folder.is_dir() else [folder]
    if not candidates or not candidates[0].is_file():
        raise DataError(f"{what} holds no {MODEL_FILE} (meddx's exported model)")
    return candidates[0]


def _download(uri: str, run_id: str, artifact: str, into: Path, what: str) -> Path:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact, dst_path=str(into), tracking_uri=uri
        )
    except (MlflowException, OSError) as exc:
        raise DataError(f"{what}: cannot download {artifact!r} from run {run_id}: {exc}") from None
    return _found(Path(local), what)


def _from_uri(uri: str, source: str, into: Path, what: str) -> Path:
    """The model.pt under an artifact URI (a logged model's location: the pyfunc's
    `artifacts/model.pt`)."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=str(into), tracking_uri=uri
        )
    except (MlflowException, OSError) as exc:
        raise DataError(f"{what}: cannot download its source {source}: {exc}") from None
    return _found(Path(local), what)


def _registered(uri: str, ref: dict[str, str | None], into: Path, spec: str) -> Path:
    """The model.pt behind a registered version (`ref`: name, and alias or version)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    try:
        if ref["version"] is not None:
            version = client.get_model_version(str(ref["name"]), ref["version"])
        else:
            version = client.get_model_version_by_alias(str(ref["name"]), str(ref["alias"]))
    except MlflowException as exc:
        raise DataError(
            f"{KEY}={spec}: no such registered model version in {uri} ({exc.message})"
        ) from None
    what = f"{KEY}={spec} (version {version.version}, run {version.run_id})"
    source = str(version.source or "")
    prefix = f"runs:/{version.run_id}/"
    if source.startswith(prefix):
        with contextlib.suppress(DataError):
            return _download(uri, version.run_id, source[len(prefix) :], into / "source", what)
    elif source:
        with contextlib.suppress(DataError):
            return _from_uri(uri, source, into / "source", what)
    return _download(uri, version.run_id, RUN_ARTIFACT, into / "run", what)


@contextlib.contextmanager
def model_file(spec: str | None, cfg: DictConfig) -> Iterator[Path]:
    """The local model.pt that `spec` names (downloads live only inside the block)."""
    if not spec:
        raise ConfigError(f"{KEY} is not set: give {FORMS}")
    spec = str(spec)
    local = Path(spec)
    if local.exists():
        yield _found(local, f"{KEY}={spec}")
        return
    with tempfile.TemporaryDirectory(prefix="meddx-model-") as tmp:
        into, uri = Path(tmp), tracking_uri(cfg)
        if spec.startswith("runs:/"):
            run_id, _, artifact = spec[len("runs:/") :].partition("/")
            yield _download(uri, run_id, artifact or RUN_ARTIFACT, into, f"{KEY}={spec}")
        elif RUN_ID.match(spec):
            yield _download(uri, spec, RUN_ARTIFACT, into, f"{KEY}={spec}")
        elif registered := REGISTERED.match(spec):
            yield _registered(uri, registered.groupdict(), into, spec)
        else:
            raise DataError(f"{KEY}={spec}: no such file, and not {FORMS}")
