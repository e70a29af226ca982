"""What training needs from an experiment tracker, and no more: training never imports MLflow.

The stage opens the run (`meddx.tracking.stage_run`) and hands its `StageRun` in; it fits this
protocol structurally, as does any test double. Metrics are buffered by `log_metrics` and sent
by `flush`, which training calls once per epoch: never one tracking call per step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol


class RunLog(Protocol):
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def flush(self) -> None: ...

    def set_tags(self, tags: Mapping[str, Any]) -> None: ...

    def log_artifact(
        self, path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None: ...
