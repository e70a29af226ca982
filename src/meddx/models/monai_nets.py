"""One adapter for every MONAI network, so a config names a net, not a copy.

Classifiers and segmentation networks alike (UNet, SegResNet: `out_channels` is the number of
classes, one logit map per class), sized by the same dataset facts.

MONAI networks disagree on argument names (`out_channels` for DenseNet, `num_classes` for
EfficientNet and SENet, `n_input_channels` for ResNet) and several cannot take a 28 px input:
DenseNet121's stem and three transitions shrink 28 px to nothing, EfficientNet-B0's padding
needs 32 px. `build` maps the dataset facts onto each signature and, for those nets, resizes
the input up to the smallest size the net accepts, inside the module, so exported models
take the dataset's own images. `spatial_dims` comes from the dataset too: the same config
builds a 2-D net for images and a 3-D one for volumes (MONAI's networks take both).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from meddx.errors import ConfigError

# Short name -> (MONAI class path, fixed kwargs, smallest input side the net accepts).
KNOWN: dict[str, tuple[str, dict[str, Any], int | None]] = {
    "densenet121": ("monai.networks.nets.DenseNet121", {}, 32),
    "efficientnet-b0": (
        "monai.networks.nets.EfficientNetBN",
        {"model_name": "efficientnet-b0", "pretrained": False},
        32,
    ),
    "seresnet50": ("monai.networks.nets.SEResNet50", {"pretrained": False}, 16),
    "unet": ("monai.networks.nets.UNet", {}, None),
    "segresnet": ("monai.networks.nets.SegResNet", {}, None),
    # ResNet-18's blocks; the stem (conv1_t_size, conv1_t_stride, no_max_pool) is config.
    "resnet18": (
        "monai.networks.nets.ResNet",
        {"block": "basic", "layers": [2, 2, 2, 2], "block_inplanes": [64, 128, 256, 512]},
        None,
    ),
}
_IN = ("in_channels", "n_input_channels")
_OUT = ("out_channels", "num_classes")


class MinSize(nn.Module):
    """Bilinear (trilinear for volumes) upsampling to `size` before the wrapped net (a no-op
    for larger inputs)."""

    def __init__(self, net: nn.Module, size: int) -> None:
        super().__init__()
        self.net = net
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = x.dim() - 2
        if min(x.shape[2:]) < self.size:
            mode = "bilinear" if dims == 2 else "trilinear"
            x = F.interpolate(x, size=(self.size,) * dims, mode=mode, align_corners=False)
        return self.net(x)


def _resolve(name: str) -> tuple[type[nn.Module], dict[str, Any], int | None]:
    if name in KNOWN:
        path, fixed, min_size = KNOWN[name]
    elif "." in name:
        path, fixed, min_size = name, {}, None
    else:
        raise ConfigError(
            f"Unknown MONAI network {name!r} in cnn.net.name; known: {sorted(KNOWN)} "
            "or a full class path such as monai.networks.nets.DenseNet169"
        )
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"Cannot import network {path!r} (cnn.net.name): {exc}") from None
    return cls, dict(fixed), min_size


def _pick(
    params: dict[str, inspect.Parameter], names: tuple[str, ...], what: str, path: str
) -> str:
    for name in names:
        if name in params:
            return name
    raise ConfigError(f"{path} takes none of {list(names)}; cannot give it the {what}")


def build(
    name: str,
    in_channels: int,
    num_classes: int,
    image_size: int,
    min_size: int | None = None,
    spatial_dims: int = 2,
    **kwargs: Any,
) -> nn.Module:
    """A 2-D or 3-D MONAI classifier sized by the dataset; `kwargs` go to the network unchanged."""
    cls, fixed, known_min = _resolve(name)
    params = dict(inspect.signature(cls.__init__).parameters)
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    path = f"{cls.__module__}.{cls.__name__}"
    if accepts_any:  # SENet subclasses forward **kwargs to SENet, which takes these names
        params |= dict(inspect.signature(cls.__mro__[1].__init__).parameters)
    args = fixed | kwargs
    args[_pick(params, _IN, "input channels", path)] = in_channels
    args[_pick(params, _OUT, "number of classes", path)] = num_classes
    if "spatial_dims" in params:
        args["spatial_dims"] = spatial_dims
    elif spatial_dims != 2:
        raise ConfigError(f"{path} takes no spatial_dims: it cannot be built for volumes")
    try:
        net = cls(**args)
    except TypeError as exc:
        raise ConfigError(f"Cannot build {path} with {sorted(args)}: {exc}") from None
    size = max(image_size, min_size or known_min or image_size)
    if size > image_size:
        net = MinSize(net, size)
    _probe(net, in_channels, image_size, spatial_dims, path)
    return net


def _probe(net: nn.Module, in_channels: int, image_size: int, spatial_dims: int, path: str) -> None:
    """Fail at build time, with the fix, rather than at the first training step."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(torch.zeros(1, in_channels, *(image_size,) * spatial_dims))
    except RuntimeError as exc:
        raise ConfigError(
            f"{path} cannot take {image_size} px images ({exc}); set cnn.net.min_size to "
            "resize the input up to a size it accepts"
        ) from None
    finally:
        net.train(was_training)
