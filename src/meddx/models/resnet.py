"""ResNet-18 as the MedMNIST v2 baseline builds it for 28 px inputs, from MONAI's `ResNet`.

The MedMNIST experiments (`MedMNIST2D/models.py`) use the CIFAR variant: a 3x3 stride-1 stem
and no max-pool, so a 28 px image keeps its resolution through the first stage. MONAI's
`ResNet` builds that net with `conv1_t_size=3, conv1_t_stride=1, no_max_pool=True` and 1x1
conv + batch-norm shortcuts without bias: 11,168,706 parameters for 1 channel and 2 classes,
11,173,449 for 3 channels and 9 classes, as the hand-written net this replaces had, and the
same outputs bit for bit given the same weights.

One difference is undone: MONAI re-initialises every convolution (Kaiming-normal, fan-out)
and zeroes the classifier's bias, while the reference keeps PyTorch's default initialisation.
MONAI's own draws happen on a forked RNG and are discarded; resetting the convolutions and
the classifier, in the order the reference creates them, then draws exactly what building the
reference net draws, so a seed gives the reference's weights and leaves the RNG where it did.

The same builder makes the 3-D net for volumes (`spatial_dims=3`, as the MedMNIST v2
"ResNet-18 + 3D" row), with `block_inplanes` to make it narrower on a CPU: 3x3x3 kernels
at the widths above hold 33 M parameters.
"""

from __future__ import annotations

import torch
from monai.networks.nets import ResNet
from torch import nn


def resnet18(
    in_channels: int,
    num_classes: int,
    image_size: int,
    spatial_dims: int = 2,
    block_inplanes: tuple[int, ...] = (64, 128, 256, 512),
) -> nn.Module:
    """The 28 px ResNet-18; any `image_size` fits (global average pooling before the head)."""
    with torch.random.fork_rng(devices=[]):
        net = ResNet(
            block="basic",
            layers=[2, 2, 2, 2],
            block_inplanes=list(block_inplanes),
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            conv1_t_size=3,
            conv1_t_stride=1,
            no_max_pool=True,
            shortcut_type="B",
            bias_downsample=False,
            num_classes=num_classes,
        )
    for module in net.modules():  # stem, each block's conv1, conv2, shortcut, then fc
        if isinstance(module, nn.Conv2d | nn.Conv3d | nn.Linear):
            module.reset_parameters()
    return net
