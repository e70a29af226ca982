"""Running trials: a worker optimizes the shared study until `hpo.n_trials` are used up.

A trial is the `Target`'s `train` (handed in by the stage: hpo imports no stage) on the base
config plus the trial's overrides, in a nested MLflow run under the study's parent run.
Workers are separate processes (spawned: a forked child would share the parent's sqlite
connections) that meet only in the storage, so the same code serves one worker, several on
one machine, or several machines.
"""

from __future__ import annotations

import copy
import math
import multiprocessing
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from meddx.config import with_overrides
from meddx.errors import ConfigError, MeddxError
from meddx.hpo.budget import remaining, stop_when_spent
from meddx.hpo.space import Param, parse_space, to_overrides
from meddx.hpo.study import load_study
from meddx.paths import Layout
from meddx.tracking import stage_run

if TYPE_CHECKING:
    import optuna
    from pytorch_lightning.callbacks import Callback

    from meddx.tracking import StageRun

STAGE = "tune"
STATE_TAG = "meddx.trial_state"  # complete | pruned | failed


@dataclass(frozen=True)
class Target:
    """What a trial optimises: module-level functions, so a spawned worker can unpickle them.

    `load_data(cfg) -> (data, input files, facts)` runs once per worker; `train(cfg, data,
    inputs, run, callbacks) -> metrics` once per trial, with the pruning callback; `sections`
    are the config sections it reads, logged as each trial run's params.
    """

    load_data: Callable[[DictConfig], tuple[Any, list[Path], dict[str, Any]]]
    train: Callable[[DictConfig, Any, list[Path], StageRun, list[Callback]], dict[str, Any]]
    sections: tuple[str, ...]


@dataclass(frozen=True)
class Job:
    """What every worker needs; plain values, since it crosses a process spawn."""

    target: Target
    cfg_yaml: str
    conf_dir: str
    storage: str
    study: str
    parent_run_id: str  # the ref of the stage's run (StageRun.ref): an id, or unsent:<id>
    n_workers: int
    deadline: float | None  # wall-clock time after which no worker starts a trial


class Objective:
    """One trial: compose, train with pruning, return the best validation `hpo.metric`."""

    def __init__(
        self,
        cfg: DictConfig,
        job: Job,
        params: list[Param],
        data: Any,
        inputs: list[Path],
        worker: int,
    ) -> None:
        self.cfg = cfg
        self.job = job
        self.params = params
        self.data = data
        self.inputs = inputs
        self.worker = worker
        self.fixed = list(cfg.hpo.trial_overrides)
        if job.n_workers > 1:  # workers share the cores: one thread each, no oversubscription
            self.fixed.append("trainer.num_threads=1")

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        from meddx.hpo.pruning import OptunaPruning

        overrides = to_overrides(self.params, {p.name: p.suggest(trial) for p in self.params})
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("worker", self.worker)
        trial_cfg = with_overrides(self.cfg, [*overrides, *self.fixed], Path(self.job.conf_dir))
        scratch = Layout.of(self.cfg).scratch(STAGE) / f"{self.job.study}-{trial.number}"
        work_cfg = copy.deepcopy(trial_cfg)  # training writes its files below the scratch dir
        work_cfg.paths.root = str(scratch)
        metric = self.cfg.hpo.metric
        pruning = OptunaPruning(trial, metric)
        with stage_run(
            trial_cfg,
            STAGE,
            self.inputs,
            run_name=f"trial {trial.number}",
            parent_run_id=self.job.parent_run_id,
            sections=self.job.target.sections,
        ) as tracked:
            trial.set_user_attr("mlflow_run_id", tracked.ref)  # a spooled run's too
            tracked.set_tags(
                {
                    "optuna.study_name": self.job.study,
                    "optuna.trial_number": trial.number,
                    "meddx.worker": self.worker,
                    "meddx.overrides": " ".join(overrides),
                    STATE_TAG: "running",
                }
            )
            try:
                metrics = self.job.target.train(
                    work_cfg, self.data, self.inputs, tracked, [pruning]
                )
            except BaseException:
                tracked.set_tags({STATE_TAG: "failed"})
                raise
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            value = metrics.get(f"best_{metric}")
            finite = value is not None and math.isfinite(value)
            state = "complete" if finite else "failed"
            if pruning.pruned_at is not None:
                state = "pruned"
            tracked.set_tags({STATE_TAG: state})
        if pruning.pruned_at is not None:
            raise optuna.TrialPruned(f"{metric} at epoch {pruning.pruned_at}")
        if value is None:
            raise ConfigError(
                f"hpo.metric={metric!r} is not a validation metric of training; "
                f"known: {sorted(k.removeprefix('best_') for k in metrics)}"
            )
        return float(value)  # NaN: Optuna records the trial as failed and goes on


def run_worker(job: Job, worker: int) -> None:
    """Take trials from the study until its budget is used, the deadline passes, or none left."""
    cfg = OmegaConf.create(job.cfg_yaml)
    OmegaConf.set_struct(cfg, True)
    assert isinstance(cfg, DictConfig)
    params = parse_space(cfg.hpo.space, Path(job.conf_dir))
    data, inputs, _ = job.target.load_data(cfg)
    study = load_study(cfg, job.storage, job.study, worker)
    n_trials = int(cfg.hpo.n_trials)
    left = remaining(study, n_trials)
    timeout = None if job.deadline is None else job.deadline - time.time()
    if left <= 0 or (timeout is not None and timeout <= 0):
        return
    study.optimize(
        Objective(cfg, job, params, data, inputs, worker),
        n_trials=left,
        timeout=timeout,
        catch=(Exception,),
        callbacks=[stop_when_spent(study, n_trials)],
    )


def run_workers(job: Job) -> None:
    """One worker in this process, or `n_workers` spawned processes on the same storage."""
    if job.n_workers == 1:
        run_worker(job, 0)
        return
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=run_worker, args=(job, i), name=f"meddx-tune-{i}")
        for i in range(job.n_workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = {p.name: p.exitcode for p in processes if p.exitcode != 0}
    if failed:
        raise MeddxError(
            f"HPO worker process(es) failed: {failed}; the study keeps every "
            "finished trial, rerun the stage to continue it"
        )
