"""Closing MLflow runs whose process died without closing them (SIGKILL, the OOM killer, a crash).

Such a run stays RUNNING forever and looks like a training still in progress. Every stage
run records the process that owns it (`meddx.pid`, `meddx.host`); when the same stage starts
again in the same experiment, each of that stage's RUNNING runs whose process is gone is
marked KILLED, with a `meddx.closed` tag saying why and by which run.

The rule: only runs started on this host are judged, by `os.kill(pid, 0)`. A run from another
host is left alone, since its process cannot be seen from here and age proves nothing (a CPU
training can rightly run for days). So are runs without the tags (started before this rule).
A pid that the system has reused makes a dead run look alive, so the error is always to leave
a dead run RUNNING, never to close a live one.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

PID_TAG = "meddx.pid"
HOST_TAG = "meddx.host"
CLOSED_TAG = "meddx.closed"


def process_tags() -> dict[str, str]:
    """Which process owns a run, for `close_orphans` in a later one."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def close_orphans(client: MlflowClient, run_id: str, stage: str) -> list[str]:
    """Mark KILLED the RUNNING runs of `stage` beside `run_id` whose process on this host is gone.

    Returns their ids. Tidying must never cost the stage: a store error is reported and ignored.
    """
    host = socket.gethostname()
    closed = []
    try:
        experiment_id = client.get_run(run_id).info.experiment_id
        running = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`meddx.stage` = '{stage}' and attributes.status = 'RUNNING'",
        )
        for run in running:
            tags = run.data.tags
            pid = tags.get(PID_TAG)
            if run.info.run_id == run_id or tags.get(HOST_TAG) != host or pid is None:
                continue
            if is_alive(int(pid)):
                continue
            reason = f"process {pid} on {host} ended without closing the run; closed by {run_id}"
            client.set_tag(run.info.run_id, CLOSED_TAG, reason)
            client.set_terminated(run.info.run_id, status="KILLED")
            closed.append(run.info.run_id)
    except Exception as exc:  # any failure of the store
        print(f"meddx: could not close runs left RUNNING by dead processes: {exc}", file=sys.stderr)
    return closed
