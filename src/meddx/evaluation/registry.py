"""The MLflow model registry: every evaluated model becomes a version; alias `best` marks the
version with the highest validation score (never the test score: the test split does not
select models).

What is registered is an MLflow 3 logged model, linked to the evaluate run (the run page's
"Logged models"): the pyfunc of `meddx.evaluation.serving` (raw images in, the model's own
preprocessing inside), with model.pt and an ONNX copy of the network (checked against PyTorch
with onnxruntime on the test split) among its artifacts. That model.pt is the trained one plus
the calibration `evaluate` fitted on the validation split (`info["calibration"]`), so `predict`
on the registered model and the served model report calibrated confidences. It is logged
through the run's client rather than `mlflow.pyfunc.log_model`, which needs MLflow's global
active run that no stage uses (meddx.tracking).
"""

from __future__ import annotations

import importlib.metadata
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from meddx.data.intensity import processed_to_unit, unit_to_stored
from meddx.models import export, onnx_export
from meddx.tracking import StageRun

ALIAS = "best"
LOGGED_NAME = "model"
ONNX_FILE = "model.onnx"
ONNX_TOLERANCE = 1e-4
# What the pyfunc imports besides meddx; pinned to the versions installed (given, not inferred:
# inference loads the model in a subprocess and costs many seconds per stage).
REQUIREMENTS = ("torch", "numpy", "pandas", "monai", "hydra-core", "omegaconf", "mlflow")


def requirements() -> list[str]:
    return [f"{name}=={importlib.metadata.version(name)}" for name in REQUIREMENTS]


def raw_examples(x: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Processed test images back to the raw uint8 `(N, H, W[, C])` a user would send."""
    return unit_to_stored(processed_to_unit(x, info["image"]["normalization"]))


def signature(example: np.ndarray, names: list[str], calibrated: bool) -> Any:
    """A batch of uint8 images of any size (the model resizes them), calls per class out
    (`serving.columns`)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    from meddx.evaluation.serving import columns

    shape = (-1, -1, -1, *example.shape[3:])
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), shape)]),
        outputs=Schema(
            [ColSpec("string", "label"), ColSpec("double", "confidence")]
            + [ColSpec("double", column) for column in columns(names, calibrated)[2:]]
        ),
    )


def _save_pyfunc(
    local: Path, model_pt: Path, net: nn.Module, x: np.ndarray, info: dict[str, Any]
) -> float:
    """The pyfunc model folder at `local` with model.pt and model.onnx; the ONNX parity."""
    import mlflow.pyfunc

    from meddx.evaluation.serving import MODEL_FILE, ImageClassifier

    calibration = info.get("calibration")
    stored = export.save_with_info(model_pt, local.parent / MODEL_FILE, calibration=calibration)
    onnx_path = onnx_export.export(net, x, local.parent / ONNX_FILE)
    parity = onnx_export.max_abs_difference(onnx_path, net, x)
    example = raw_examples(x[:2], info)
    mlflow.pyfunc.save_model(
        str(local),
        python_model=ImageClassifier(),
        artifacts={MODEL_FILE: str(stored), ONNX_FILE: str(onnx_path)},
        signature=signature(example, list(info["class_names"]), calibration is not None),
        input_example=example,
        pip_requirements=requirements(),
    )
    return parity


def _logged_model(
    run: StageRun, model_pt: Path, net: nn.Module, x: np.ndarray, info: dict[str, Any]
) -> tuple[Any, float]:
    """A READY logged model of the run holding the pyfunc; (it, the ONNX parity)."""
    from mlflow.entities import LoggedModelOutput

    client = run.client
    experiment = client.get_run(run.run_id).info.experiment_id
    logged = client.create_logged_model(
        experiment, name=LOGGED_NAME, source_run_id=run.run_id, model_type="pyfunc"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / LOGGED_NAME
            parity = _save_pyfunc(local, model_pt, net, x, info)
            client.log_model_artifacts(logged.model_id, str(local))
    except BaseException:
        client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    client.set_logged_model_tags(
        logged.model_id, {"meddx.onnx_max_abs_diff": f"{parity:.3g}", "meddx.onnx": ONNX_FILE}
    )
    ready = client.finalize_logged_model(logged.model_id, "READY")
    # An output of the run, as mlflow.<flavour>.log_model inside an active run makes it: what
    # the run page's "Logged models" lists (source_run_id alone leaves it "—").
    client.log_outputs(run.run_id, [LoggedModelOutput(ready.model_id, 0)])
    return ready, parity


def register(
    run: StageRun,
    model_pt: Path,
    net: nn.Module,
    x: np.ndarray,
    info: dict[str, Any],
    name: str,
    val_score: float,
    tags: dict[str, str],
) -> tuple[str, bool]:
    """Log the model (pyfunc, ONNX checked on `x`, the test images) into `run` and register
    it; (version, is best). An ONNX copy outside the tolerance is a failure, not a warning."""
    from mlflow.exceptions import MlflowException

    logged, parity = _logged_model(run, model_pt, net, x, info)
    if parity > ONNX_TOLERANCE:
        raise RuntimeError(
            f"the ONNX copy of {name} differs from PyTorch by {parity:.3g} > {ONNX_TOLERANCE} "
            "on the test split (onnxruntime): the exporter mistranslated an operator"
        )
    client = run.client
    try:
        client.create_registered_model(
            name, description="meddx classifier; alias `best` = highest validation score"
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    # The artifact location, not models:/<id>: MLflow resolves that through the global
    # tracking URI, not this client's.
    version = client.create_model_version(
        name,
        source=logged.artifact_location,
        run_id=run.run_id,
        tags={**tags, "val_score": str(val_score)},
        model_id=logged.model_id,
    )
    try:
        best = client.get_model_version_by_alias(name, ALIAS)
        best_score = float(best.tags.get("val_score", "nan"))
    except MlflowException:
        best_score = -math.inf
    is_best = not math.isfinite(best_score) or val_score >= best_score
    if is_best:
        client.set_registered_model_alias(name, ALIAS, version.version)
    run.set_tags({"meddx.registered_model": f"{name}/{version.version}"})
    run.log_metrics({"onnx_max_abs_diff": parity})
    return version.version, is_best
