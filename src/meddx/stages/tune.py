"""Stage `tune`: hyperparameter search with Optuna over the train_cnn config.

Writes models/tune/best.yaml, the config values of the best trial: a params file of train_cnn
in dvc.yaml (meddx.hpo.best), so `dvc repro` goes tune -> train_cnn with the best
configuration and `dvc params diff` shows it; `hpo.n_trials=0` skips the search and writes an
empty one. The study lives in its storage (not a DVC out), so a rerun (after a kill, or
with more `hpo.n_trials`) resumes it. One MLflow parent run per execution, one nested run per
trial; the parent carries the study's best trial, plots and trial table.
"""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from meddx.config import default_conf_dir
from meddx.errors import ConfigError, MeddxError
from meddx.hpo.best import write_best
from meddx.hpo.budget import fail_orphans
from meddx.hpo.space import check_space, parse_space, to_overrides, to_settings
from meddx.hpo.storage import is_local, redacted, storage_url
from meddx.hpo.study import create_study, study_name
from meddx.hpo.trials import STAGE, STATE_TAG, Job, Target, run_workers
from meddx.io import write_json
from meddx.paths import Layout, require
from meddx.tracking import StageRun, stage_run

if TYPE_CHECKING:
    import optuna

SECTIONS = ("seed", "data.image", "cnn", "trainer", "hpo")
BEST_ATTR = "best_mlflow_run_id"


def _skip(cfg: DictConfig, layout: Layout) -> dict[str, Any]:
    with stage_run(cfg, STAGE, run_name=f"{STAGE} skipped", sections=SECTIONS) as tracked:
        tracked.set_tags({"meddx.hpo_skipped": "true"})
        write_best(
            layout.tuned_params, {}, "hpo.n_trials=0: no search, params.yaml is trained as is"
        )
        metrics = {"n_trials": 0}
        write_json(layout.metrics(STAGE), metrics)
    return metrics


def _check_counts(cfg: DictConfig) -> None:
    for key, minimum in (("n_trials", 0), ("n_workers", 1)):
        value = cfg.hpo[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"hpo.{key} must be an integer >= {minimum}, got {value!r}")
    if cfg.hpo.timeout is not None and cfg.hpo.timeout <= 0:
        raise ConfigError(f"hpo.timeout must be positive seconds or null, got {cfg.hpo.timeout}")


def _counts(study: optuna.Study) -> dict[str, int]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    return {
        "n_trials": count[TrialState.COMPLETE] + count[TrialState.PRUNED] + count[TrialState.FAIL],
        "n_complete": count[TrialState.COMPLETE],
        "n_pruned": count[TrialState.PRUNED],
        "n_failed": count[TrialState.FAIL],
    }


def _tag_best(study: optuna.Study, tracked: StageRun, best: optuna.trial.FrozenTrial) -> str:
    """Tag the best trial's run (and untag the previous best of a resumed study).

    Runs are named by their refs (`StageRun.ref`), so a run still in the offline spool is
    tagged there and keeps the tag through `meddx upload`.
    """
    best_run = best.user_attrs["mlflow_run_id"]
    previous = study.user_attrs.get(BEST_ATTR)
    if previous and previous != best_run:
        tracked.on_run(previous).set_tags({"meddx.best_trial": "false"})
    tracked.on_run(best_run).set_tags({"meddx.best_trial": "true"})
    study.set_user_attr(BEST_ATTR, best_run)
    return best_run


def _close_orphans(orphans: list[optuna.trial.FrozenTrial], tracked: StageRun) -> None:
    """Runs of trials killed with a previous execution: mark them as such in MLflow too."""
    for trial in orphans:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id:
            trial_run = tracked.on_run(run_id)
            trial_run.set_tags({STATE_TAG: "failed", "meddx.error": "killed (orphaned trial)"})
            trial_run.close("KILLED")


def run(cfg: DictConfig) -> dict[str, Any]:
    started = time.perf_counter()
    layout = Layout.of(cfg)
    hpo = cfg.hpo
    _check_counts(cfg)
    if hpo.n_trials == 0:
        return _skip(cfg, layout)
    conf_dir = default_conf_dir()
    params = parse_space(hpo.space, conf_dir)
    check_space(params, cfg, list(hpo.trial_overrides), conf_dir)
    from meddx.hpo.report import save_plots, trials_csv
    from meddx.provenance import path_digest
    from meddx.training import images  # Lightning: only once a study really runs

    inputs = [
        require(layout.processed_images, layout.root),
        require(layout.processed_images_meta, layout.root),
    ]
    url = storage_url(cfg)
    name = study_name(cfg, [path_digest(p) for p in inputs])
    study = create_study(cfg, url, name)
    orphans = fail_orphans(study) if is_local(url) else []
    shutil.rmtree(layout.scratch(STAGE), ignore_errors=True)  # what killed trials left behind
    with stage_run(cfg, STAGE, inputs, run_name=f"{STAGE} {name}", sections=SECTIONS) as tracked:
        tracked.set_tags(
            {
                "optuna.study_name": name,
                "optuna.storage": redacted(url),
                "meddx.resumed_trials": len(study.trials) - len(orphans),
            }
        )
        _close_orphans(orphans, tracked)
        deadline = None if hpo.timeout is None else time.time() + float(hpo.timeout)
        run_workers(
            Job(
                target=Target(images.load_data, images.train, images.SECTIONS),
                cfg_yaml=OmegaConf.to_yaml(cfg),
                conf_dir=str(conf_dir),
                storage=url,
                study=name,
                parent_run_id=tracked.ref,
                n_workers=hpo.n_workers,
                deadline=deadline,
            )
        )
        counts = _counts(study)
        tracked.log_metrics(counts)
        if not counts["n_complete"]:
            raise MeddxError(
                f"No trial of study '{name}' completed ({counts}); the failed "
                f"trials' errors are on their MLflow runs (tag meddx.error)"
            )
        best = study.best_trial
        overrides = to_overrides(params, best.params)
        best_run = _tag_best(study, tracked, best)
        tracked.set_tags(
            {
                "optuna.best_trial": best.number,
                "meddx.best_run_id": best_run,
                "meddx.best_overrides": " ".join(overrides),
            }
        )
        plots_dir = layout.scratch(STAGE) / f"{name}-plots"
        skipped = save_plots(study, plots_dir)
        if skipped:
            tracked.set_tags({f"meddx.plot_skipped.{k}": v[:500] for k, v in skipped.items()})
        tracked.log_artifact(plots_dir, "optuna")
        shutil.rmtree(plots_dir, ignore_errors=True)
        tracked.log_text(trials_csv(study), "optuna/trials.csv")
        metrics = {
            "best_value": float(best.value),
            "best_trial": best.number,
            **counts,
        }
        write_best(
            layout.tuned_params,
            to_settings(params, best.params),
            f"study {name}, trial {best.number}: {hpo.metric} {best.value!r} ({hpo.direction})",
        )
        write_json(layout.metrics(STAGE), metrics)
        # Wall time goes to MLflow only: the DVC metrics file must reproduce exactly.
        tracked.log_metrics(
            {"best_value": metrics["best_value"], "wall_s": time.perf_counter() - started}
        )
        tracked.log_artifact(layout.tuned_params, "best")
    return metrics
