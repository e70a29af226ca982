"""Which process of a (possibly distributed) run tracks: global rank 0 only.

The others get a `NullRun`, so a DDP training of N processes is one MLflow run, not N.
"""

from __future__ import annotations

import os

# Launchers say which process this is before any process group exists: torchrun sets RANK,
# srun SLURM_PROCID, Lightning's own DDP launcher LOCAL_RANK/NODE_RANK for the copies it starts.
RANK_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def is_global_zero() -> bool:
    """Whether this process is rank 0 of its (possibly distributed) run."""
    if os.environ.get("RANK"):
        return int(os.environ["RANK"]) == 0
    return all(int(os.environ.get(var) or 0) == 0 for var in RANK_VARIABLES)
