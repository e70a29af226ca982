"""The exported model: weights plus what is needed to rebuild the network without Lightning.

Evaluation and reports load this file instead of a Lightning checkpoint, so they neither pay
Lightning's import cost nor depend on the training code's class layout.
It belongs to the networks' layer: `Ensemble` rebuilds its members with `build_net`, and
training, evaluation and generation all save or load through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from meddx.io import atomic_open


def build_net(net_cfg: DictConfig | dict[str, Any], **dataset_kwargs: Any) -> nn.Module:
    """Instantiate a `_target_` network config with the sizes the dataset dictates."""
    from meddx.errors import ConfigError

    target = (net_cfg or {}).get("_target_", "?")
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
    payload = torch.load(path, map_location="cpu", weights_only=False)
    net = build_net(payload["net"], **payload["dataset_kwargs"])
    net.load_state_dict(payload["state_dict"])
    net.eval()
    return net, payload["info"]
