"""The GitHub Actions workflows cannot run here, so they are validated: schema and structure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def _validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with the GitHub workflow schema it ships (no network needed)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, flags=re.MULTILINE))


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_there_is_a_workflow() -> None:
    assert [p.name for p in WORKFLOWS] == ["ci.yml"]


def test_workflows_match_the_github_workflow_schema() -> None:
    done = _validate(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  test:\n    steps:\n      - run: make test\n")
    assert _validate(broken).returncode != 0  # a job without runs-on


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_jobs_and_steps_are_complete_and_call_existing_make_targets(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    for name, job in workflow["jobs"].items():
        assert job.get("runs-on") and job.get("steps"), name
        assert job.get("timeout-minutes"), f"{name}: a hung job must not burn 6 hours"
    targets = _make_targets()
    for step in _steps(workflow):
        assert ("run" in step) != ("uses" in step), step
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]
        for target in re.findall(r"\bmake ([a-z][\w-]*)", step.get("run", "")):
            assert target in targets, f"{path.name}: `make {target}` is not in the Makefile"


def test_ci_lints_tests_reproduces_and_reports_pull_requests() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    runs = " ".join(step.get("run", "") for step in _steps(workflow))
    for command in (
        "make lint",
        "make test",
        "make ci-repro",
        "make ci-diff",
        "GITHUB_STEP_SUMMARY",
    ):
        assert command in runs
    uses = [step.get("uses", "") + str(step.get("with", {})) for step in _steps(workflow)]
    assert any("setup-python" in u and "'cache': 'pip'" in u for u in uses)
    assert any("actions/cache" in u and ".dvc/cache" in u for u in uses)


def test_ci_run_lints_tests_then_checks_reproduction() -> None:
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert lines.index("make lint") < lines.index("make test") < lines.index("make ci-repro")


def test_make_lint_checks_the_import_contracts() -> None:
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M)
    assert recipe and "lint-imports" in recipe.group(1)
