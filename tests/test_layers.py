"""The import contracts of pyproject.toml hold on this tree, and each one fails when broken.

The failing cases matter as much as the passing one: a contract that names a module wrongly,
or that import-linter reads in some other way than meant, passes on every tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import REPO

PYPROJECT = REPO / "pyproject.toml"
CONTRACTS = {
    c["id"]: c["name"]
    for c in tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with this repository's contracts, on the `meddx` package below `src`."""
    return subprocess.run(
        [str(LINT_IMPORTS), str(PYPROJECT), "--no-cache", "--no-logo"],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def verdicts(output: str) -> dict[str, str]:
    """{contract id: KEPT | BROKEN} from the summary lines (`<name> KEPT`)."""
    found = {}
    for line in output.splitlines():
        for contract_id, name in CONTRACTS.items():
            if line.startswith(f"{name} "):
                found[contract_id] = line.rsplit(" ", 1)[-1]
    return found


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    done = lint_imports(REPO / "src", tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert verdicts(done.stdout) == dict.fromkeys(CONTRACTS, "KEPT")


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        # A stage imported low down is reached by every stage and, through it, tracking.
        (
            "data/npz.py",
            "import meddx.stages.train_cnn",
            {"layers", "stages-independent", "no-tracking-below-evaluation"},
        ),
        ("models/cnn.py", "import meddx.training.fit", {"layers"}),
        # train_cnn and tune import hpo.best: through it, tune would import train_cnn.
        ("hpo/best.py", "from meddx.stages import train_cnn", {"layers", "stages-independent"}),
        ("stages/train_rnn.py", "import meddx.stages.train_cnn", {"stages-independent"}),
        ("training/fit.py", "import meddx.tracking", {"no-tracking-below-evaluation"}),
        ("training/fit.py", "import mlflow", {"no-tracking-below-evaluation"}),
        ("tracking/spool.py", "import meddx.data.npz", {"tracking-on-ground"}),
        ("unplaced.py", "", {"layers"}),  # a module in no layer: the contract is exhaustive
    ],
)
def test_a_planted_violation_breaks_its_contract(
    tmp_path: Path, module: str, planted: str, broken: set[str]
) -> None:
    src = tmp_path / "src"
    shutil.copytree(REPO / "src" / "meddx", src / "meddx", ignore=shutil.ignore_patterns("*.pyc"))
    target = src / "meddx" / module
    existing = target.read_text() if target.exists() else ""
    target.write_text(f"{existing}\n{planted}  # planted by the test\n")

    done = lint_imports(src, tmp_path)

    assert done.returncode != 0, done.stdout
    found = verdicts(done.stdout)
    assert {c for c, verdict in found.items() if verdict == "BROKEN"} == broken, done.stdout
    assert set(found) == set(CONTRACTS)
