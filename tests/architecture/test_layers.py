"""The package's shape stays walkable: the layer contracts hold (pyproject's [tool.importlinter]), no import loop
returns, every module name says one role, and the package root stays small. ARCHITECTURE.md explains the rules."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "postroom"


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. import loops."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return loops


def test_layer_contracts_hold() -> None:
    # GIVEN the contracts in pyproject.toml WHEN import-linter checks the installed package THEN none is broken
    # (in its own interpreter: in a worker that has already imported Twisted and zope.interface, building the graph
    # in-process failed on a zope attribute)
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_import_loops_even_through_type_only_imports() -> None:
    graph = grimp.build_graph("postroom", exclude_type_checking_imports=False, cache_dir=None)
    assert _cycles(graph) == []


def test_the_loop_finder_finds_a_loop() -> None:
    # The check above must be able to fail: a graph with a loop in it is reported.
    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph) == [["a.x", "a.y"]]


def test_module_names_say_one_role() -> None:
    names = Counter(p.name for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")
    assert [name for name, count in names.items() if count > 1] == []


def test_package_root_stays_small() -> None:
    assert len(list(PACKAGE.glob("*.py"))) <= 5
