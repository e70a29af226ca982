"""ONNX copies of the image networks, checked against PyTorch with onnxruntime.

The TorchScript exporter (`dynamo=False`), not the dynamo one: measured on the five networks
of conf/cnn in 2-D and 3-D it exports each in 0.4-15 s and needs no onnxscript, where the
dynamo exporter took minutes for the set. The batch axis is dynamic, so one file serves any
batch. Both onnx packages are imported only here, when a model is exported.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from meddx.io import atomic_path

OPSET = 17
INPUT, OUTPUT = "images", "logits"


def export(net: nn.Module, example: np.ndarray, path: Path) -> Path:
    """`net` as ONNX at `path`; `example` (N, C, *spatial) float32 fixes all but the batch axis."""
    net = net.eval()
    x = torch.from_numpy(np.ascontiguousarray(example[:1], dtype=np.float32))
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net,
            (x,),
            str(tmp),
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return path


def logits(path: Path, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The ONNX network's logits of `images` with onnxruntime on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    chunks = [
        session.run([OUTPUT], {INPUT: np.ascontiguousarray(images[s : s + batch_size])})[0]
        for s in range(0, len(images), batch_size)
    ]
    return np.concatenate(chunks)


@torch.no_grad()
def max_abs_difference(path: Path, net: nn.Module, images: np.ndarray) -> float:
    """Largest |ONNX - PyTorch| over the logits of `images` (float32, channel-first)."""
    images = np.ascontiguousarray(images, dtype=np.float32)
    reference = torch.cat(
        [net.eval()(torch.from_numpy(images[s : s + 256])) for s in range(0, len(images), 256)]
    ).numpy()
    return float(np.abs(logits(path, images) - reference).max())
