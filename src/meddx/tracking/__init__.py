"""MLflow tracking for every stage: one run per stage execution, provenance tags, batched metrics.

Stages never call MLflow per step, nor MLflow's global active-run state: a stage opens its
run with `stage_run` (stage.py) and logs through the `StageRun` handle it gets (run.py), which
buffers metrics and goes offline, to the spool, when the store fails; `upload` (spool.py)
sends the spool later. Every write to the store goes through a `StageRun`, so the spool
covers all of them. The other modules: where the store is and how patiently to talk to it
(uri.py), which process of a distributed run tracks (ranks.py), the store's client and the
runs it already holds (store.py). Depends on the ground layer only.
"""

from meddx.tracking.datasets import DatasetRead
from meddx.tracking.run import StageRun
from meddx.tracking.stage import stage_run

__all__ = ["DatasetRead", "StageRun", "stage_run"]
