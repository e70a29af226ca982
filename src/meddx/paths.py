"""Where each stage reads and writes, relative to `cfg.paths.root`.

The layout is fixed here (and mirrored by the `outs`/`deps` of dvc.yaml) rather than spread
through the config, so that moving the whole project is one override: `paths.root=/elsewhere`.

An image pipeline other than the default one (`--pipeline volume`, which sets
`paths.pipeline`) keeps the same file names one folder down: `data/raw/volume/images.npz`,
`models/volume/cnn/`, `reports/metrics/volume/evaluate.json`, `runs/volume/...`, so the same
stage modules serve every pipeline and the default pipeline's paths stay as they were. A
stage's name is scoped the same way (`volume/evaluate`): the MLflow tag `meddx.stage` and the
report's key for the stage's metrics file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

from meddx.errors import DataError

MIRROR_ENV = "MEDDX_DATA_MIRROR"
DEFAULT_CACHE = Path("data") / "cache"


def project_root(root: str | os.PathLike[str]) -> Path:
    """The checkout that owns the local stores (mlflow.db, optuna.db, runs/).

    Also from inside a `dvc exp run --temp` copy, so experiments share the project's stores.
    """
    resolved = Path(root).resolve()
    parts = resolved.parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return resolved


class Layout:
    """Named files of one project tree, plus the two data folders outside its DVC graph.

    `cache` holds downloads, kept between runs (never a DVC out: DVC would delete it);
    `mirror` is a read-only folder of real data the user keeps, or None. Both come from
    `cfg.paths` in `of()`, the one place every stage resolves them.
    """

    def __init__(
        self,
        root: str | Path,
        cache: str | Path = DEFAULT_CACHE,
        mirror: str | Path | None = None,
        pipeline: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.cache = self._under_root(cache)
        self.mirror = self._under_root(mirror) if mirror else None
        self.pipeline = pipeline

    @classmethod
    def of(cls, cfg: DictConfig) -> Layout:
        """`paths.cache`, `paths.mirror` (relative: to `paths.root`), else $MEDDX_DATA_MIRROR;
        `paths.pipeline` (set by `--pipeline`) scopes the files of a pipeline."""
        env = os.environ.get(MIRROR_ENV)
        mirror = cfg.paths.get("mirror") or (Path(env).expanduser().resolve() if env else None)
        cache = cfg.paths.get("cache") or DEFAULT_CACHE
        return cls(cfg.paths.root, cache, mirror, cfg.paths.get("pipeline"))

    def _under_root(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.root / path

    def _scoped(self, folder: str, *rest: str) -> Path:
        """`root/<folder>/<pipeline>/<rest>`: the pipeline's own folder in each of the tree's."""
        return self.root / folder / (self.pipeline or "") / Path(*rest)

    def stage(self, stage: str) -> str:
        """The stage as this pipeline's: `volume/evaluate` (the default pipeline: `evaluate`)."""
        return f"{self.pipeline}/{stage}" if self.pipeline else stage

    @property
    def raw_images(self) -> Path:
        return self._scoped("data/raw", "images.npz")

    @property
    def processed_images(self) -> Path:
        return self._scoped("data/processed", "images.npz")

    @property
    def processed_images_meta(self) -> Path:
        return self._scoped("data/processed", "images.json")

    @property
    def raw_ecg(self) -> Path:
        return self._scoped("data/raw", "ecg.npz")

    @property
    def processed_ecg(self) -> Path:
        return self._scoped("data/processed", "ecg.npz")

    @property
    def processed_ecg_meta(self) -> Path:
        return self._scoped("data/processed", "ecg.json")

    def cache_dir(self, dataset: str) -> Path:
        """The downloads of a dataset that needs a folder of its own (many files)."""
        return self.cache / dataset

    @property
    def synthetic_images(self) -> Path:
        """Images sampled from the trained GAN, stored like a raw dataset (MedMNIST layout)."""
        return self._scoped("data/synthetic", "images.npz")

    def model_dir(self, model: str) -> Path:
        return self._scoped("models", model)

    def metrics(self, stage: str) -> Path:
        return self._scoped("reports/metrics", f"{stage}.json")

    def plots(self, stage: str) -> Path:
        return self._scoped("reports/plots", stage)

    @property
    def reports(self) -> Path:
        """The report (report.md, report.html) lives here; its links are relative to it."""
        return self.root / "reports"

    @property
    def unsent_runs(self) -> Path:
        """MLflow runs recorded while the tracking server was unreachable (`meddx upload`)."""
        return self.root / "runs" / "unsent"

    @property
    def tuned_params(self) -> Path:
        """The tune stage's result: a params file of train_cnn, applied on top of params.yaml."""
        return self._scoped("models", "tune", "best.yaml")

    def scratch(self, stage: str) -> Path:
        """Throw-away outputs of a stage's inner runs (HPO trials). Not a DVC out."""
        return self._scoped("runs", stage, "scratch")

    def resume_dir(self, stage: str, key: str) -> Path:
        """Checkpoints of an unfinished run. Not a DVC out: DVC deletes outs before a rerun."""
        return self._scoped("runs", stage, key)


def _pipeline_file(root: Path) -> Path | None:
    """The dvc.yaml of the project tree, else of the working directory, else of this checkout."""
    for folder in (root, Path.cwd(), Path(__file__).resolve().parents[2]):
        if (folder / "dvc.yaml").is_file():
            return folder / "dvc.yaml"
    return None


def pipeline_stages(dvc_yaml: Path) -> dict[str, dict[str, Any]]:
    """The stages of `dvc_yaml` as DVC expands them: each `foreach` group into its
    `<group>@<key>` stages, interpolated from the params.yaml beside it (DVC's own resolver)."""
    from types import SimpleNamespace

    from dvc.fs import LocalFileSystem
    from dvc.parsing import DataResolver

    data = yaml.safe_load(dvc_yaml.read_text()) or {}
    repo = SimpleNamespace(fs=LocalFileSystem(), config={})
    return DataResolver(repo, str(dvc_yaml.parent.resolve()), data).resolve()["stages"]


def producer_of(path: Path, root: Path) -> str | None:
    """The dvc.yaml stage whose outs contain `path`, so a missing input names its maker."""
    dvc_yaml = _pipeline_file(root)
    if dvc_yaml is None:
        return None
    try:
        stages = pipeline_stages(dvc_yaml)
    except Exception:  # an unresolvable dvc.yaml costs the hint, not the error it is for
        return None
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        rel = path
    for name, stage in stages.items():
        for out in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            out_path = next(iter(out)) if isinstance(out, dict) else out
            if rel == Path(out_path) or Path(out_path) in rel.parents:
                return name
    return None


def require(path: Path, root: Path) -> Path:
    """Fail with the name of the stage that makes `path` when it is not there."""
    if path.exists():
        return path
    stage = producer_of(path, root)
    hint = (
        f"it is produced by stage '{stage}': run `dvc repro {stage}`"
        if stage
        else "no dvc.yaml stage produces it"
    )
    raise DataError(f"Input {path} is missing; {hint}")
