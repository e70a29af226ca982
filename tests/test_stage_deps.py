"""Each stage of dvc.yaml lists the meddx code it imports, so a change to it reruns the stage.

Import analysis (grimp, which import-linter runs on) gives every module a stage imports,
directly or not. Plumbing that moves files and records runs is left out, as dvc.yaml leaves it
out: none of it computes a result, and listing it would rerun every stage on each change.
Networks are built from `_target_` configs, which no import shows: stages that build them list
the whole `src/meddx/models` folder.
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest
import yaml

from conftest import REPO
from meddx.paths import pipeline_stages

PLUMBING = {
    "meddx",
    "meddx.config",
    "meddx.config_schema",
    "meddx.interrupts",
    "meddx.orphans",
    "meddx.errors",
    "meddx.io",
    "meddx.paths",
    "meddx.numerics",
    "meddx.provenance",
    "meddx.redact",
    "meddx.tracking",  # and its modules
}
STAGES = pipeline_stages(REPO / "dvc.yaml")  # `foreach` groups expanded, as DVC runs them
PIPELINES = yaml.safe_load((REPO / "params.yaml").read_text())["pipelines"]
PIPELINE_SECTIONS = ("data.image", "cnn")  # what an entry of `pipelines` sets (meddx.config)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("meddx", cache_dir=None)


def source(module: str) -> str:
    path = Path("src", *module.split("."))
    return f"{path}/__init__.py" if (REPO / path).is_dir() else f"{path}.py"


def code_deps(stage: str) -> list[str]:
    return [d for d in STAGES[stage]["deps"] if d.startswith("src/") and not d.endswith(".yaml")]


def module_of(stage: str) -> str:
    """The stage module a dvc.yaml stage runs (`python -m meddx <module> ...`)."""
    return STAGES[stage]["cmd"].split()[3]


def pipeline_of(stage: str) -> str | None:
    command = STAGES[stage]["cmd"].split()
    return command[command.index("--pipeline") + 1] if "--pipeline" in command else None


ENTRY_STAGES = sorted(s for s in STAGES if pipeline_of(s))


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_lists_the_code_it_imports(graph: grimp.ImportGraph, stage: str) -> None:
    module = f"meddx.stages.{module_of(stage)}"
    imported = {
        m
        for m in graph.find_upstream_modules(module) | {module}
        if m not in PLUMBING and not m.startswith("meddx.tracking.")
    }
    files = {source(m) for m in imported if not source(m).endswith("__init__.py")}
    deps = code_deps(stage)

    missing = {f for f in files if not any(f == d or f.startswith(f"{d}/") for d in deps)}
    stale = {d for d in deps if d.endswith(".py") and d not in files}
    assert not missing, f"{stage}: add to its deps in dvc.yaml"
    assert not stale, f"{stage}: lists code it does not import"


def test_every_pipeline_entry_has_its_stages() -> None:
    made = {(module_of(s), pipeline_of(s)) for s in ENTRY_STAGES}
    modules = ("acquire_images", "preprocess_images", "train_cnn", "evaluate")
    assert made == {(m, p) for m in modules for p in PIPELINES}


@pytest.mark.parametrize("stage", ENTRY_STAGES)
def test_a_pipeline_stage_lists_the_code_and_files_of_its_default_stage(stage: str) -> None:
    default, name = module_of(stage), pipeline_of(stage)
    moved = {
        dep.replace(f"/{name}/", "/", 1) if not dep.startswith("src/") else dep
        for dep in STAGES[stage]["deps"]
    }
    assert moved == set(STAGES[default]["deps"])


@pytest.mark.parametrize("stage", ENTRY_STAGES)
def test_a_pipeline_stage_reads_its_entrys_sections_and_the_shared_rest(stage: str) -> None:
    default, name = module_of(stage), pipeline_of(stage)
    own = [p for p in STAGES[default]["params"] if isinstance(p, str)]  # not tune's best.yaml
    expected = {f"pipelines.{name}.{p}" if p.startswith(PIPELINE_SECTIONS) else p for p in own}
    assert set(STAGES[stage]["params"]) == expected


def test_each_pipeline_entry_is_evaluated_by_the_group_of_its_task() -> None:
    """The evaluate groups differ in the files they declare (curves; overlays and masks), so an
    entry in the wrong one would fail `dvc repro` on an out its evaluation never writes."""
    groups = {"segmentation": "evaluate_seg_for"}
    evaluating = sorted(s for s in ENTRY_STAGES if module_of(s) == "evaluate")
    assert evaluating == sorted(
        f"{groups.get(entry['data']['image']['task'], 'evaluate_for')}@{name}"
        for name, entry in PIPELINES.items()
    )
