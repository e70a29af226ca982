"""`python -m meddx predict predict.input=<file or folder> predict.model=<model>`: a trained
model's suggestions on new files.

Not a DVC stage: it reads the user's files and writes to `predict.output`, never a pipeline
output. The model is found by `meddx.evaluation.model_source` (path, run, registered name);
each input goes to the predictor of its kind, chosen by file suffix and by the model. A
predictor is a module with `KIND` (its options are `predict.<KIND>`), `SUFFIXES`, `fits(info)`
(does the model take this kind of input) and `predict(path, net, info, model, options,
out_dir) -> summary`, and, if a folder of files is one input to it (a DICOM series is one
volume), `SERIES`: the suffixes of those files. A new kind of input is one more module in
`PREDICTORS`; of those that read a file, the first whose `fits` takes the model predicts it
(a NIfTI file is a volume to a volume model, an image to an image model). In a folder, a
file that cannot be predicted is reported and skipped, and the command fails after the
others are done.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from omegaconf import DictConfig

from meddx.errors import ConfigError, DataError
from meddx.evaluation import (
    ecg_predict,
    image_predict,
    mask_predict,
    volume_mask_predict,
    volume_predict,
)
from meddx.evaluation.model_source import model_file
from meddx.models import export

PREDICTORS: tuple[ModuleType, ...] = (
    ecg_predict,
    mask_predict,
    volume_mask_predict,
    volume_predict,
    image_predict,
)
INPUT_KEY = "predict.input"


def _series_suffixes(info: dict[str, Any]) -> tuple[str, ...]:
    """Suffixes of the files a folder holds when it is one input to this model (DICOM series)."""
    return tuple(s for p in PREDICTORS if p.fits(info) for s in getattr(p, "SERIES", ()))


def _is_series(folder: Path, info: dict[str, Any]) -> bool:
    series = _series_suffixes(info)
    return bool(series) and any(
        f.is_file() and f.name.lower().endswith(series) for f in folder.iterdir()
    )


def _predictor(path: Path, info: dict[str, Any]) -> ModuleType | None:
    """The first predictor that reads `path` and takes the model, else the first that reads
    it (which refuses the model by name), else None."""
    if path.is_dir():
        reading = [p for p in PREDICTORS if p.fits(info) and getattr(p, "SERIES", ())]
    else:
        reading = [p for p in PREDICTORS if path.name.lower().endswith(p.SUFFIXES)]
    return next((p for p in reading if p.fits(info)), reading[0] if reading else None)


def _one_input(path: Path, info: dict[str, Any]) -> bool:
    """Whether `path`, found in a folder, is an input: a series folder, or a readable file
    outside one (its slices are the series')."""
    if path.is_dir():
        return _is_series(path, info)
    return not _is_series(path.parent, info) and _predictor(path, info) is not None


def inputs(source: Path, info: dict[str, Any]) -> list[Path]:
    """What to predict: `source` itself, or the readable files of the folder, sorted; for a
    volume model a folder of DICOM slices is one input (a series), never one per slice."""
    known = sorted({s for p in PREDICTORS for s in p.SUFFIXES})
    if source.is_file() or (source.is_dir() and _is_series(source, info)):
        if _predictor(source, info) is None:
            raise DataError(f"{source}: predict reads files ending in {', '.join(known)}")
        return [source]
    if source.is_dir():
        found = [path for path in sorted(source.rglob("*")) if _one_input(path, info)]
        if not found:
            raise DataError(f"{source} holds no file predict reads ({', '.join(known)})")
        return found
    raise DataError(f"{INPUT_KEY}={source} does not exist")


def run(cfg: DictConfig) -> dict[str, Any]:
    options = cfg.predict
    if not options.input:
        raise ConfigError(f"{INPUT_KEY} is not set: give the file or folder to predict")
    source = Path(str(options.input))
    if not source.exists():
        raise DataError(f"{INPUT_KEY}={source} does not exist")
    torch.set_num_threads(cfg.trainer.num_threads)
    model = str(options.model)
    with model_file(options.model, cfg) as path:
        net, info = export.load(path)
    files = inputs(source, info)
    out_dir = Path(str(options.output))
    results, failed = {}, {}
    for number, file in enumerate(files, start=1):
        predictor = _predictor(file, info)
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
                raise DataError(f"{file}: {exc}") from None
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
