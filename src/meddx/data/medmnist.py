"""The MedMNIST registry, 2D and 3D: typed access to the facts in the packaged medmnist.yaml.

The facts (file names, MD5s, task, labels, channels, official split sizes) are data, kept in
`medmnist.yaml` beside this module and copied from the medmnist package's `info.py`; the
dataset configs in conf/data/image name an entry and state none of them. This module reads
the file once, maps MedMNIST's task strings onto `meddx.metrics.TASKS`, and turns a wrong
subset name or size into an error that says what to choose instead.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from meddx.errors import ConfigError

REGISTRY = "medmnist.yaml"

# The MedMNIST task strings and the meddx task each one means.
TASK_NAMES = {
    "binary-class": "binary",
    "multi-class": "multi-class",
    "multi-label, binary-class": "multi-label",
    "ordinal-regression": "ordinal",
}

Duplicate = tuple[str, int, str, int]


@dataclass(frozen=True)
class Subset:
    """One MedMNIST subset; `files[size]` is the official (file name, MD5) at that size."""

    name: str
    task: str
    class_names: tuple[str, ...]
    channels: int
    spatial_dims: int
    splits: dict[str, int]
    files: dict[int, tuple[str, str]]
    license: str
    record: str
    # Identical images the official file itself holds in two splits (see medmnist.yaml).
    known_duplicates: dict[int, tuple[Duplicate, ...]]

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(self.files)

    def file_name(self, size: int) -> str:
        return self._file(size)[0]

    def checksum(self, size: int) -> str:
        return self._file(size)[1]

    def url(self, size: int) -> str:
        return f"{self.record}/{self.file_name(size)}?download=1"

    def _file(self, size: int) -> tuple[str, str]:
        try:
            return self.files[int(size)]
        except KeyError:
            raise ConfigError(
                f"data.image.size={size} is not a MedMNIST size; {self.name} comes in "
                f"{list(self.sizes)}"
            ) from None


def _subset(name: str, entry: dict[str, Any], record: str) -> Subset:
    return Subset(
        name=name,
        task=TASK_NAMES[entry["task"]],
        class_names=tuple(entry["labels"]),
        channels=entry["channels"],
        spatial_dims=entry["spatial_dims"],
        splits=dict(entry["splits"]),
        files={size: (f["file"], f["md5"]) for size, f in entry["files"].items()},
        license=entry["license"],
        record=record,
        known_duplicates={
            size: tuple(tuple(row) for row in rows)
            for size, rows in entry.get("known_duplicates", {}).items()
        },
    )


@functools.cache
def subsets() -> dict[str, Subset]:
    """Every subset of the registry by name, read from the packaged file on first use."""
    text = resources.files(__package__).joinpath(REGISTRY).read_text(encoding="utf-8")
    # libyaml's safe loader where PyYAML has it: 10 ms instead of 100 ms for this file.
    registry = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return {
        name: _subset(name, entry, registry["record"])
        for name, entry in registry["subsets"].items()
    }


def subset(name: str) -> Subset:
    try:
        return subsets()[name]
    except KeyError:
        raise ConfigError(
            f"'{name}' is not a MedMNIST subset; known: {', '.join(subsets())} "
            "(choose one with data/image=<subset>)"
        ) from None


def tolerated_duplicates(source: str, name: str, size: int) -> tuple[Duplicate, ...]:
    """Cross-split duplicates that belong to a published split: MedMNIST files only."""
    if source != "medmnist":
        return ()
    return subset(name).known_duplicates.get(int(size), ())
