"""Architecture and style contracts checked on every run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; install the dev extra")
    return found


def test_import_contracts_hold() -> None:
    """engines/explain/viewer core import no Qt, and nothing imports app (import-linter)."""
    res = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_clean() -> None:
    res = subprocess.run([_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(("module", "slip", "contract", "edge"), [
    ("engines/pipeline.py", "import lab.training.trainer", "the product never imports the lab",
     "engines.pipeline -> lab.training"),
    ("explain/export.py", "import viewer.widgets.viewport", "explain never imports the viewer's widgets",
     "explain.export -> viewer.widgets.viewport"),
    ("viewer/models/view_state.py", "import viewer.widgets.viewport", "the viewer's models (what a view shows)",
     "viewer.models.view_state -> viewer.widgets.viewport"),
    ("app/reports/document.py", "import app.reports.service", "report objects layered without cycles",
     "app.reports.document -> app.reports.service"),
])
def test_a_slip_across_a_layer_breaks_its_contract(tmp_path: Path, module: str, slip: str, contract: str,
                                                    edge: str) -> None:
    """The contracts catch real slips: a copy of the tree where the engine imports training code, the map
    export or a viewer model imports a Qt widget module, or a report document imports the service (a cycle)."""
    for pkg in ("app", "viewer", "engines", "explain", "resources", "lab"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.safetensors",
                                                                                   "*.npz", "*.dcm", "*.png"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{slip}  # noqa\n", encoding="utf-8")
    res = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode != 0
    assert contract in res.stdout and edge in res.stdout


def test_test_helpers_are_imported_as_a_package() -> None:
    """Shared test helpers live in tests/support and are imported as `tests.support.X`. A helper module in
    tests/ imported by its bare name only resolves through the test file's folder on sys.path (pytest's
    rootdir insertion), so it breaks when the file moves: refused here, with the lines to change."""
    helpers = {p.stem for p in (ROOT / "tests").rglob("*.py")
               if not p.name.startswith("test_") and p.name not in ("conftest.py", "__init__.py")}
    bare = re.compile(r"^\s*(?:from\s+(\w+)\s+import\s|import\s+(\w+)\b)")
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = bare.match(line)
            if m and (m.group(1) or m.group(2)) in helpers:
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "import these as tests.support.X:\n" + "\n".join(found)
