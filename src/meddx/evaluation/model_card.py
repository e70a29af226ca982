"""The model card of an evaluated classifier: Markdown a reader of the registry can trust.

Built only from measured facts: the preprocess stage's dataset facts (splits, counts, class
balance), the evaluation's metrics with their bootstrap CIs, the calibration fitted on the
validation split (its temperature, ECE and NLL before and after) and per-class figures, and the
network config and provenance the model file and checkout carry. It holds no run id or registry
version, so the same model and code give the same card (the file is a DVC output); the registry
version carries it as its description (`describe`), the evaluate run as its `model_card.md`
artifact.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meddx.config import flatten
from meddx.evaluation import calibration
from meddx.evaluation.document import Document
from meddx.evaluation.report.cells import number, with_ci

if TYPE_CHECKING:
    from meddx.paths import Layout
    from meddx.tracking import StageRun

SYNTHETIC = ("synthetic", "synthetic3d")
COUNTS = {"support", "n_cases", "missed"}  # per-class integers, not scores
SPLIT_ORDER = ("train", "val", "test")  # the facts file keeps its keys sorted
LIMITS = (
    "Research use only: an experiment of the meddx pipeline, not a medical device; it was "
    "not validated for clinical decisions and must not make one.",
    "Scored once, on the test split of the same dataset it was trained on: performance on "
    "other sites, scanners, populations or label definitions is unknown (no external "
    "validation).",
    "Inputs must be preprocessed as in training (same size, channels and intensity scaling); "
    "the model refuses arrays of another layout.",
)


def card_path(layout: Layout, evaluate_stage: str) -> Path:
    """Where the card of the model that `evaluate_stage` scored is written and linked from:
    named after that stage as the report names it (`evaluate`, `volume/evaluate`), so every
    image pipeline's model has its own and the report finds it from its config alone."""
    return layout.reports / "model_cards" / f"{evaluate_stage}.md"


def _balance(counts: Mapping[str, Any]) -> list[str]:
    total = counts.get("n") or 0
    return [
        f"{key.removeprefix('class_')}: {value} ({value / total:.1%})" if total else str(value)
        for key, value in counts.items()
        if key.startswith("class_") and isinstance(value, int)
    ]


def _metrics(doc: Document, result: Mapping[str, Any]) -> None:
    keys = [
        k
        for k, v in result.items()
        if k.startswith("test_")
        and isinstance(v, int | float)
        and not k.endswith(("_ci_low", "_ci_high"))
    ]
    doc.paragraph(
        f"Test split: {result.get('n_test', '?')} samples; brackets: 95% bootstrap percentile "
        f"intervals over {result.get('bootstrap', 0)} resamples."
    )
    doc.table(
        ["metric", "value [95% CI]"], [[k.removeprefix("test_"), with_ci(result, k)] for k in keys]
    )


def _per_class(doc: Document, per_class: Mapping[str, Mapping[str, Any]]) -> None:
    columns = list(dict.fromkeys(c for row in per_class.values() for c in row))
    rows = [
        [name, *[str(row[c]) if c in COUNTS else number(row.get(c)) for c in columns]]
        for name, row in per_class.items()
    ]
    doc.table(["class", *columns], rows)


def build(
    name: str,
    facts: Mapping[str, Any],
    result: Mapping[str, Any],
    info: Mapping[str, Any],
    provenance: Mapping[str, str],
    config: Mapping[str, Any],
    base: Path,
    preprocessed: tuple[str, str] = ("preprocess_images", "data/processed/images.json"),
) -> str:
    """The card of model `name`: `facts` of images.json, `result` of evaluate.json, `info` of
    the model file, `provenance` (git commit, dirty flag), `config` (the evaluation's
    sections), `base` (where the card is written, for the Document's relative paths) and
    `preprocessed` (the stage and file the facts came from: another pipeline's are its own)."""
    dataset = facts["name"]
    doc = Document(f"Model card: {name}", base)
    doc.heading("Intended use and limits")
    segments = "test_dice" in result  # a segmentation's headline, as the report's table tells
    does = "Segments" if segments else "Classifies"
    into = "structures" if segments else f"{facts['task']} labels"
    use = (
        f"{does} {facts.get('spatial_dims', 2)}-D {facts['channels']}-channel "
        f"{facts['size']} px inputs of `{dataset}` into {into}: "
        f"{', '.join(facts['class_names'])}."
    )
    limits = list(LIMITS)
    if dataset in SYNTHETIC:
        limits.insert(
            0,
            f"`{dataset}` is generated shapes, not patients: its figures say "
            "nothing about clinical performance.",
        )
    doc.bullets([use, *limits])
    doc.heading("Training data")
    doc.paragraph(
        f"Dataset `{dataset}` (task {facts['task']}), preprocessed by stage "
        f"`{preprocessed[0]}` ({preprocessed[1]}). Trained on `train`, model selected "
        "on `val`, scored on `test`."
    )
    splits = facts.get("splits", {})
    order = sorted(splits, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else 9, s))
    doc.table(
        ["split", "n", "class balance"],
        [[s, str(splits[s].get("n", "?")), "; ".join(_balance(splits[s]))] for s in order],
    )
    doc.heading("Metrics")
    _metrics(doc, result)
    doc.heading("Calibration")
    doc.paragraph(_calibration(result, info, str(facts["task"])))
    if result.get("per_class"):
        doc.heading("Per class (test)")
        _per_class(doc, result["per_class"])
    doc.heading("Config and provenance")
    best = info.get("best", {})
    doc.bullets(
        [
            f"code: git commit {provenance.get('git.commit', 'unknown')} "
            f"(uncommitted changes: {provenance.get('git.dirty', 'unknown')})",
            f"trained by stage `{info.get('stage', 'train_cnn')}`; selection on validation: "
            + ", ".join(f"{k} {_figure(v)}" for k, v in best.items() if _is_number(v)),
        ]
    )
    params = {**flatten({"net": info.get("net", {})}), **flatten(dict(config))}
    doc.table(["param", "value"], [[k, f"`{v}`"] for k, v in params.items()])
    return doc.markdown()


def _calibration(result: Mapping[str, Any], info: Mapping[str, Any], task: str) -> str:
    """What the confidences of the registered model are, and the ECE before and after."""
    if "test_ece" not in result:
        return f"Not measured: the evaluation of task {task} computes no calibration."
    measured = (
        f"Expected calibration error (ECE, test) of the network's probabilities: "
        f"{with_ci(result, 'test_ece')}; the reliability diagram is plots/reliability.png of "
        "the evaluate run (reports/plots/evaluate/reliability.png)."
    )
    stored = info.get("calibration")
    if stored is None:
        return f"{measured} {calibration.NOT_FITTED}"
    before, after = result["test_ece"], result["test_ece_calibrated"]
    worse = (
        " On this test split the temperature raises the ECE: what it learnt on the validation "
        "split does not carry over to the test split."
        if after > before
        else ""
    )
    return (
        f"{measured} Calibration: {stored['method']} (Guo et al. 2017), "
        f"{calibration.describe(stored)}, the T minimising the NLL of {stored['n']} "
        f"validation samples ({number(result['val_nll'])} -> "
        f"{number(result['val_nll_calibrated'])}); the registered model and `predict` report "
        "the calibrated probability of the predicted class as its confidence. On the test "
        f"split: ECE {number(before)} -> {number(after)}, NLL {number(result['test_nll'])} -> "
        f"{number(result['test_nll_calibrated'])}.{worse}"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _figure(value: float) -> str:
    """Counts (epochs) as counts, scores to four places."""
    return str(value) if isinstance(value, int) else number(float(value))


def describe(run: StageRun, name: str, version: str, card: str) -> None:
    """The card as the registered version's description (what the registry's page shows)."""
    run.client.update_model_version(name, version, description=card)
