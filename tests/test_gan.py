"""The GAN path: networks sized by the data, adversarial training, conditional sampling into the
dataset layout, and the figures that judge generated images (Frechet distance, precision/recall,
memorisation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from conftest import CONF, TINY_IMAGES
from meddx.config import compose
from meddx.data import stats
from meddx.data.npz import load_npz
from meddx.data.validate import check_image_splits
from meddx.errors import ConfigError, DataError
from meddx.evaluation import generated
from meddx.models.gan import Discriminator, Generator
from meddx.stages import generate_images, train_gan
from meddx.training.generative import frechet_distance, memorisation, precision_recall

SMALL_NETS = ("gan.generator.base_channels=8", "gan.discriminator.base_channels=8")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 64])
def test_networks_take_their_shape_from_the_dataset(channels: int, size: int) -> None:
    generator = Generator(channels, num_classes=3, image_size=size, base_channels=8)
    discriminator = Discriminator(channels, num_classes=3, image_size=size, base_channels=8)
    labels = torch.tensor([0, 1, 2, 1])
    images = generator(torch.randn(4, generator.latent_dim), labels)
    assert images.shape == (4, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1
    assert discriminator(images, labels).shape == (4,)


def test_a_size_that_cannot_be_halved_is_refused() -> None:
    with pytest.raises(ValueError, match="image_size 27"):
        Generator(1, num_classes=2, image_size=27)


@pytest.mark.parametrize("gan", ["dcgan", "wgan_gp"])
def test_a_few_training_steps_change_both_networks(gan: str) -> None:
    import pytorch_lightning as pl

    from meddx.training.batches import EpochBatchSampler, loader
    from meddx.training.gan import ConditionalGAN

    cfg = compose([f"gan={gan}", *SMALL_NETS], conf_dir=CONF)
    sizes = {"channels": 1, "num_classes": 2, "image_size": 28}
    module = ConditionalGAN(
        generator=instantiate(cfg.gan.generator, **sizes),
        discriminator=instantiate(cfg.gan.discriminator, **sizes),
        loss=cfg.gan.loss,
        optimizer_g=instantiate(cfg.gan.optimizer_g),
        optimizer_d=instantiate(cfg.gan.optimizer_d),
        n_critic=cfg.gan.n_critic,
        gp_weight=cfg.gan.gp_weight,
    )
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    steps = cfg.gan.n_critic  # one generator step needs n_critic batches
    images = torch.rand(16 * steps, 1, 28, 28) * 2 - 1
    labels = torch.arange(16 * steps) % 2
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader((images, labels), EpochBatchSampler(len(images), 16, True, 0)))
    for network in ("generator", "discriminator"):
        changed = [
            name
            for name, p in module.named_parameters()
            if name.startswith(network) and not torch.equal(p, before[name])
        ]
        assert changed, f"the {network} did not move"
    assert {"d_loss", "g_loss"} <= set(trainer.callback_metrics)


def test_wgan_gp_refuses_batch_norm_in_the_critic(make_cfg) -> None:
    cfg = make_cfg("gan=wgan_gp", "gan.discriminator.norm=batch")
    with pytest.raises(ConfigError, match="per-sample gradient penalty"):
        train_gan._check(cfg.gan)


def test_conditional_sampling_yields_the_requested_classes_in_the_dataset_layout() -> None:
    generator = Generator(3, num_classes=3, image_size=28, base_channels=8)
    per_split = {"class_a": 5, "class_b": 2, "class_c": 7}
    facts = {
        "class_names": ["a", "b", "c"],
        "splits": dict.fromkeys(("train", "val", "test"), per_split),
    }
    counts = generate_images.class_counts(None, facts)
    arrays = generate_images.generate(generator, counts, seed=0)
    for split in ("train", "val", "test"):
        assert arrays[f"{split}_images"].dtype == np.uint8
        assert arrays[f"{split}_images"].shape == (14, 28, 28, 3)
        assert np.bincount(arrays[f"{split}_labels"].ravel()).tolist() == [5, 2, 7]
    check_image_splits(arrays, num_classes=3, task="multi-class", channels=3)
    assert generate_images.class_counts(8, facts)["val"] == [2, 2, 2]
    # The label, not only the noise, decides the image: same noise, other class, other image.
    same_noise = [generator.sample(torch.full((4,), c), seed=1) for c in range(2)]
    assert not torch.allclose(same_noise[0], same_noise[1])


def test_real_class_counts_are_read_for_names_with_punctuation() -> None:
    # BreastMNIST's second class is "normal, benign": its count is stored as class_normal_benign.
    facts = {
        "class_names": ["malignant", "normal, benign"],
        "splits": dict.fromkeys(
            ("train", "val", "test"),
            stats.class_counts(np.array([0, 1, 1]), "binary", ["malignant", "normal, benign"]),
        ),
    }
    assert generate_images.class_counts(None, facts)["train"] == [1, 2]


def test_frechet_distance_is_zero_for_a_set_with_itself_and_grows_with_a_shift() -> None:
    features = np.random.default_rng(0).normal(size=(400, 16))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    distances = [frechet_distance(features, features + shift) for shift in (0.1, 0.5, 2.0)]
    assert distances == sorted(distances)
    assert distances[-1] == pytest.approx(16 * 2.0**2, rel=1e-6)  # |mu shift|^2, same covariance


def test_precision_and_recall_separate_fidelity_from_diversity() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 8))
    assert precision_recall(real, real.copy(), k=3) == (1.0, 1.0)
    collapsed = real[np.arange(300) % 5] + rng.normal(scale=0.01, size=(300, 8))  # no diversity
    precision, recall = precision_recall(real, collapsed, k=3)
    assert precision > 0.9 and recall < 0.2
    assert precision_recall(real, real + 100.0, k=3) == (0.0, 0.0)


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(size=(n, 1, 28, 28)).astype(np.float32)


def test_the_memorisation_check_flags_a_planted_copy_of_a_training_image() -> None:
    rng = np.random.default_rng(0)
    train, held_out, generated = _images(rng, 200), _images(rng, 50), _images(rng, 100)
    generated[17] = train[42]
    generated[63] = np.clip(train[7] + rng.normal(scale=0.01, size=train[7].shape), 0, 1)
    result = memorisation(train, generated, held_out)
    assert np.flatnonzero(result.near_copy).tolist() == [17, 63]
    assert result.nearest_index[17] == 42 and result.nearest_index[63] == 7
    assert result.share == pytest.approx(0.02) and result.passed


def test_the_memorisation_check_passes_new_images_and_fails_a_copying_generator() -> None:
    rng = np.random.default_rng(1)
    train, held_out = _images(rng, 200), _images(rng, 50)
    fresh = memorisation(train, _images(rng, 100), held_out)
    assert fresh.share == 0.0 and fresh.passed
    copies = memorisation(train, train[:100] + 0.001, held_out)
    assert copies.share == 1.0 and not copies.passed


@pytest.mark.slow
def test_train_generate_evaluate_on_tiny_data(make_cfg, tmp_path: Path) -> None:
    from meddx.stages import (
        acquire_images,
        evaluate_gan,
        preprocess_images,
        train_cnn,
    )

    cfg: DictConfig = make_cfg(
        *TINY_IMAGES,
        *SMALL_NETS,
        "gan.max_epochs=1",
        "gan.generate.per_class=20",
        "cnn.max_epochs=1",
    )
    for stage in (acquire_images, preprocess_images, train_cnn):
        stage.run(cfg)
    trained = train_gan.run(cfg)
    assert trained["epochs"] == 1 and "final_d_loss" in trained and "final_g_loss" in trained
    assert (tmp_path / "models/gan/generator.pt").is_file()
    assert (tmp_path / "reports/plots/train_gan/samples.png").is_file()
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    gan_run = client.search_runs([experiment.experiment_id], "tags.`meddx.stage` = 'train_gan'")[0]
    assert [a.path for a in client.list_artifacts(gan_run.info.run_id, "samples")] == [
        "samples/epoch_000.png"
    ]
    assert {"d_loss", "g_loss"} <= set(gan_run.data.metrics)

    assert generate_images.run(cfg) == {"n_train": 80, "n_val": 20, "n_test": 20}
    stored = load_npz(tmp_path / "data/synthetic/images.npz")
    check_image_splits(stored, num_classes=4, task="multi-class", channels=1)

    result = evaluate_gan.run(cfg)
    for key in (
        "tstr_acc",
        "real_acc",
        "aug_delta_auc",
        "fd",
        "fd_real_test",
        "precision",
        "recall",
        "near_copy_share",
    ):
        assert np.isfinite(result[key]), key
    assert result["memorisation_passed"]
    assert json.loads((tmp_path / "reports/metrics/evaluate_gan.json").read_text()) == result
    children = client.search_runs(
        [experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{_run_id(client, experiment)}'"
    )
    assert sorted(r.data.tags["meddx.stage"] for r in children) == [
        "evaluate_gan.augmented",
        "evaluate_gan.tstr",
    ]


def _run_id(client: MlflowClient, experiment) -> str:
    return client.search_runs([experiment.experiment_id], "tags.`meddx.stage` = 'evaluate_gan'")[
        0
    ].info.run_id


def test_the_stage_fails_before_training_on_a_missing_generator(make_cfg) -> None:
    with pytest.raises(DataError, match="train_gan"):
        generate_images.run(make_cfg())


def test_aug_share_sets_how_many_synthetic_images_join_the_real_ones() -> None:
    real = (np.zeros((10, 28, 28, 1), np.float32), np.zeros(10, np.int64))
    synthetic = (np.ones((10, 28, 28, 1), np.float32), np.ones(10, np.int64))
    images, labels = generated.with_synthetic(real, synthetic, 0.3, seed=0)
    assert len(images) == 13 and labels.tolist() == [0] * 10 + [1] * 3
    assert len(generated.with_synthetic(real, synthetic, 5.0, seed=0)[0]) == 20  # all there is
    with pytest.raises(ConfigError, match="aug_share"):
        generated.with_synthetic(real, synthetic, -1.0, seed=0)
