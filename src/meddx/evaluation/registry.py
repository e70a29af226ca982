"""The MLflow model registry: every evaluated model becomes a version; alias `best` marks the
version with the highest validation score (never the test score: the test split does not
select models)."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
from torch import nn

from meddx.tracking import StageRun

ALIAS = "best"


def register(
    run: StageRun,
    net: nn.Module,
    example: np.ndarray,
    name: str,
    val_score: float,
    tags: dict[str, str],
) -> tuple[str, bool]:
    """Log `net` (pytorch flavour, input example) into `run`, register it; (version, is best).

    Pip requirements are given, not inferred: inference loads the model in a subprocess
    and costs many seconds per stage.
    """
    import mlflow.pytorch
    import torch
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model"
        mlflow.pytorch.save_model(
            net, str(local), input_example=example, pip_requirements=[f"torch=={torch.__version__}"]
        )
        run.log_artifact(local, "registered_model")
    client = run.client
    try:
        client.create_registered_model(
            name, description="meddx classifier; alias `best` = highest validation score"
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(
        name,
        source=f"runs:/{run.run_id}/registered_model",
        run_id=run.run_id,
        tags={**tags, "val_score": str(val_score)},
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
    return version.version, is_best
