"""What the Linux bundle leaves out and what it must load by name, derived from the code, not hand lists.

The spec (installers/radstation.spec) and the fast closure test (tests/installers/test_bundle_closure.py)
both read these rules, so a package that moves, a job module or an engine that is added, or a lab module
the product starts to need changes the bundle and fails the test before anyone builds it:

* the lab (training, evaluation, data preparation) is every first-party package that an import-linter
  contract in pyproject.toml forbids the product to import; the bundle excludes exactly those packages;
* the modules the product loads from strings (engine backends registered as "module:attr", worker job
  modules) are read from the source that names them and become hidden imports.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY_MODULES = ("app.cli", "engines.worker.__main__")  # the launcher runs these (the GUI/CLI, `-m engines.worker`)


def _linter_config(root: Path = ROOT) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]


def _forbidden_for_product(root: Path) -> list[dict]:
    """Forbidden contracts that keep first-party packages away from the entry package and all the rest.

    Such a package is unreachable from any entry point, so it never ships. ("Nothing imports app" does
    not count: its sources leave out app itself.)
    """
    cfg = _linter_config(root)
    first_party = set(cfg["root_packages"])
    entry = {m.partition(".")[0] for m in ENTRY_MODULES}
    return [c for c in cfg.get("contracts", []) if c.get("type") == "forbidden"
            and set(c["forbidden_modules"]) <= first_party
            and first_party - set(c["forbidden_modules"]) <= set(c["source_modules"])
            and entry <= set(c["source_modules"])]


def lab_packages(root: Path = ROOT) -> list[str]:
    """First-party packages the product must never import (the lab), from pyproject's import contracts."""
    found = sorted({m for c in _forbidden_for_product(root) for m in c["forbidden_modules"]})
    if not found:
        raise RuntimeError("pyproject.toml has no import-linter contract forbidding the product a package "
                           "(expected one forbidding 'lab'); the bundle would not know what the lab is")
    return found


def product_packages(root: Path = ROOT) -> list[str]:
    """First-party root packages that ship: every import-linter root package that is not the lab."""
    lab = set(lab_packages(root))
    return [p for p in _linter_config(root)["root_packages"] if p not in lab]


def _string_factories(path: Path) -> list[str]:
    """Modules of `register_backend(name, "module:attr", ...)` calls in one source file."""
    mods = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register_backend"
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)):
            mods.append(node.args[1].value.partition(":")[0])
    return mods


def _string_tuple(path: Path, name: str) -> list[str]:
    """The strings of a module-level `NAME = ("a", "b")` assignment."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(getattr(t, "id", None) == name for t in targets) and isinstance(node.value, ast.Tuple):
            return [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
    raise RuntimeError(f"{path}: no {name} = (...) found; the bundle rules need updating")


def named_modules(root: Path = ROOT) -> list[str]:
    """Modules the product imports from strings: invisible to static analysis, so hidden imports."""
    mods = [*ENTRY_MODULES, *_string_tuple(root / "app" / "cli.py", "SUBCOMMAND_MODULES"),
            *_string_factories(root / "engines" / "backends" / "registry.py"),
            *_string_tuple(root / "app" / "model_runner.py", "JOB_MODULES")]
    return list(dict.fromkeys(mods))
