"""`python -m meddx <stage> [overrides]`: the thin command line that dvc.yaml calls.

Stage modules are imported only once chosen, so `--help` and light stages do not pay for
torch, Lightning or MLflow.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from meddx.errors import MeddxError
from meddx.interrupts import Interrupted, raised_as_interrupted
from meddx.redact import redact

if TYPE_CHECKING:
    from omegaconf import DictConfig

STAGES: dict[str, str] = {
    "acquire_images": "Bring the configured image dataset into data/raw/images.npz",
    "preprocess_images": "Validate, scale and lay out images for training",
    "tune": "Search hyperparameters of train_cnn with Optuna (hpo=<name>)",
    "train_cnn": "Train the image classifier (cnn=<name>)",
    "evaluate": "Score the trained CNN once on the test split",
    "report": "Write reports/report.md and .html: every model beside the published results",
    "acquire_ecg": "Bring the configured ECG records into data/raw/ecg.npz",
    "preprocess_ecg": "Filter, segment, label (AAMI) and split ECG beats",
    "train_rnn": "Train the ECG beat classifier (rnn=<name>) on the train/val records",
    "evaluate_rnn": "Score the beat classifier once on the test records (DS2): Acc, Se, +P, F1",
    "upload": "Send MLflow runs spooled in runs/unsent/ while the server was unreachable",
    "predict": "Classify new files (predict.input) with a trained model (predict.model)",
    "train_gan": "Train the class-conditional GAN (gan=<name>)",
    "generate_images": "Sample the GAN into data/synthetic/images.npz (dataset layout)",
    "evaluate_gan": "TSTR, augmentation gain, Frechet distance, memorisation check",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m meddx",
        description="Run one meddx pipeline stage, or compose the config.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="stages:\n"
        + "\n".join(f"  {name:<20} {doc}" for name, doc in STAGES.items())
        + "\n  compose              Print (or --output) the composition of conf/, as DVC does"
        "\n\nexamples:\n  python -m meddx train_cnn cnn.max_epochs=2\n"
        "  python -m meddx train_cnn --params params.yaml   # what dvc.yaml runs\n"
        "  python -m meddx train_cnn --pipeline volume      # the volume pipeline's model\n"
        "  python -m meddx compose --output params.yaml     # what `make params` runs",
    )
    parser.add_argument("command", choices=[*STAGES, "compose"], metavar="stage")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides: key=value, group=option")
    parser.add_argument("--params", help="read this composed params file instead of conf/")
    parser.add_argument(
        "--pipeline",
        help="run the stage for this entry of `pipelines` (conf/pipelines/<name>.yaml): its "
        "sections in place of the default's, its files below <folder>/<name>/",
    )
    parser.add_argument("--output", help="compose: write here (atomically) instead of stdout")
    parser.add_argument(
        "--check",
        action="store_true",
        help="compose: fail when --output differs from the composition",
    )
    return parser


def _compose(args: argparse.Namespace) -> int:
    from pathlib import Path

    from meddx.config import compose, to_yaml
    from meddx.io import write_text

    text = to_yaml(compose(args.overrides))
    if not args.output:
        sys.stdout.write(text)
        return 0
    target = Path(args.output)
    if args.check:
        if not target.is_file() or target.read_text() != text:
            print(
                f"{target} differs from the composition of conf/: run `make params`",
                file=sys.stderr,
            )
            return 1
        return 0
    write_text(target, text)
    return 0


def _enter_profile(cfg: DictConfig) -> None:
    """Re-execute this process once in the numeric profile's environment (meddx.numerics).

    Only when meddx is the program (`python -m meddx`, the `meddx` script): the libraries read
    the variables when they load, and only a fresh process is sure to load them afterwards.
    """
    from meddx import numerics

    env = numerics.reexec_environment(
        str(cfg.trainer.get("numerics", "portable")), int(cfg.trainer.num_threads)
    )
    if env is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", "meddx", *sys.argv[1:]], env)


def _stamp_metrics(cfg: DictConfig, stage: str) -> None:
    """Every metrics file says under which numerics and on what machine it was measured."""
    from meddx import numerics
    from meddx.io import write_json
    from meddx.paths import Layout

    path = Layout.of(cfg).metrics(stage)
    if path.is_file():
        written = json.loads(path.read_text())
        if isinstance(written, dict):
            write_json(path, {**written, "numerics": numerics.facts()})


def main(argv: Sequence[str] | None = None) -> int:
    """`argv` None: meddx is the program (re-executed in its numeric profile); a list: called
    from Python (tests), run in this process as it is."""
    args = _parser().parse_intermixed_args(argv)  # `train_cnn --pipeline volume seed=1`
    try:
        if args.command == "compose":
            return _compose(args)
        from meddx.config import compose, load_params

        cfg = (
            load_params(args.params, args.overrides, args.pipeline)
            if args.params
            else compose(args.overrides, pipeline=args.pipeline)
        )
        if argv is None:
            _enter_profile(cfg)
        stage = importlib.import_module(f"meddx.stages.{args.command}")
        with raised_as_interrupted():
            metrics = stage.run(cfg)
        _stamp_metrics(cfg, args.command)
    except MeddxError as exc:
        print(redact(f"meddx {args.command}: error: {exc}"), file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(
            f"meddx {args.command}: {exc}; its MLflow run is marked KILLED and the checkpoints "
            "of an unfinished training stay in runs/: rerun the stage to resume",
            file=sys.stderr,
        )
        return exc.exit_code
    print(json.dumps(metrics, indent=2, default=str))
    return 0
