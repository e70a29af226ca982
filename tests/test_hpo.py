"""The tune stage: a search space from YAML, Optuna studies that prune, resume and run in parallel,
every trial in MLflow, and the best values carried into train_cnn as a declared params file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from conftest import CONF, REPO, TINY_IMAGES
from meddx import cli
from meddx.config import with_overrides
from meddx.errors import ConfigError, TrackingError
from meddx.hpo import budget
from meddx.hpo.best import apply_best, as_overrides, read_best, write_best
from meddx.hpo.space import check_space, parse_space, to_overrides, to_settings
from meddx.paths import Layout
from meddx.stages import acquire_images, preprocess_images, tune
from meddx.tracking.run import sent_run_id

# Trials of one epoch on the tiny synthetic images: seconds each.
TINY_STUDY = (*TINY_IMAGES, "hpo.trial_overrides=['cnn.max_epochs=1']")


def _prepare(cfg) -> None:
    acquire_images.run(cfg)
    preprocess_images.run(cfg)


def _study(cfg, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{cfg.paths.root}/optuna.db")


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if t.state.is_finished()]


# --- the search space --------------------------------------------------------------------------


def test_space_parses_every_distribution_type():
    params = parse_space(
        {
            "lr": {
                "key": "cnn.optimizer.lr",
                "type": "float",
                "low": 1.0e-4,
                "high": 0.1,
                "log": True,
            },
            "dropout": {
                "key": "cnn.net.dropout",
                "type": "float",
                "low": 0.0,
                "high": 0.5,
                "step": 0.1,
            },
            "hidden": {"key": "cnn.net.hidden", "type": "int", "low": 16, "high": 256, "log": True},
            "batch": {"key": "cnn.batch_size", "type": "int", "low": 16, "high": 64, "step": 16},
            "optimizer": {
                "key": "cnn.optimizer._target_",
                "type": "categorical",
                "choices": ["torch.optim.Adam", "torch.optim.SGD"],
            },
            "network": {"key": "cnn", "type": "categorical", "choices": ["basic"]},
        },
        CONF,
    )
    by_name = {p.name: p for p in params}
    assert params[0].name == "network" and params[0].group  # group choices go first
    assert by_name["lr"].log and (by_name["lr"].low, by_name["lr"].high) == (1.0e-4, 0.1)
    assert by_name["dropout"].step == 0.1 and not by_name["dropout"].log
    assert by_name["hidden"].type == "int" and by_name["hidden"].log
    assert by_name["batch"].step == 16
    assert by_name["optimizer"].choices == ("torch.optim.Adam", "torch.optim.SGD")
    assert not by_name["optimizer"].group


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"key": "cnn.optimizer.lr", "type": "flaot", "low": 0.1, "high": 1.0}, "use one of float"),
        ({"key": "cnn.optimizer.lr", "type": "float", "low": 1.0, "high": 0.1}, "must be below"),
        (
            {"key": "cnn.optimizer.lr", "type": "float", "low": 0.0, "high": 0.1, "log": True},
            "log scale needs low > 0",
        ),
        ({"key": "cnn.optimizer.lr", "type": "float", "low": "1e-4", "high": 0.1}, "write 1.0e-4"),
        (
            {
                "key": "cnn.optimizer.lr",
                "type": "float",
                "low": 1e-4,
                "high": 0.1,
                "log": True,
                "step": 0.01,
            },
            "log or step",
        ),
        ({"key": "cnn.net.hidden", "type": "int", "low": 16, "high": 64.5}, "whole"),
        (
            {"key": "cnn.optimizer.lr", "type": "float", "low": 0.1, "high": 1.0, "scale": "log"},
            "unknown field",
        ),
        ({"type": "float", "low": 0.1, "high": 1.0}, "must name a config key"),
        ({"key": "cnn.optimizer._target_", "type": "categorical", "choices": []}, "non-empty list"),
        (
            {"key": "cnn.net.channels", "type": "categorical", "choices": [[8, 16], [16, 32]]},
            "not a scalar",
        ),
        ({"key": "cnn", "type": "categorical", "choices": ["basic", "nosuchnet"]}, "nosuchnet"),
        ({"key": "cnn", "type": "float", "low": 0.1, "high": 1.0}, "is a config group"),
        ("cnn.optimizer.lr", "must be a mapping"),
    ],
)
def test_malformed_space_fails_with_a_clear_error(spec, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_space({"p": spec}, CONF)
    assert "hpo.space.p" in str(info.value)


def test_space_keys_and_types_are_checked_against_the_config(make_cfg):
    cfg = make_cfg()
    unknown = parse_space(
        {"p": {"key": "cnn.optimizer.lrr", "type": "float", "low": 0.1, "high": 1.0}}, CONF
    )
    with pytest.raises(ConfigError, match=r"Unknown config key 'cnn\.optimizer\.lrr'"):
        check_space(unknown, cfg)
    wrong_type = parse_space(
        {"p": {"key": "cnn.batch_size", "type": "float", "low": 8.0, "high": 64.0}}, CONF
    )
    with pytest.raises(ConfigError, match="expected a int"):
        check_space(wrong_type, cfg)
    lr = parse_space(
        {"p": {"key": "cnn.optimizer.lr", "type": "float", "low": 0.1, "high": 1.0}}, CONF
    )
    with pytest.raises(ConfigError, match="also searches"):
        check_space(lr, cfg, fixed=["cnn.optimizer.lr=0.5"])


def test_a_point_of_the_space_becomes_overrides_that_set_exact_values(make_cfg):
    cfg = make_cfg()
    params = parse_space(OmegaConf.to_container(cfg.hpo.space), CONF)
    point = {"lr": 0.00123456789, "dropout": 0.25, "hidden": 100, "optimizer": "torch.optim.AdamW"}
    tuned = with_overrides(cfg, to_overrides(params, point))
    assert tuned.cnn.optimizer.lr == 0.00123456789
    assert tuned.cnn.net.hidden == 100 and tuned.cnn.net.dropout == 0.25
    assert tuned.cnn.optimizer._target_ == "torch.optim.AdamW"
    assert cfg.cnn.optimizer.lr == 0.001  # the base config is left alone


def test_a_group_choice_replaces_only_its_section(make_cfg, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    small = yaml.safe_load((CONF / "cnn" / "basic.yaml").read_text())
    small.update(name="small", batch_size=16)
    (conf / "cnn" / "small.yaml").write_text(yaml.safe_dump(small))
    cfg = make_cfg("cnn.max_epochs=5", "trainer.num_threads=1")
    chosen = with_overrides(cfg, ["cnn=small", "cnn.optimizer.lr=0.01"], conf)
    assert (chosen.cnn.name, chosen.cnn.batch_size) == ("small", 16)
    assert chosen.cnn.max_epochs == small["max_epochs"] != 5  # the option's file, not the base
    assert chosen.cnn.optimizer.lr == 0.01
    assert chosen.trainer.num_threads == 1  # other sections keep the base's edits
    same = with_overrides(cfg, ["cnn=basic"], conf)
    assert same.cnn.max_epochs == 5  # choosing the current option keeps its edits


# --- studies -----------------------------------------------------------------------------------


def test_no_trials_skips_the_search_and_leaves_training_untouched(make_cfg):
    cfg = make_cfg("hpo.n_trials=0")
    assert tune.run(cfg) == {"n_trials": 0}
    best = Path(cfg.paths.root) / "models" / "tune" / "best.yaml"
    assert read_best(best) == {}  # still a params file, so train_cnn's dvc.yaml entry holds
    tuned, applied = apply_best(cfg, best)
    assert applied == {} and tuned == cfg
    assert not (Path(cfg.paths.root) / "optuna.db").exists()


def test_the_tuned_params_file_gives_back_the_trials_exact_overrides(make_cfg, tmp_path):
    cfg = make_cfg()
    params = parse_space(OmegaConf.to_container(cfg.hpo.space), CONF)
    point = {
        "lr": 0.00020511104188433984,
        "dropout": 0.1,
        "hidden": 388,
        "optimizer": "torch.optim.AdamW",
    }
    best = tmp_path / "best.yaml"
    write_best(best, to_settings(params, point), "a planted trial")
    assert yaml.safe_load(best.read_text())["cnn.optimizer.lr"] == 0.00020511104188433984
    assert as_overrides(read_best(best), CONF) == to_overrides(params, point)
    assert as_overrides({"cnn": "basic", "cnn.net.hidden": 64}, CONF) == [
        "cnn=basic",
        "cnn.net.hidden=64",
    ]


def test_a_tuned_params_file_that_is_not_a_flat_mapping_is_refused(make_cfg, tmp_path):
    best = tmp_path / "best.yaml"
    best.write_text("cnn:\n  optimizer: {lr: 0.1}\n")
    with pytest.raises(ConfigError, match=r"best.yaml must map config keys.*dvc repro tune"):
        apply_best(make_cfg(), best)


@pytest.mark.slow
def test_a_three_trial_study_tracks_every_trial_and_feeds_train_cnn(make_cfg):
    from meddx.stages import train_cnn

    cfg = make_cfg(*TINY_STUDY, "hpo.n_trials=3", "hpo.pruner=none")
    _prepare(cfg)
    metrics = tune.run(cfg)
    assert (metrics["n_trials"], metrics["n_complete"]) == (3, 3)

    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment).experiment_id
    runs = client.search_runs([experiment], "tags.`meddx.stage` = 'tune'")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(trials) == 3
    parent = parents[0]
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    assert {r.data.tags["meddx.trial_state"] for r in trials} == {"complete"}
    assert all(r.data.params["cnn.max_epochs"] == "1" for r in trials)
    assert all(client.get_metric_history(r.info.run_id, "val_auc") for r in trials)
    best = [r for r in trials if r.data.tags.get("meddx.best_trial") == "true"]
    assert len(best) == 1
    assert best[0].data.metrics["best_val_auc"] == pytest.approx(metrics["best_value"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "optuna")}
    assert {
        "optuna/optimization_history.png",
        "optuna/parallel_coordinate.png",
        "optuna/trials.csv",
    } <= artifacts

    settings = read_best(Path(cfg.paths.root) / "models" / "tune" / "best.yaml")
    assert as_overrides(settings) == best[0].data.tags["meddx.overrides"].split(" ")
    train_cnn.run(cfg)
    final = client.search_runs([experiment], "tags.`meddx.stage` = 'train_cnn'")[0]
    assert final.data.tags["meddx.tuned_keys"].split(" ") == list(settings)
    assert final.data.tags["meddx.tuned_from"] == "models/tune/best.yaml"
    assert final.data.params["cnn.optimizer.lr"] == str(settings["cnn.optimizer.lr"])
    assert final.data.params["cnn.optimizer.lr"] != str(cfg.cnn.optimizer.lr)  # trained, not base
    assert final.data.params["cnn.max_epochs"] == "2"  # trial-only overrides stay in the trials


@pytest.mark.slow
def test_an_offline_study_keeps_every_trial_and_upload_sends_them_nested(make_cfg, tmp_path):
    study = (*TINY_STUDY, "hpo.n_trials=2", "hpo.pruner=none")
    cfg = make_cfg(*study)
    _prepare(cfg)
    with socket.socket() as closed:  # bound, never listening: the server is down
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
        limits = ("tracking.retries=0", "tracking.timeout=5")
        with pytest.raises(TrackingError, match="python -m meddx upload"):
            tune.run(make_cfg(*study, f"tracking.uri={dead}", *limits))

    metrics = json.loads((tmp_path / "reports" / "metrics" / "tune.json").read_text())
    assert metrics["n_complete"] == 2  # tracking cost no trial
    assert read_best(tmp_path / "models" / "tune" / "best.yaml")
    spool_dir = Layout(tmp_path).unsent_runs
    assert len(list(spool_dir.glob("*.json"))) == 3  # the stage's run and one per trial

    assert cli.main(["upload", f"paths.root={tmp_path}", f"tracking.uri={cfg.tracking.uri}"]) == 0

    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment).experiment_id
    runs = client.search_runs([experiment], "tags.`meddx.stage` = 'tune'")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    assert len(trials) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert [r.data.tags.get("meddx.best_trial") for r in trials].count("true") == 1
    assert "optuna/trials.csv" in {
        a.path for a in client.list_artifacts(parent.info.run_id, "optuna")
    }
    refs = {
        t.user_attrs["mlflow_run_id"]
        for t in _finished(_study(cfg, parent.data.tags["optuna.study_name"]))
    }
    assert {sent_run_id(spool_dir, ref) for ref in refs} == {r.info.run_id for r in trials}


@pytest.mark.slow
def test_the_pruner_stops_a_planted_bad_trial(make_cfg):
    # val_loss to minimize: lr=1 makes it explode in the first epoch (hundreds vs ~1.4)
    cfg = make_cfg(
        *TINY_STUDY,
        "hpo.n_trials=3",
        "hpo.study_name=planted",
        "hpo.metric=val_loss",
        "hpo.direction=minimize",
        "hpo.space.lr.high=1.0",
        "hpo.pruner_kwargs.median={n_startup_trials: 2, n_warmup_steps: 0}",
    )
    _prepare(cfg)
    study = optuna.create_study(
        study_name="planted", direction="minimize", storage=f"sqlite:///{cfg.paths.root}/optuna.db"
    )
    for lr in (1e-3, 1e-3, 1.0):
        study.enqueue_trial({"lr": lr})
    metrics = tune.run(cfg)
    trials = sorted(_finished(_study(cfg, "planted")), key=lambda t: t.number)
    assert [t.params["lr"] for t in trials] == [1e-3, 1e-3, 1.0]
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2 + [
        optuna.trial.TrialState.PRUNED
    ]
    assert metrics["n_pruned"] == 1
    client = MlflowClient(cfg.tracking.uri)
    pruned_run = client.get_run(trials[2].user_attrs["mlflow_run_id"])
    assert pruned_run.data.tags["meddx.trial_state"] == "pruned"


def test_orphans_of_a_kill_fail_and_leave_the_budget_to_finished_trials(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/optuna.db", study_name="s")
    study.tell(study.ask(), 1.0)
    killed = study.ask()  # left RUNNING by a process that was killed
    assert [t.number for t in budget.fail_orphans(study)] == [killed.number]
    assert study.trials[killed.number].state == optuna.trial.TrialState.FAIL
    assert budget.remaining(study, 3) == 2
    study.optimize(lambda _: 0.0, n_trials=10, callbacks=[budget.stop_when_spent(study, 3)])
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 3


@pytest.mark.slow
def test_rerunning_after_a_kill_keeps_completed_trials(make_cfg, tmp_path):
    overrides = [
        f"paths.root={tmp_path}",
        *TINY_STUDY,
        "hpo.n_trials=3",
        "hpo.study_name=killed",
        "hpo.pruner=none",
    ]
    cfg = make_cfg(*overrides)
    _prepare(cfg)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    command = [
        sys.executable,
        "-m",
        "meddx",
        "tune",
        f"tracking.uri={cfg.tracking.uri}",
        f"tracking.experiment={cfg.tracking.experiment}",
        *overrides,
    ]
    # The stage's log says when a trial is done: polling its storage from here instead would
    # race the stage creating the schema (sqlite), and fail the stage rather than the test.
    log = tmp_path / "tune.log"
    with log.open("w") as sink:
        stage = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    try:
        while "Trial 0 finished" not in log.read_text():
            assert stage.poll() is None, (
                f"the stage ended before it could be killed:\n{log.read_text()[-3000:]}"
            )
            assert time.monotonic() < deadline, "no trial completed within 300 s"
            time.sleep(0.5)
    finally:
        stage.send_signal(signal.SIGKILL)
        stage.wait()
    before = {
        t.number: (t.value, t.params)
        for t in _study(cfg, "killed").trials
        if t.state == optuna.trial.TrialState.COMPLETE
    }

    metrics = tune.run(cfg)
    after = _study(cfg, "killed").trials
    kept = {
        t.number: (t.value, t.params) for t in after if t.state == optuna.trial.TrialState.COMPLETE
    }
    assert before.items() <= kept.items()
    assert metrics["n_complete"] == 3  # the budget counts completed trials, not the killed one
    assert not [t for t in after if t.state == optuna.trial.TrialState.RUNNING]


@pytest.mark.slow
def test_two_worker_processes_share_one_study_with_distinct_trials(make_cfg):
    cfg = make_cfg(
        *TINY_STUDY,
        "hpo.n_trials=4",
        "hpo.n_workers=2",
        "hpo.study_name=pair",
        "hpo.pruner=none",
        "hpo.sampler=random",
    )
    _prepare(cfg)
    metrics = tune.run(cfg)
    trials = _finished(_study(cfg, "pair"))
    assert metrics["n_trials"] == len(trials) >= 4
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    assert len({t.number for t in trials}) == len(trials)
    assert len({t.params["lr"] for t in trials}) == len(trials)
    client = MlflowClient(cfg.tracking.uri)
    run_ids = {t.user_attrs["mlflow_run_id"] for t in trials}
    assert len(run_ids) == len(trials)
    assert {client.get_run(r).data.params["trainer.num_threads"] for r in run_ids} == {"1"}
