"""Training options, determinism, resume and tasks taken from the dataset facts."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from pytorch_lightning import Callback
from torch import nn

from conftest import TINY_IMAGES
from meddx.data.npz import save_npz
from meddx.errors import ConfigError
from meddx.models import export
from meddx.models.cnn import ConvNet
from meddx.models.ensemble import Ensemble
from meddx.paths import Layout
from meddx.stages import acquire_images, evaluate, preprocess_images, train_cnn
from meddx.tracking import stage_run
from meddx.training import batches, images, schedules
from meddx.training.classifier_module import Classifier, mixup_pairs
from meddx.training.classifier_training import ensemble_size
from meddx.training.fit import fit, seed_everything
from meddx.training.run_log import RunLog

TRAINER = OmegaConf.create(
    {
        "accelerator": "cpu",
        "devices": 1,
        "strategy": "auto",
        "precision": "32-true",
        "deterministic": True,
        "progress_bar": False,
    }
)


def test_multistep_milestones_follow_the_run_length() -> None:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = schedules.multistep(optimizer, max_epochs=8, fractions=(0.5, 0.75), gamma=0.1)
    rates = []
    for _ in range(8):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])


def test_experiments_compose_the_published_protocol_and_our_recipes(make_cfg) -> None:
    paper = make_cfg("+experiment=medmnist_v2_resnet18")
    assert paper.data.image.name == "breastmnist"
    assert paper.data.image.intensity == "symmetric"
    assert not any(paper.data.image.augment.values())
    assert paper.cnn.net._target_ == "meddx.models.resnet.resnet18"
    assert paper.cnn.optimizer._target_ == "torch.optim.Adam" and paper.cnn.optimizer.lr == 1e-3
    assert list(paper.cnn.scheduler.fractions) == [0.5, 0.75]
    assert paper.cnn.batch_size == 128
    assert (
        make_cfg("+experiment=medmnist_v2_resnet18", "data/image=pneumoniamnist").data.image.name
        == "pneumoniamnist"
    )
    assert make_cfg("+experiment=pneumonia").data.image.name == "pneumoniamnist"
    assert make_cfg("+experiment=breast").data.image.name == "breastmnist"


def _tiny_module(seed: int) -> tuple[Classifier, tuple, tuple]:
    seed_everything(seed, 2)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(96, 1, 16, 16, generator=generator)
    y = (x[:, 0, :8].mean(dim=(1, 2)) > 0).long()
    x[y == 1, 0, :4] += 0.5
    net = ConvNet(1, 2, 16, channels=(4, 8), dropout=0.1)
    module = Classifier(
        net=net,
        task="binary",
        optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9),
        scheduler=schedules.cosine,
        label_smoothing=0.1,
    )
    return module, (x[:64], y[:64]), (x[64:], y[64:])


class Crash(Callback):
    """Stands in for a kill: the process dies as epoch `at` starts."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_epoch_start(self, trainer, module) -> None:
        if trainer.current_epoch == self.at:
            raise RuntimeError("killed")


def _fit(
    seed: int, epochs: int, resume_dir: Path, crash_at: int | None = None, run: RunLog | None = None
):
    module, train, val = _tiny_module(seed)
    result = fit(
        module,
        batches.loader(train, batches.EpochBatchSampler(64, 16, shuffle=True, seed=seed)),
        batches.loader(val, batches.EpochBatchSampler(32, 32, shuffle=False, seed=seed)),
        TRAINER,
        max_epochs=epochs,
        monitor="val_auc",
        mode="max",
        resume_dir=resume_dir,
        run=run,
        extra_callbacks=[Crash(crash_at)] if crash_at is not None else None,
    )
    return module, result


class RecordingRun:
    """A RunLog that is not MLflow: the calls training makes, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.calls.append(("log_metrics", step, sorted(metrics)))

    def flush(self) -> None:
        self.calls.append(("flush",))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.calls.append(("set_tags", dict(tags)))

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self.calls.append(("log_artifact", artifact_path))


def test_fit_sends_one_batch_per_epoch_to_the_run_it_is_handed(tmp_path: Path) -> None:
    run = RecordingRun()
    _fit(seed=3, epochs=2, resume_dir=tmp_path, run=run)
    assert [call[:2] for call in run.calls] == [
        ("log_metrics", 0),
        ("flush",),
        ("log_metrics", 1),
        ("flush",),
    ]
    assert {"val_auc", "lr"} <= set(run.calls[0][2])


@pytest.mark.slow
def test_fit_killed_midway_resumes_from_the_saved_epoch_and_matches_an_unbroken_one(
    tmp_path: Path,
) -> None:
    with pytest.raises(RuntimeError, match="killed"):
        _fit(seed=3, epochs=4, resume_dir=tmp_path / "broken", crash_at=2)
    assert (tmp_path / "broken" / "last.ckpt").is_file()
    resumed, second = _fit(seed=3, epochs=4, resume_dir=tmp_path / "broken")
    assert second.resumed_from_epoch == 1
    assert second.epochs_run == 4
    unbroken, straight = _fit(seed=3, epochs=4, resume_dir=tmp_path / "straight")
    for a, b in zip(resumed.net.parameters(), unbroken.net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [r["epoch"] for r in second.history] == [r["epoch"] for r in straight.history]
    assert [r["val_auc"] for r in second.history] == [r["val_auc"] for r in straight.history]


def _pipeline(cfg) -> tuple[dict, dict]:
    preprocess_images.run(cfg)
    return train_cnn.run(cfg), evaluate.run(cfg)


@pytest.mark.slow
def test_same_seed_gives_identical_metrics(make_cfg) -> None:
    cfg = make_cfg(*TINY_IMAGES, "cnn=convnet", "cnn.net.channels=[8,16,32]")
    acquire_images.run(cfg)
    first = _pipeline(cfg)
    second = _pipeline(cfg)
    # JSON text, so that NaN (an undefined PPV) compares equal to itself.
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    test = first[1]
    assert {"test_auc", "test_acc", "test_balanced_acc", "test_macro_f1"} <= set(test)
    recalls = [row["sensitivity"] for row in test["per_class"].values()]
    assert test["test_balanced_acc"] == pytest.approx(np.mean(recalls))
    assert set(test["per_class"]["disc"]) >= {"sensitivity", "specificity", "f1", "ppv"}


def _write_raw(cfg, labels: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, y in labels.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (len(y), 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = y.astype(np.uint8)
    save_npz(Layout.of(cfg).raw_images, arrays)


def _train_on_task(make_cfg, task: str, *overrides: str) -> None:
    rng = np.random.default_rng(1)
    names = ["a", "b", "c"]
    cfg = make_cfg(
        *overrides,
        "cnn=convnet",
        "cnn.net.channels=[4,8,16]",
        "cnn.max_epochs=1",
        "cnn.batch_size=16",
        f"data.image.task={task}",
        f"data.image.class_names=[{','.join(names)}]",
    )
    shape = (lambda n: (n, 3)) if task == "multi-label" else (lambda n: (n, 1))
    _write_raw(
        cfg,
        {
            s: rng.integers(0, 2 if task == "multi-label" else 3, shape(n))
            for s, n in (("train", 48), ("val", 24), ("test", 24))
        },
    )
    trained, tested = _pipeline(cfg)
    facts = json.loads(Layout.of(cfg).processed_images_meta.read_text())
    assert facts["task"] == task
    assert 0.0 <= trained["best_val_auc"] <= 1.0
    assert set(tested["per_class"]) == set(names)
    assert 0.0 <= tested["test_auc"] <= 1.0


def test_mixup_pairs_are_a_weight_in_0_1_and_a_permutation_the_seed_repeats() -> None:
    draws = []
    for _ in range(2):
        torch.manual_seed(5)
        draws.append(mixup_pairs(32, 0.4, torch.device("cpu")))
    (weight, partner), (again, partner_again) = draws
    assert 0.0 <= weight <= 1.0
    assert sorted(partner.tolist()) == list(range(32))
    assert weight == again and torch.equal(partner, partner_again)


def test_mixup_scores_the_mixed_batch_against_both_targets_by_the_weight() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 16, 16), torch.tensor([0, 1] * 4)
    net = ConvNet(1, 2, 16, channels=(4, 8)).eval()  # eval: no dropout, BN running stats
    module = Classifier(net=net, task="binary", optimizer=torch.optim.SGD, mixup_alpha=0.4)
    torch.manual_seed(7)
    loss = module.training_step((x, y), 0)
    torch.manual_seed(7)
    weight, partner = mixup_pairs(8, 0.4, x.device)
    logits = net(weight * x + (1 - weight) * x[partner])
    expected = weight * nn.functional.cross_entropy(logits, y) + (
        1 - weight
    ) * nn.functional.cross_entropy(logits, y[partner])
    assert 0.0 < weight < 1.0 and not torch.equal(partner, torch.arange(8))
    assert torch.allclose(loss, expected)


@pytest.mark.parametrize("alpha", [-0.1, float("nan")])
def test_a_negative_or_nan_mixup_alpha_is_refused(alpha: float) -> None:
    with pytest.raises(ConfigError, match="mixup_alpha"):
        Classifier(
            net=ConvNet(1, 2, 16, channels=(4, 8)),
            task="binary",
            optimizer=torch.optim.SGD,
            mixup_alpha=alpha,
        )


@pytest.mark.slow
def test_mixup_trains_on_soft_multi_label_and_class_index_targets(make_cfg) -> None:
    _train_on_task(make_cfg, "multi-label", "cnn.mixup_alpha=0.4")
    _train_on_task(make_cfg, "multi-class", "cnn.mixup_alpha=0.4")


# Two functions, not parametrize: make_cfg names the MLflow experiment after the test, and
# Hydra's override grammar cannot parse the brackets of a parametrized test id.
@pytest.mark.slow
def test_multi_label_task_comes_from_the_dataset_facts(make_cfg) -> None:
    _train_on_task(make_cfg, "multi-label")


@pytest.mark.slow
def test_ordinal_task_comes_from_the_dataset_facts(make_cfg) -> None:
    _train_on_task(make_cfg, "ordinal")


@pytest.mark.slow
def test_an_ensemble_exports_one_net_averaging_members_trained_from_their_own_seeds(
    make_cfg,
) -> None:
    tiny = (*TINY_IMAGES, "cnn=convnet", "cnn.net.channels=[4,8,16]", "cnn.max_epochs=1")
    cfg = make_cfg(*tiny, "cnn.ensemble=2")
    acquire_images.run(cfg)
    trained, tested = _pipeline(cfg)
    net, info = export.load(Layout.of(cfg).model_dir("cnn") / "model.pt")
    assert isinstance(net, Ensemble) and len(net.members) == 2
    first, second = (dict(m.named_parameters()) for m in net.members)
    assert any(not torch.equal(first[k], second[k]) for k in first)  # different seeds
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        expected = (net.members[0](x) + net.members[1](x)) / 2
        assert torch.allclose(net(x), expected)
    assert {"member0_best_epoch", "member1_best_epoch", "best_val_auc"} <= set(trained)
    assert info["best"]["best_val_auc"] == trained["best_val_auc"]
    assert 0.0 <= tested["test_auc"] <= 1.0


@pytest.mark.parametrize("size", [0, 1.5, "two"])
def test_an_ensemble_size_below_one_or_fractional_is_a_config_error(size) -> None:
    with pytest.raises(ConfigError, match="ensemble"):
        ensemble_size(OmegaConf.create({"ensemble": size}))


class CrashInSecondMember(Callback):
    """A kill while the second member of an ensemble trains its second epoch."""

    def __init__(self) -> None:
        self.fits = 0

    def on_fit_start(self, trainer, module) -> None:
        self.fits += 1

    def on_train_epoch_start(self, trainer, module) -> None:
        if self.fits == 2 and trainer.current_epoch == 1:
            raise RuntimeError("killed")


@pytest.mark.slow
def test_a_killed_ensemble_keeps_its_finished_member_and_resumes_the_other(
    make_cfg, tmp_path: Path
) -> None:
    tiny = (*TINY_IMAGES, "cnn=convnet", "cnn.net.channels=[4,8,16]", "cnn.max_epochs=3")
    for root in ("killed", "straight"):
        (tmp_path / root).mkdir()
    cfg = make_cfg(*tiny, "cnn.ensemble=2", f"paths.root={tmp_path / 'killed'}")
    acquire_images.run(cfg)
    preprocess_images.run(cfg)
    data, inputs, _ = images.load_data(cfg)
    with pytest.raises(RuntimeError, match="killed"), stage_run(cfg, "train_cnn", inputs) as run:
        images.train(cfg, data, inputs, run, [CrashInSecondMember()])
    train_cnn.run(cfg)
    straight = make_cfg(*tiny, "cnn.ensemble=2", f"paths.root={tmp_path / 'straight'}")
    acquire_images.run(straight)
    _pipeline(straight)
    resumed, _ = export.load(Layout.of(cfg).model_dir("cnn") / "model.pt")
    unbroken, _ = export.load(Layout.of(straight).model_dir("cnn") / "model.pt")
    for a, b in zip(resumed.parameters(), unbroken.parameters(), strict=True):
        assert torch.equal(a, b)
