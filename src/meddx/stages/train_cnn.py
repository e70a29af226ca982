"""Stage `train_cnn`: fit the configured image classifier on the preprocessed splits.

When the `tune` stage has run, its best overrides (models/tune/best_overrides.yaml) go on
top of params.yaml first, so `dvc repro` trains the final model with the tuned config.
The training itself is `meddx.training.images.train`, which HPO trials run too.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from meddx.hpo.best import apply_best
from meddx.paths import Layout
from meddx.tracking import stage_run
from meddx.training.images import SECTIONS, STAGE, load_data, train


def run(cfg: DictConfig) -> dict[str, Any]:
    best = Layout.of(cfg).best_overrides
    cfg, tuned = apply_best(cfg, best)
    data, inputs, facts = load_data(cfg)
    run_name = f"{STAGE} {cfg.cnn.name} on {facts['name']}"
    provenance = [*inputs, best] if best.is_file() else inputs
    with stage_run(cfg, STAGE, inputs=provenance, run_name=run_name, sections=SECTIONS) as tracked:
        if tuned:
            tracked.set_tags({"meddx.tuned_overrides": " ".join(tuned)})
        return train(cfg, data, inputs, tracked)
