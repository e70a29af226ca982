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
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("meddx", cache_dir=None)


def source(module: str) -> str:
    path = Path("src", *module.split("."))
    return f"{path}/__init__.py" if (REPO / path).is_dir() else f"{path}.py"


def code_deps(stage: str) -> list[str]:
    return [d for d in STAGES[stage]["deps"] if d.startswith("src/") and not d.endswith(".yaml")]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_stage_lists_the_code_it_imports(graph: grimp.ImportGraph, stage: str) -> None:
    module = f"meddx.stages.{stage}"
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
