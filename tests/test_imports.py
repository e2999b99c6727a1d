"""No import inside a function exists only to dodge an import cycle.

An import moved into a function hides a cycle from the reader and from import-linter's
layers (both read the module's top). So for every import of a first-party module made
inside a function (found with `ast`), A -> B, the test fails when B imports A, directly or
through other modules, at module level (grimp's graph without the in-function imports,
and without `if TYPE_CHECKING:` ones, which never run). An in-function import that only
defers a slow or optional import (the CLI loading a command's modules when it runs) is
left alone: nothing at B's top leads back to A.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "templates", "triggers", "webapp", "workers")

# Known cycles that other parts of issue 11 are removing; this list is emptied when they land.
# (importer, imported) of the in-function import.
KNOWN_CYCLES: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class InFunctionImport:
    importer: str
    imported: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} -> {self.imported} (and {self.imported} imports it back)"


def cycle_dodgers(root: Path, packages: tuple[str, ...]) -> list[InFunctionImport]:
    """The in-function imports A -> B of `packages` (under `root`) where B imports A at module level."""
    graph = grimp.build_graph(*packages, exclude_type_checking_imports=True, cache_dir=None)
    found = list(_in_function_imports(root, packages, graph.modules))
    _drop_in_function_imports(graph, found)
    return [f for f in found if f.importer != f.imported and graph.chain_exists(importer=f.imported,
                                                                                imported=f.importer)]


def _in_function_imports(root: Path, packages: tuple[str, ...], modules: set[str]) -> Iterator[InFunctionImport]:
    """Every first-party import statement nested in a function, resolved to the modules it loads."""
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            importer = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            for function in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    for node in ast.walk(function):
                        for imported in _loaded(node, importer, path.name == "__init__.py", modules, packages):
                            yield InFunctionImport(importer, imported, path.relative_to(root), node.lineno)


def _loaded(node: ast.AST, importer: str, is_package: bool, modules: set[str], packages: tuple[str, ...]) -> set[str]:
    """The first-party modules an import statement loads (`from package import module` is the module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative to the importer's package
            package = importer.split(".")[: None if is_package else -1]
            base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    else:
        return set()
    return {name for name in names if name.split(".")[0] in packages and name in modules}


def _drop_in_function_imports(graph: grimp.ImportGraph, found: list[InFunctionImport]) -> None:
    """Leave the imports that run when a module is loaded (an edge also made at the top stays)."""
    lines = {(f.importer, f.imported, f.line) for f in found}
    for importer, imported in {(f.importer, f.imported) for f in found}:
        details = graph.get_import_details(importer=importer, imported=imported)
        if all((importer, imported, d["line_number"]) in lines for d in details):
            graph.remove_import(importer=importer, imported=imported)


def test_no_import_inside_a_function_dodges_a_cycle() -> None:
    """An in-function import A -> B where B imports A at module level is a hidden cycle: move what both
    need down a layer instead. Offenders are listed as file:line."""
    offenders = [str(f) for f in cycle_dodgers(ROOT, PACKAGES) if (f.importer, f.imported) not in KNOWN_CYCLES]
    assert not offenders, "imports inside functions that hide a cycle:\n" + "\n".join(offenders)


def test_a_known_cycle_that_is_gone_leaves_the_list() -> None:
    """The allowlist only names cycles that still exist, so it cannot hide a new one."""
    still = {(f.importer, f.imported) for f in cycle_dodgers(ROOT, PACKAGES)}
    assert KNOWN_CYCLES <= still, f"no longer a cycle, remove from KNOWN_CYCLES: {sorted(KNOWN_CYCLES - still)}"


def test_the_check_names_a_hidden_cycle_and_passes_a_deferred_import(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a package made for the test, `a` imports `b` inside a function and `b` imports `a` back at its top
    (through `c`, whose import of `a` is made both at its top and in a function): that one is named with its
    line. `a`'s in-function import of `slow`, which imports nothing back, and `c`'s of `a` are not."""
    package = tmp_path / "cyclecheck"
    package.mkdir()
    files = {
        "__init__.py": "",
        "a.py": "def late():\n    from cyclecheck import b\n    import cyclecheck.slow\n    return b\n",
        "b.py": "from cyclecheck import c\n",
        "c.py": "from . import a\n\n\ndef again():\n    from cyclecheck.a import late\n    return late\n",
        "slow.py": "",
    }
    for name, text in files.items():
        (package / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    found = cycle_dodgers(tmp_path, ("cyclecheck",))
    assert [str(f) for f in found] == [
        "cyclecheck/a.py:2: cyclecheck.a -> cyclecheck.b (and cyclecheck.b imports it back)"]
