"""Volumes go through the same stages, validation, augmentation, networks and evaluation as
images: 2-D or 3-D is a fact of the data, not a second code path."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import CONF
from meddx.config import compose
from meddx.data import synthetic_volumes
from meddx.data.augment import BatchAugment
from meddx.data.samples import central_slices
from meddx.data.validate import check_image_splits
from meddx.errors import ConfigError, DataError
from meddx.evaluation.explain import gradcam, target_layer
from meddx.evaluation.figures import peak_slices
from meddx.models import export
from meddx.models.cnn import ConvNet
from meddx.paths import Layout
from meddx.stages import acquire_images, evaluate, preprocess_images, train_cnn

SIZES = {"train": 12, "val": 6, "test": 6}
VOLUME_NETS = ("basic", "convnet", "densenet121", "resnet18")
# Widths that keep a 3-D build and forward pass to a fraction of a second.
SMALL = {
    "basic": {"channels": [4, 8], "hidden": 16},
    "convnet": {"channels": [4, 8]},
    "densenet121": {"init_features": 8, "growth_rate": 4, "block_config": [2, 2, 2, 2]},
    "resnet18": {"block_inplanes": [4, 8, 16, 32]},
}


def _volumes(**sizes: int) -> dict[str, np.ndarray]:
    return synthetic_volumes.generate(3, sizes or SIZES, volume_size=12, noise=0.05, seed=0)


def _batch(n: int = 8, size: int = 10) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(n, 1, size, size, size)


def test_synthetic_volumes_are_seeded_balanced_uint8_in_the_medmnist_3d_layout() -> None:
    first, second = _volumes(), _volumes()
    assert first["train_images"].shape == (12, 12, 12, 12)
    assert first["train_images"].dtype == np.uint8
    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert np.bincount(first["train_labels"].ravel()).tolist() == [4, 4, 4]
    check_image_splits(first, 3, "multi-class", 1, spatial_dims=3)


def test_a_volume_dataset_given_images_names_the_layout_it_expected() -> None:
    arrays = _volumes()
    arrays["val_images"] = arrays["val_images"][:, 0]  # one slice per sample: 2-D images
    with pytest.raises(DataError, match=r"val_images .* 3-D volumes .* expected \(N, D, H, W\)"):
        check_image_splits(arrays, 3, "multi-class", 1, spatial_dims=3)


def test_an_image_dataset_given_volumes_says_spatial_dims() -> None:
    with pytest.raises(DataError, match=r"2-D images .*data.image.spatial_dims"):
        check_image_splits(_volumes(), 3, "multi-class", 1, spatial_dims=2)


def test_central_slices_show_a_volume_as_one_strip_of_its_three_planes() -> None:
    volumes = np.arange(2 * 4 * 5 * 6).reshape(2, 4, 5, 6)
    strip = central_slices(volumes)
    assert strip.shape == (2, 5, 6 + 6 + 5 + 2)
    assert np.array_equal(strip[:, :5, :6], volumes[:, 2])  # the axial slice comes first


def test_depth_flips_give_each_volume_either_itself_or_its_mirror() -> None:
    x = _batch()
    out = BatchAugment(dflip=True, spatial_dims=3)(x)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-3)).flatten(1).all(1)
    assert (same | mirrored).all() and mirrored.any() and same.any()


def test_a_depth_flip_on_images_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="dflip"):
        BatchAugment(dflip=True, spatial_dims=2)


def test_volume_shifts_move_whole_voxels_within_the_configured_range() -> None:
    x = _batch(n=4)
    out = BatchAugment(shift=1, spatial_dims=3)(x)
    inner = (slice(1, -1),) * 3
    for volume, moved in zip(x[:, 0], out[:, 0], strict=True):
        rolls = [
            (dz, dy, dx)
            for dz in (-1, 0, 1)
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if torch.equal(moved[inner], torch.roll(volume, (dz, dy, dx), (0, 1, 2))[inner])
        ]
        assert rolls


def test_volume_rotations_turn_a_bar_but_keep_its_centre() -> None:
    z = torch.arange(11)[:, None, None].expand(11, 11, 11)
    y = torch.arange(11)[None, :, None].expand(11, 11, 11)
    bar = (((z - 5).abs() <= 1) & ((y - 5).abs() <= 1)).float()[None, None].repeat(8, 1, 1, 1, 1)
    out = BatchAugment(rotate=30.0, spatial_dims=3)(bar)
    assert out.shape == bar.shape
    assert (out[:, 0, 5, 5, 5] > 0.9).all()  # the centre stays on the bar
    assert not torch.allclose(out, bar)


def test_intensity_jitter_is_one_gain_and_offset_per_sample() -> None:
    x = _batch(n=6)
    out = BatchAugment(intensity_scale=0.2, intensity_shift=0.1, spatial_dims=3)(x)
    for before, after in zip(x.flatten(1), out.flatten(1), strict=True):
        gain, offset = np.polyfit(before.numpy(), after.numpy(), 1)
        assert 0.8 - 1e-4 <= gain <= 1.2 + 1e-4 and abs(offset) <= 0.1 + 1e-4
        assert np.allclose(after.numpy(), gain * before.numpy() + offset, atol=1e-5)


def test_cutout_blanks_one_cube_per_volume() -> None:
    x = _batch(n=4, size=12) + 1  # no voxel is 0 before
    out = BatchAugment(cutout=4, spatial_dims=3)(x)
    blank = (out == 0).flatten(1).sum(1)
    assert ((blank > 0) & (blank <= 64)).all()


def _net(name: str, spatial_dims: int, classes: int = 3, size: int = 16) -> torch.nn.Module:
    net = OmegaConf.to_container(compose([f"cnn={name}"], conf_dir=CONF).cnn.net)
    cfg = OmegaConf.merge(net, SMALL.get(name, {}))
    kwargs = {"in_channels": 1, "num_classes": classes, "image_size": size}
    return export.build_net(cfg, **kwargs, spatial_dims=spatial_dims)


@pytest.mark.parametrize("name", VOLUME_NETS)
def test_the_same_network_config_builds_a_3d_net_for_volumes(name: str) -> None:
    net = _net(name, spatial_dims=3).eval()
    assert any(isinstance(m, torch.nn.Conv3d) for m in net.modules())
    with torch.no_grad():
        assert net(torch.zeros(2, 1, 16, 16, 16)).shape == (2, 3)


def test_a_2d_only_network_refuses_a_volume_dataset_by_name() -> None:
    cfg = OmegaConf.create({"_target_": "torch.nn.Linear"})  # a builder without spatial_dims
    with pytest.raises(ConfigError, match=r"torch.nn.Linear builds 2-D networks only.*resnet18"):
        export.build_net(cfg, in_channels=1, num_classes=3, image_size=16, spatial_dims=3)


def test_a_net_config_fixing_the_dimensions_against_the_data_is_a_config_error() -> None:
    cfg = {"_target_": "meddx.models.cnn.ConvNet", "spatial_dims": 3}
    with pytest.raises(ConfigError, match="spatial_dims=3, but the dataset has spatial_dims=2"):
        export.build_net(cfg, in_channels=1, num_classes=2, image_size=16, spatial_dims=2)


@pytest.mark.parametrize(
    ("trained_on", "given"), [(3, np.zeros((2, 1, 8, 8))), (2, np.zeros((2, 1, 8, 8, 8)))]
)
def test_data_of_the_other_dimensionality_is_refused_before_inference(trained_on, given) -> None:
    kwargs = {"in_channels": 1, "num_classes": 2, "image_size": 8, "spatial_dims": trained_on}
    with pytest.raises(DataError, match=r"the model takes .* but these are"):
        export.check_inputs(kwargs, given, "model.pt")


def test_gradcam_maps_a_volume_and_draws_the_slices_through_its_peak() -> None:
    net = ConvNet(1, 2, 8, channels=(4, 8), spatial_dims=3)
    assert target_layer(net) == "features.10"  # the last Conv3d
    volumes = np.random.default_rng(0).normal(size=(3, 1, 8, 8, 8)).astype(np.float32)
    heat = gradcam(net, volumes, np.array([0, 1, 1]))
    assert heat.shape == (3, 8, 8, 8) and heat.min() >= 0 and heat.max() <= 1
    strip, heat_strip = peak_slices(volumes[0], heat[0])
    assert strip.shape == (1, 8, 8 * 3 + 2) and heat_strip.shape == (8, 26)
    assert np.nanmax(heat_strip) == pytest.approx(1.0)  # every slice passes through the peak


@pytest.mark.slow
def test_preprocess_train_evaluate_run_on_volumes_through_the_image_stages(make_cfg) -> None:
    cfg = make_cfg(
        "data/image=synthetic3d",
        "cnn=convnet",
        "cnn.net.channels=[8,16,32]",
        "cnn.max_epochs=6",
        "cnn.batch_size=32",
        "evaluate.bootstrap=50",
    )
    started = time.perf_counter()
    acquire_images.run(cfg)
    preprocess_images.run(cfg)
    trained = train_cnn.run(cfg)
    tested = evaluate.run(cfg)
    wall = time.perf_counter() - started
    layout = Layout.of(cfg)
    facts = json.loads(layout.processed_images_meta.read_text())
    assert (facts["spatial_dims"], facts["size"]) == (3, 16)
    net, info = export.load(layout.model_dir("cnn") / "model.pt")
    assert info["dataset_kwargs"]["spatial_dims"] == 3
    assert any(isinstance(m, torch.nn.Conv3d) for m in net.modules())
    assert trained["best_val_auc"] > 0.8  # learnable ...
    assert tested["test_acc"] < 1.0  # ... and not trivial
    assert (layout.plots("evaluate") / "gradcam.png").stat().st_size > 0
    assert len(list((layout.plots("preprocess_images") / "samples").glob("*.png"))) == 3
    print(f"volumes: acquire -> evaluate in {wall:.1f} s, test AUC {tested['test_auc']:.3f}")
