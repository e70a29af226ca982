"""What an image dataset is (task, classes, channels, spatial axes), from where it is stated.

A MedMNIST dataset config names its registry entry and states none of these: they are facts
of the official files, and the registry (meddx.data.medmnist) holds them once. The other
sources (synthetic, folder) have no registry, so their config states them. Stages ask here
rather than reading the config, so that both kinds of dataset are read the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from meddx.data import medmnist
from meddx.data.standardise import Standardisation, standardisation
from meddx.errors import ConfigError

# Keys a dataset config without a registry entry states, and a registry entry states instead.
STATED_FACTS = ("task", "class_names", "channels")


@dataclass(frozen=True)
class ImageFacts:
    task: str  # one of meddx.metrics.TASKS
    class_names: tuple[str, ...]
    channels: int
    spatial_dims: int  # 2: images (N, H, W[, C]); 3: volumes (N, D, H, W[, C])
    # How the user's own volumes are resampled and scaled (folder source, 3-D only): files
    # of any spacing and scale become one dataset only through it, so it is a dataset fact.
    standardise: Standardisation | None = None


def image_facts(spec: DictConfig) -> ImageFacts:
    """The facts of the dataset `spec` (`cfg.data.image`) describes."""
    if spec.source == "medmnist":
        subset = medmnist.subset(spec.name)
        restated = [key for key in STATED_FACTS if key in spec]
        if restated:
            raise ConfigError(
                f"data.image.{restated[0]} is a fact of the MedMNIST registry (src/meddx/data/"
                f"medmnist.yaml, entry {subset.name}); remove {', '.join(restated)} from the "
                "dataset config: it names its entry and states only size, intensity and augment"
            )
        return ImageFacts(subset.task, subset.class_names, subset.channels, subset.spatial_dims)
    # Synthetic and folder datasets are 2D images until their config states otherwise.
    spatial_dims = int(spec.get("spatial_dims", 2))
    volumes = spec.source == "folder" and spatial_dims == 3
    return ImageFacts(
        spec.task,
        tuple(spec.class_names),
        int(spec.channels),
        spatial_dims,
        standardisation(spec) if volumes else None,
    )
