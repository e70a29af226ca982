"""The exported model: weights plus what is needed to rebuild the network without Lightning.

Evaluation and reports load this file instead of a Lightning checkpoint, so they neither pay
Lightning's import cost nor depend on the training code's class layout.
It belongs to the networks' layer: `Ensemble` rebuilds its members with `build_net`, and
training, evaluation and generation all save or load through it.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from meddx.errors import ConfigError, DataError
from meddx.io import atomic_open

SPATIAL_DIMS = "spatial_dims"
AXES = {2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _takes(target: str, name: str) -> bool:
    """Whether the builder `target` names the argument `name` (or takes any keyword)."""
    try:
        params = inspect.signature(get_object(target)).parameters.values()
    except (ImportError, AttributeError, ValueError, TypeError):
        return True  # let instantiate report an unknown target in its own words
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _offer_spatial_dims(target: str, dataset_kwargs: dict[str, Any]) -> dict[str, Any]:
    """`spatial_dims` goes to networks that take it; one that does not is 2-D only.

    So the dataset decides between images and volumes for every network that can do both
    (ours, MONAI's), and a 2-D-only network refuses a volume dataset here, by name, rather
    than with a shape error deep in its first convolution.
    """
    dims = dataset_kwargs.get(SPATIAL_DIMS)
    if dims is None or _takes(target, SPATIAL_DIMS):
        return dataset_kwargs
    if dims != 2:
        raise ConfigError(
            f"The network {target} builds 2-D networks only (it takes no spatial_dims), but "
            f"the dataset holds {dims}-D volumes: choose a network built from the data's "
            "dimensions (cnn=convnet, basic, densenet121 or resnet18)"
        )
    return {k: v for k, v in dataset_kwargs.items() if k != SPATIAL_DIMS}


def check_inputs(dataset_kwargs: dict[str, Any], images: np.ndarray, what: str) -> None:
    """A DataError when `images` (channel-first) do not have the layout the network was built
    for: a 2-D image given to a 3-D model or the reverse, or another channel count."""
    dims = int(dataset_kwargs.get(SPATIAL_DIMS, 2))
    channels = dataset_kwargs.get("in_channels")
    expected = AXES.get(dims, f"{dims} spatial axes")
    found_dims = images.ndim - 2
    if found_dims != dims or (channels is not None and images.shape[1] != channels):
        kind = {2: "2-D images", 3: "3-D volumes"}.get(found_dims, f"{images.ndim}-D arrays")
        raise DataError(
            f"{what}: the model takes {expected} with C={channels}, but these are {kind} of "
            f"shape {tuple(images.shape)}; evaluate the model on the dataset it was trained on "
            "(or retrain it: dvc repro train_cnn)"
        )


def build_net(net_cfg: DictConfig | dict[str, Any], **dataset_kwargs: Any) -> nn.Module:
    """Instantiate a `_target_` network config with the sizes the dataset dictates."""
    target = (net_cfg or {}).get("_target_", "?")
    dataset_kwargs = _offer_spatial_dims(target, dataset_kwargs)
    for key, value in dataset_kwargs.items():
        fixed = (net_cfg or {}).get(key)
        if fixed is not None and fixed != value:
            raise ConfigError(
                f"The network config ({target}) sets {key}={fixed}, but the dataset has "
                f"{key}={value}; remove {key} from the net config: it comes from the dataset"
            )
    try:
        return instantiate(net_cfg, **dataset_kwargs)
    except Exception as exc:  # hydra wraps import and argument errors alike
        if isinstance(exc.__cause__, ConfigError):  # the builder's own message says it best
            raise exc.__cause__ from None
        raise ConfigError(f"Cannot build network {target}: {exc}") from None


def save(
    path: Path,
    net: nn.Module,
    net_cfg: DictConfig,
    dataset_kwargs: dict[str, Any],
    info: dict[str, Any],
) -> None:
    payload = {
        "net": OmegaConf.to_container(net_cfg, resolve=True),
        "dataset_kwargs": dataset_kwargs,
        "state_dict": net.state_dict(),
        "info": info,
    }
    # Into a file object, not the temporary path: torch names the archive's root folder after
    # the file it writes to, and a random temporary name would make every model.pt differ.
    with atomic_open(path, "wb") as handle:
        torch.save(payload, handle)


def load(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network, and its `info` plus the `dataset_kwargs` it was built with (the input
    layout `check_inputs` holds data to) and its config `net` (for the model card)."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    net = build_net(payload["net"], **payload["dataset_kwargs"])
    net.load_state_dict(payload["state_dict"])
    net.eval()
    return net, {
        **payload["info"],
        "dataset_kwargs": payload["dataset_kwargs"],
        "net": payload["net"],
    }


def save_with_info(source: Path, target: Path, **extra: Any) -> Path:
    """A copy of the exported model at `source` whose info also holds `extra` (the
    calibration `evaluate` fits: the registered model carries it, train_cnn's file does not
    change); `target`."""
    payload = torch.load(source, map_location="cpu", weights_only=False)
    payload["info"] = {**payload["info"], **extra}
    with atomic_open(target, "wb") as handle:
        torch.save(payload, handle)
    return target
