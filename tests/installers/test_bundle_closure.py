"""Fast check of the bundle's rules (no build): every module the product can reach ships, the lab does not.

The slow test (test_bundle.py) builds the bundle and runs it; this one reads the same rules
(installers/bundle_rules.py, installers/radstation.spec) and the product's import graph (grimp, the
library behind import-linter) in a few seconds, so a spec exclude that catches a product module, a moved
job or backend module, or a new place that imports modules by name fails in the default run.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import re
from pathlib import Path

import grimp
import pytest

from installers import bundle_rules

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "installers" / "radstation.spec"
# Excluded on purpose although product code names them: the optional engines' libraries (the hf-vlm and
# diffusers-t2i backends load and report "not available in this build").
OPTIONAL_IN_BUNDLE = {"transformers", "diffusers"}
# Every product file that imports modules from strings, and the rule that covers it. A new one must be
# taught to bundle_rules.named_modules (or the spec's hidden imports) before it can ship.
DYNAMIC_IMPORT_SITES = {
    "app/cli.py": "SUBCOMMAND_MODULES -> bundle_rules.named_modules",
    "app/commands/selfcheck.py": "decoder plug-ins -> spec hiddenimports (openjpeg, libjpeg, rle, jpeg_ls, gdcm)",
    "engines/worker/client.py": "`-m engines.worker` -> bundle_rules.ENTRY_MODULES",
    "engines/worker/jobs.py": "--jobs modules -> app.model_runner.JOB_MODULES -> bundle_rules.named_modules",
    "engines/worker/wire.py": "result dataclasses of modules the worker already imported",
    "engines/backends/registry.py": "register_backend('module:attr') -> bundle_rules.named_modules",
}


def _spec_excludes() -> list[str]:
    """The string entries of the spec's `excludes = [...]`, plus the lab it splices in (`*LAB`)."""
    for node in ast.parse(SPEC.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "excludes":
            names = [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
            starred = [e.value.id for e in node.value.elts if isinstance(e, ast.Starred)]
            assert starred == ["LAB"], f"unexpected spliced excludes in the spec: {starred}"
            return names + bundle_rules.lab_packages()
    raise AssertionError("installers/radstation.spec has no `excludes = [...]`")


def _excluded(module: str, excludes: list[str]) -> str | None:
    return next((e for e in excludes if module == e or module.startswith(e + ".")), None)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    packages = [*bundle_rules.product_packages(), *bundle_rules.lab_packages()]
    return grimp.build_graph(*packages, include_external_packages=True, cache_dir=None)


@pytest.fixture(scope="module")
def closure(graph: grimp.ImportGraph) -> set[str]:
    """Modules the bundle's analysis reaches: all of app (collect_submodules) and the modules named by string."""
    start = {m for m in graph.find_descendants("app") if not m.startswith("app.db.migrations")}
    missing = [m for m in bundle_rules.named_modules() if m not in graph.modules]
    assert not missing, f"modules the product loads by name do not exist (moved or renamed?): {missing}"
    seen, todo = set(), [*start, *bundle_rules.named_modules()]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo.extend(graph.find_modules_directly_imported_by(mod))
        parent = mod.rpartition(".")[0]
        if parent:
            todo.append(parent)  # importing a.b.c runs a/__init__ and a/b/__init__
    return seen


def test_the_lab_comes_from_the_import_contracts() -> None:
    assert bundle_rules.lab_packages() == ["lab"]
    assert "lab" not in bundle_rules.product_packages()
    assert {"app", "viewer", "engines", "explain", "resources"} <= set(bundle_rules.product_packages())


def test_no_module_the_product_reaches_is_excluded_from_the_bundle(graph: grimp.ImportGraph,
                                                                   closure: set[str]) -> None:
    excludes = _spec_excludes()
    first_party = set(bundle_rules.product_packages()) | set(bundle_rules.lab_packages())
    caught = sorted(f"{m} (excluded by {_excluded(m, excludes)!r})" for m in closure
                    if m.partition(".")[0] in first_party and _excluded(m, excludes))
    assert not caught, f"the bundle would miss product modules: {caught}"
    importers = {m for m in closure if m.partition(".")[0] in first_party}
    external = {m for m in closure if m.partition(".")[0] not in first_party}
    wrongly = sorted(f"{e} (imported by {sorted(graph.find_modules_that_directly_import(e) & importers)[:3]})"
                     for e in external if _excluded(e, excludes) and e not in OPTIONAL_IN_BUNDLE)
    assert not wrongly, f"the spec excludes libraries the product imports: {wrongly}"


def test_the_lab_is_unreachable_from_the_product(closure: set[str]) -> None:
    lab = tuple(bundle_rules.lab_packages())
    assert not sorted(m for m in closure if m.partition(".")[0] in lab)


def test_the_libraries_the_product_imports_are_installed(closure: set[str]) -> None:
    first_party = set(bundle_rules.product_packages()) | set(bundle_rules.lab_packages())
    external = {m for m in closure if m.partition(".")[0] not in first_party}
    missing = sorted(m for m in external if importlib.util.find_spec(m) is None)
    assert not missing, f"imported by the product but not installed (add to pyproject's dependencies): {missing}"


def test_every_place_that_imports_by_name_is_covered_by_a_bundle_rule() -> None:
    pattern = re.compile(r"import_module\(|__import__\(|run_module\(|\"-m\",")
    sites = sorted(str(p.relative_to(ROOT)) for pkg in bundle_rules.product_packages()
                   for p in (ROOT / pkg).rglob("*.py") if pattern.search(p.read_text(encoding="utf-8")))
    unknown = [s for s in sites if s not in DYNAMIC_IMPORT_SITES]
    assert not unknown, f"new dynamic imports; teach installers/bundle_rules.py what they load: {unknown}"


def _spec_list(name: str) -> list[str]:
    for node in ast.parse(SPEC.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
    raise AssertionError(f"installers/radstation.spec has no `{name} = [...]`")


def test_lazily_loaded_packages_keep_their_stubs(closure: set[str]) -> None:
    """scikit-image (lazy_loader) reads `__init__.pyi` at import: the spec's DROP of `*.pyi` must spare them."""
    drop, keep = _spec_list("DROP"), _spec_list("KEEP")
    first_party = set(bundle_rules.product_packages()) | set(bundle_rules.lab_packages())
    dropped = []
    for top in sorted({m.partition(".")[0] for m in closure} - first_party):
        spec = importlib.util.find_spec(top)
        if spec is None or not spec.submodule_search_locations:
            continue
        base = Path(next(iter(spec.submodule_search_locations))).parent
        for init in Path(next(iter(spec.submodule_search_locations))).rglob("__init__.py"):
            if "attach_stub" in init.read_text(encoding="utf-8", errors="replace"):
                dest = str(init.with_suffix(".pyi").relative_to(base))
                if not any(fnmatch.fnmatch(dest, k) for k in keep) and any(fnmatch.fnmatch(dest, d) for d in drop):
                    dropped.append(dest)
    assert not dropped, f"the bundle would drop stubs these packages import from: {dropped}"
