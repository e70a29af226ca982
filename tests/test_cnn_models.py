"""Every selectable CNN builds from its config, sized by the dataset, for every task type."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from conftest import CONF
from meddx.config import compose
from meddx.errors import ConfigError
from meddx.models import export, monai_nets
from meddx.models.cnn import ConvNet
from meddx.models.resnet import resnet18
from meddx.training.classifier_module import Classifier

SEGMENTATION_MODELS = {"unet", "segresnet"}  # per-pixel outputs: tests/test_segmentation.py
MODELS = sorted(p.stem for p in (CONF / "cnn").glob("*.yaml") if p.stem not in SEGMENTATION_MODELS)
TASKS = {"binary": 2, "multi-class": 4, "multi-label": 3, "ordinal": 5}


def _targets(task: str, n: int, classes: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    if task == "multi-label":
        return torch.randint(0, 2, (n, classes), generator=generator).float()
    return torch.randint(0, classes, (n,), generator=generator)


def _module(model: str, task: str, channels: int = 1) -> Classifier:
    cfg = compose([f"cnn={model}"], conf_dir=CONF).cnn
    net = export.build_net(cfg.net, in_channels=channels, num_classes=TASKS[task], image_size=28)
    return Classifier(net=net, task=task, optimizer=instantiate(cfg.optimizer))


def test_every_model_config_is_covered() -> None:
    assert {"basic", "resnet18", "densenet121", "efficientnet_b0", "convnet"} <= set(MODELS)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_offers_the_same_objective_options(model: str) -> None:
    overrides = ["cnn.loss.class_weights=sqrt", "cnn.sampling=balanced", "cnn.mixup_alpha=0.2"]
    cfg = compose([f"cnn={model}", *overrides], conf_dir=CONF)
    assert (cfg.cnn.loss.name, cfg.cnn.loss.class_weights) == ("ce", "sqrt")
    assert cfg.cnn.sampling == "balanced"
    assert (cfg.cnn.label_smoothing, cfg.cnn.mixup_alpha) == (0.0, 0.2)


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("model", MODELS)
def test_model_trains_a_few_steps_for_each_task(model: str, task: str) -> None:
    torch.manual_seed(0)
    module = _module(model, task)
    x = torch.randn(4, 1, 28, 28)
    y = _targets(task, 4, TASKS[task])
    optimizer = module.optimizer_factory(module.parameters())
    before = [p.detach().clone() for p in module.parameters()]
    for _ in range(2):
        optimizer.zero_grad()
        loss = module.loss(module(x), y)
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
    module.eval()
    with torch.no_grad():
        probs = module.probabilities(module(x))
    assert probs.shape == (4, TASKS[task])
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_rgb_input_sizes_the_stem() -> None:
    module = _module("resnet18", "multi-class", channels=3)
    assert module(torch.randn(2, 3, 28, 28)).shape == (2, 4)


def test_resnet18_is_the_medmnist_28px_net() -> None:
    """MedMNIST v2's ResNet-18 (28): 11,168,706 parameters for 1 channel and 2 classes, and a
    3x3 stride-1 stem without max-pool, so the first stage still sees 28 x 28."""
    net = resnet18(in_channels=1, num_classes=2, image_size=28)
    seen = []
    net.layer1.register_forward_hook(lambda _m, _i, out: seen.append(out.shape[-2:]))
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 1, 28, 28))
    assert sum(p.numel() for p in net.parameters()) == 11_168_706
    assert seen == [torch.Size([28, 28])]


def test_resnet18_keeps_pytorchs_default_initialisation() -> None:
    """The reference's init (kaiming-uniform, |w| <= 1/sqrt(fan_in)), not MONAI's normal one."""
    torch.manual_seed(0)
    net = resnet18(in_channels=1, num_classes=2, image_size=28)
    for conv in (m for m in net.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)):
        fan_in = conv.weight[0].numel()
        assert float(conv.weight.abs().max()) <= fan_in**-0.5
    assert bool(net.fc.bias.ne(0).all())


@pytest.mark.slow
def test_loss_falls_on_a_tiny_overfit_set() -> None:
    torch.manual_seed(0)
    net = ConvNet(1, 2, 16, channels=(8, 16, 32), dropout=0.0)
    module = Classifier(
        net=net, task="binary", optimizer=lambda params: torch.optim.Adam(params, lr=1e-2)
    )
    x, y = torch.randn(16, 1, 16, 16), torch.arange(16) % 2
    optimizer = module.optimizer_factory(module.parameters())
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = module.loss(module(x), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.1 * losses[0]


def test_channels_last_gives_the_same_logits() -> None:
    torch.manual_seed(0)
    plain = _module("convnet", "binary").eval()
    nhwc = Classifier(
        net=plain.net, task="binary", optimizer=plain.optimizer_factory, channels_last=True
    ).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        expected = plain(x).clone()
        got = nhwc(x)
    assert torch.allclose(got, expected, atol=1e-5)
    assert next(p for p in nhwc.net.parameters() if p.dim() == 4).is_contiguous(
        memory_format=torch.channels_last
    )


def test_monai_net_too_small_for_28px_is_resized_inside_the_model() -> None:
    net = monai_nets.build(
        "densenet121",
        in_channels=1,
        num_classes=2,
        image_size=28,
        init_features=8,
        growth_rate=8,
        block_config=(1, 1, 1, 1),
    )
    assert isinstance(net, monai_nets.MinSize) and net.size == 32
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 2)


def test_monai_net_by_class_path_maps_argument_names() -> None:
    net = monai_nets.build(
        "monai.networks.nets.SEResNet50",
        in_channels=1,
        num_classes=3,
        image_size=28,
        layers=(1, 1, 1, 1),
        inplanes=16,
    )
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 3)


def test_unknown_monai_network_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"Unknown MONAI network 'densenet999'.*densenet121"):
        export.build_net(
            {"_target_": "meddx.models.monai_nets.build", "name": "densenet999"},
            in_channels=1,
            num_classes=2,
            image_size=28,
        )


def test_unknown_network_target_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"Cannot build network meddx\.models\.nope\.Net"):
        export.build_net(
            {"_target_": "meddx.models.nope.Net"}, in_channels=1, num_classes=2, image_size=28
        )


def test_net_config_fixing_other_channels_than_the_dataset_is_a_config_error() -> None:
    cfg = {"_target_": "meddx.models.resnet.resnet18", "in_channels": 3}
    with pytest.raises(ConfigError, match=r"sets in_channels=3, but the dataset has in_channels=1"):
        export.build_net(cfg, in_channels=1, num_classes=2, image_size=28)


def test_unknown_cnn_choice_is_a_config_error(make_cfg) -> None:
    with pytest.raises(ConfigError, match="resnet1000"):
        make_cfg("cnn=resnet1000")
