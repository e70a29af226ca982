"""What the numbers in conf/ mean, declared once, so an impossible value fails before any work.

Types are checked where overrides are applied (`meddx.config`); this is about meaning: a
batch of 0 images divides by zero deep in a sampler, `max_epochs: -1` is Lightning's "no
limit", a NaN learning rate only fails inside the optimizer, and all of them used to leave a
FAILED MLflow run and a checkpoint folder behind. `problems()` runs on every composed or
loaded config, before a stage opens its run.

`SCHEMA` maps dotted-key patterns (`fnmatch`: `*` also crosses dots) to a `Number`; the first
pattern that matches a key decides. A list value is checked element by element. A pattern
mapped to None marks keys handed as they are to a library that checks them itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

MAX_SEED = 2**32 - 1  # numpy's seed range, which Lightning's seed_everything enforces


@dataclass(frozen=True)
class Number:
    """A key's meaning: an integer or a finite real between `low` and `high`, maybe null."""

    meaning: str
    integer: bool = False
    low: float = -math.inf
    high: float = math.inf
    above: bool = False  # strictly greater than `low`
    below: bool = False  # strictly less than `high`
    null: bool = False

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.null
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)):
            return False
        if not math.isfinite(value):
            return False
        low_ok = value > self.low if self.above else value >= self.low
        high_ok = value < self.high if self.below else value <= self.high
        return low_ok and high_ok

    def expected(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        if math.isinf(self.low) and math.isinf(self.high):
            bounds = ""
        elif math.isinf(self.high):
            bounds = f" {'>' if self.above else '>='} {_plain(self.low)}"
        else:
            left, right = "(" if self.above else "[", ")" if self.below else "]"
            bounds = f" in {left}{_plain(self.low)}, {_plain(self.high)}{right}"
        return kind + bounds + (", or null" if self.null else "")


def _plain(bound: float) -> str:
    """4294967295 rather than 4.29497e+09: the bound is what the user has to type."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def count(meaning: str, low: int = 1, null: bool = False) -> Number:
    return Number(meaning, integer=True, low=low, null=null)


def positive(meaning: str, null: bool = False) -> Number:
    return Number(meaning, low=0, above=True, null=null)


def non_negative(meaning: str) -> Number:
    return Number(meaning, low=0)


def fraction(meaning: str, below_one: bool = False) -> Number:
    return Number(meaning, low=0, high=1, below=below_one)


SCHEMA: tuple[tuple[str, Number | None], ...] = (
    ("seed", Number("a seed", integer=True, low=0, high=MAX_SEED)),
    # cnn, rnn, gan: training
    ("*.max_epochs", count("the number of training epochs")),
    ("*.batch_size", count("a batch size")),
    ("*.eval_batch_size", count("a batch size")),
    ("*.ensemble", count("the number of ensemble members")),
    ("*.patience", count("epochs without improvement before stopping (0: off)", low=0)),
    ("*.lr", positive("a learning rate")),
    ("*.scheduler.max_lr", positive("a learning rate")),
    ("*.scheduler.gamma", positive("a learning-rate factor")),
    ("*.scheduler.fractions", Number("a fraction of the epochs", low=0, high=1, above=True)),
    ("*.optimizer*.weight_decay", non_negative("a weight decay")),
    ("*.optimizer*.momentum", fraction("a momentum", below_one=True)),
    ("*.optimizer*.betas", fraction("an Adam beta", below_one=True)),
    ("*.dropout", fraction("a dropout probability", below_one=True)),
    ("*.label_smoothing", fraction("a label-smoothing share", below_one=True)),
    ("*.mixup_alpha", non_negative("the mixup Beta parameter (0: off)")),
    ("*.loss.gamma", non_negative("the focal-loss exponent")),
    ("*.loss.count_floor", count("a class count", low=0)),
    ("*.net.channels", count("a layer width")),
    ("*.net.hidden", count("a layer width")),
    ("*.net.head_hidden", count("a layer width")),
    ("*.net.layers", count("a number of layers")),
    ("*.net.convs_per_stage", count("a number of layers")),
    ("*.net.kernel", count("a kernel size")),
    ("*.net.conv1_t_size", count("the stem's kernel size")),
    ("*.net.conv1_t_stride", count("the stem's stride")),
    ("*.net.block_inplanes", count("a layer width")),
    ("*.net.downsample", count("a pooling factor")),
    ("*.net.strides", count("a down-sampling stride")),
    ("*.net.num_res_units", count("residual units per layer", low=0)),
    ("*.net.init_filters", count("a layer width")),
    ("gan.*.base_channels", count("a layer width")),
    ("gan.*.latent_dim", count("a noise size")),
    ("gan.*.embed_dim", count("an embedding size")),
    ("gan.n_critic", count("discriminator steps per generator step")),
    ("gan.gp_weight", non_negative("a gradient-penalty weight")),
    ("gan.grid_per_class", count("samples per class")),
    ("gan.generate.per_class", count("images per class", null=True)),
    ("gan.evaluate.max_samples", count("a number of images")),
    ("gan.evaluate.k", count("the k of k nearest neighbours")),
    ("gan.evaluate.near_copy_ratio", positive("a distance ratio")),
    ("gan.evaluate.near_copy_tolerance", fraction("a share of images")),
    ("gan.evaluate.aug_share", non_negative("synthetic images per real one")),
    # trainer, tracking
    ("trainer.devices", count("devices per node")),
    ("trainer.num_nodes", count("a number of nodes")),
    ("trainer.num_threads", count("a number of threads")),
    ("tracking.retries", count("attempts per request", low=0)),
    ("tracking.timeout", positive("seconds per request")),
    ("tracking.backoff", non_negative("seconds between retries")),
    # hpo
    ("hpo.n_trials", count("the number of trials (0: skip the search)", low=0)),
    ("hpo.n_workers", count("a number of worker processes")),
    ("hpo.timeout", positive("seconds", null=True)),
    ("hpo.space.*.low", Number("a search-space bound")),
    ("hpo.space.*.high", Number("a search-space bound")),
    ("hpo.space.*.step", positive("a search-space step", null=True)),
    ("hpo.sampler_kwargs.*", None),  # Optuna's own arguments
    ("hpo.pruner_kwargs.*", None),
    # data
    ("data.image.channels", count("a number of image channels")),
    ("data.image.size", count("an image side in pixels")),
    ("data.image.spatial_dims", Number("2 (images) or 3 (volumes)", integer=True, low=2, high=3)),
    ("data.image.spacing", positive("a pixel (voxel) spacing in mm", null=True)),
    ("data.image.split.val", fraction("a share of the groups", below_one=True)),
    ("data.image.split.test", fraction("a share of the groups", below_one=True)),
    ("data.image.split.seed", Number("a seed", integer=True, low=0, high=MAX_SEED)),
    ("data.image.synthetic.train", count("a split size")),
    ("data.image.synthetic.val", count("a split size")),
    ("data.image.synthetic.test", count("a split size")),
    ("data.image.synthetic.noise", non_negative("a noise level")),
    ("data.image.augment.shift", count("a shift in pixels", low=0)),
    ("data.image.augment.cutout", count("a square side in pixels (0: off)", low=0)),
    ("data.image.augment.rotate", Number("a rotation in degrees", low=0, high=180)),
    ("data.image.augment.scale", fraction("a zoom fraction", below_one=True)),
    ("data.image.augment.intensity_scale", non_negative("a gain jitter (0: off)")),
    ("data.image.augment.intensity_shift", non_negative("an offset jitter (0: off)")),
    ("data.image.folder.*_fraction", fraction("a share of the images", below_one=True)),
    ("data.image.folder.window", Number("an intensity bound", null=True)),
    ("data.image.standardise.spacing", positive("a voxel spacing in mm", null=True)),
    ("data.image.standardise.window", Number("a CT window bound in HU")),
    ("data.image.standardise.percentiles", Number("a percentile", low=0, high=100)),
    ("data.ecg.fs", positive("a sampling rate in Hz")),
    ("data.ecg.window", count("samples around the R peak", low=0)),
    ("data.ecg.filter.median_ms", positive("a filter width in ms")),
    ("data.ecg.filter.highpass_hz", positive("a cut-off frequency")),
    ("data.ecg.filter.lowpass_hz", positive("a cut-off frequency", null=True)),
    ("data.ecg.filter.order", count("a filter order")),
    ("data.ecg.rr_local", count("a number of RR intervals")),
    ("data.ecg.rr_average_s", positive("seconds")),
    ("data.ecg.val_records", count("a number of records")),
    ("data.ecg.intra_fractions", fraction("a share of the beats")),
    ("data.ecg.records", count("a record number", low=0, null=True)),
    ("data.ecg.ds1", count("a record number", low=0)),
    ("data.ecg.ds2", count("a record number", low=0)),
    ("data.ecg.exclude", count("a record number", low=0)),
    ("data.ecg.synthetic.beats_per_record", count("beats per record")),
    ("data.ecg.synthetic.noise", non_negative("a noise level")),
    # evaluate
    ("evaluate.bootstrap", count("bootstrap resamples (0: no intervals)", low=0)),
    ("evaluate.confidence", Number("a confidence level", low=0, high=1, above=True, below=True)),
    ("evaluate.calibration_bins", count("a number of bins")),
    ("evaluate.gradcam.per_class", count("images per class", low=0)),
    # predict
    ("predict.ecg.fs", positive("a sampling rate in Hz", null=True)),
    ("predict.ecg.strip_seconds", positive("seconds")),
    ("predict.image.window", Number("an intensity bound", null=True)),
    ("predict.image.pixel_size_mm", positive("mm per pixel", null=True)),
    ("predict.volume.window", Number("an intensity bound", null=True)),
)


def _unscoped(key: str) -> str:
    """`pipelines.volume.data.image.size` -> `data.image.size`: an image pipeline's sections
    (meddx.config) mean what the default pipeline's do."""
    parts = key.split(".")
    return ".".join(parts[2:]) if parts[0] == "pipelines" and len(parts) > 2 else key


def declared(key: str) -> bool:
    """Whether some pattern of `SCHEMA` gives the dotted key a meaning."""
    return any(fnmatchcase(_unscoped(key), pattern) for pattern, _ in SCHEMA)


def rule_for(key: str) -> Number | None:
    """The meaning of a dotted key: the first pattern of `SCHEMA` that matches, else None."""
    key = _unscoped(key)
    return next((rule for pattern, rule in SCHEMA if fnmatchcase(key, pattern)), None)


def problems(flat: Mapping[str, Any]) -> list[str]:
    """`key=value: what it must be` for every value of a flattened config its rule refuses."""
    found = []
    for key, value in flat.items():
        rule = rule_for(key)
        if rule is None:
            continue
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if not rule.accepts(item):
                name = key if index is None else f"{key}[{index}]"
                shown = "null" if item is None else repr(item)
                found.append(f"{name}={shown}: {rule.meaning} must be {rule.expected()}")
    return found
