"""The dataset a stage reads, as an MLflow dataset input (`log_inputs`): the runs table's
Datasets column and the run page's Datasets box.

Only facts go to the store, never the arrays nor a copy of them: the dataset's name and the
splits read, the file's md5 as digest (the digest DVC and the run's `input.<path>` tag give the
same file), the file's path inside the project as a local source, and the per-split counts of
the preprocess stage's facts as profile. Nothing there identifies a patient.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.entities import DatasetInput

CONTEXT_TAG = "mlflow.data.context"  # mlflow.utils.mlflow_tags.MLFLOW_DATASET_CONTEXT


@dataclass(frozen=True)
class DatasetRead:
    """What a stage hands `stage_run`: the file it reads (one of its inputs), the facts the
    preprocess stage wrote beside it (`name`, `splits`), the splits it uses and what for
    (MLflow's contexts: "training", "evaluation")."""

    path: Path
    facts: Mapping[str, Any]
    splits: Sequence[str]
    context: str


def record(dataset: DatasetRead, source: str, digest: str) -> dict[str, str]:
    """MLflow's dataset fields (name, digest, source, source_type, profile), JSON-ready for the
    spool. `source`: the file's path in the project; `digest`: its md5."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():  # "" and "file:" resolve to the same local source class
        warnings.simplefilter("ignore", UserWarning)
        local = resolve_dataset_source(source)
    name = f"{dataset.facts['name']} {'+'.join(dataset.splits)}"
    fields = MetaDataset(local, name=name, digest=digest).to_dict()
    counts = {
        split: {k: v for k, v in dataset.facts["splits"][split].items() if isinstance(v, int)}
        for split in dataset.splits
    }
    fields["profile"] = json.dumps({"splits": counts}, sort_keys=True)
    return fields


def dataset_input(fields: Mapping[str, str], context: str) -> DatasetInput:
    """The entity `MlflowClient.log_inputs` takes, from `record`'s fields (live or spooled)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    return DatasetInput(Dataset(**fields), tags=[InputTag(CONTEXT_TAG, context)])
