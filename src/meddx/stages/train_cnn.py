"""Stage `train_cnn`: fit the configured image classifier on the preprocessed splits.

The `tune` stage's best values (models/tune/best.yaml, a params file of this stage in
dvc.yaml) go on top of params.yaml first, so `dvc repro` trains the final model with the tuned
config and dvc.lock, `dvc params diff` and `dvc exp show` say so. The run's params are the
values trained; tag `meddx.tuned_keys` names those that came from tune. The training itself
is `meddx.training.images.train`, which HPO trials run too.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from meddx.hpo.best import apply_best
from meddx.paths import Layout
from meddx.tracking import DatasetRead, stage_run
from meddx.training.images import SECTIONS, STAGE, load_data, train


def run(cfg: DictConfig) -> dict[str, Any]:
    layout = Layout.of(cfg)
    tuned_file = layout.tuned_params
    cfg, tuned = apply_best(cfg, tuned_file)
    data, inputs, facts = load_data(cfg)
    run_name = f"{STAGE} {cfg.cnn.name} on {facts['name']}"
    provenance = [*inputs, tuned_file] if tuned_file.is_file() else inputs
    dataset = DatasetRead(inputs[0], facts, ("train", "val"), "training")
    with stage_run(
        cfg, STAGE, provenance, run_name=run_name, sections=SECTIONS, dataset=dataset
    ) as tracked:
        if tuned:
            tracked.set_tags(
                {
                    "meddx.tuned_keys": " ".join(tuned),
                    "meddx.tuned_from": tuned_file.relative_to(layout.root).as_posix(),
                }
            )
        return train(cfg, data, inputs, tracked)
