"""`python -m meddx predict predict.input=<file or folder> predict.model=<model>`: a trained
model's suggestions on new files.

Not a DVC stage: it reads the user's files and writes to `predict.output`, never a pipeline
output. The model is found by `meddx.evaluation.model_source` (path, run, registered name);
each input goes to the predictor of its kind, chosen by file suffix. A predictor is a module
with `KIND` (its options are `predict.<KIND>`), `SUFFIXES`, `fits(info)` (does the model
take this kind of input) and `predict(path, net, info, model, options, out_dir) -> summary`;
a new kind of input (images) is one more module in `PREDICTORS`. In a folder, a file that
cannot be predicted is reported and skipped, and the command fails after the others are done.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from omegaconf import DictConfig

from meddx.errors import ConfigError, DataError
from meddx.evaluation import ecg_predict, image_predict
from meddx.evaluation.model_source import model_file
from meddx.models import export

PREDICTORS: tuple[ModuleType, ...] = (ecg_predict, image_predict)
INPUT_KEY = "predict.input"


def _predictor(path: Path) -> ModuleType | None:
    suffix = path.suffix.lower()
    return next((p for p in PREDICTORS if suffix in p.SUFFIXES), None)


def inputs(source: Path) -> list[Path]:
    """The files to predict: `source` itself, or the readable files of the folder, sorted."""
    if source.is_file():
        if _predictor(source) is None:
            known = sorted({s for p in PREDICTORS for s in p.SUFFIXES})
            raise DataError(f"{source}: predict reads files ending in {', '.join(known)}")
        return [source]
    if source.is_dir():
        found = sorted(p for p in source.rglob("*") if p.is_file() and _predictor(p))
        if not found:
            known = sorted({s for p in PREDICTORS for s in p.SUFFIXES})
            raise DataError(f"{source} holds no file predict reads ({', '.join(known)})")
        return found
    raise DataError(f"{INPUT_KEY}={source} does not exist")


def run(cfg: DictConfig) -> dict[str, Any]:
    options = cfg.predict
    if not options.input:
        raise ConfigError(f"{INPUT_KEY} is not set: give the file or folder to predict")
    files = inputs(Path(str(options.input)))
    torch.set_num_threads(cfg.trainer.num_threads)
    model = str(options.model)
    with model_file(options.model, cfg) as path:
        net, info = export.load(path)
    out_dir = Path(str(options.output))
    results, failed = {}, {}
    for number, file in enumerate(files, start=1):
        predictor = _predictor(file)
        assert predictor is not None  # inputs() keeps only readable files
        if not predictor.fits(info):
            raise ConfigError(
                f"predict.model={model} (trained by {info.get('stage', '?')}) does not take "
                f"{predictor.KIND} inputs like {file}: choose a {predictor.KIND} model"
            )
        try:
            results[str(file)] = predictor.predict(
                file, net, info, model, options[predictor.KIND], out_dir
            )
        except DataError as exc:
            if len(files) == 1:
                raise
            failed[str(file)] = str(exc)
            print(f"meddx predict: skipped {file}: {exc}", file=sys.stderr, flush=True)
        else:
            print(f"meddx predict: [{number}/{len(files)}] {file}", file=sys.stderr, flush=True)
    if failed:
        raise DataError(
            f"{len(failed)} of {len(files)} inputs could not be predicted (the other "
            f"{len(results)} were, into {out_dir}): "
            + "; ".join(f"{file}: {why}" for file, why in failed.items())
        )
    return {"model": model, "output": str(out_dir), "predicted": results}
