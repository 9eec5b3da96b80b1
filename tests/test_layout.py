"""The house's rules, read from the source: who may import whom, and rooms of a readable size.

- no import cycles between exhibit's modules (imports inside functions count too: a lazy
  import is still a dependency);
- pytsk3 is imported only in ``ingest/``;
- analyzers import nothing from ``pipeline/``; ``ingest/`` imports nothing from
  ``analyzers/`` or ``pipeline/``;
- ``chain_of_custody/`` imports nothing else of exhibit (a court's expert runs it alone);
- no module over 600 lines, no folder with more than 12 modules side by side, no folder's
  own modules over 30 % of the product's lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOMS = ("ingest", "analyzers", "pipeline", "chain_of_custody")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for room in ROOMS for p in sorted((REPO / room).rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of ours and every third-party top-level name that ``path`` imports."""
    found: set[str] = set()

    def ours(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}: relative import (use absolute imports)")
        else:
            continue
        for name in names:
            found.add(ours(name) or name.split(".")[0])
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _sources()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root] & graph.keys())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child] & graph.keys()))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    assert _cycles(graph) == []


def _room(module: str) -> str:
    return module.split(".")[0]


def test_pytsk3_only_in_ingest(graph: dict[str, set[str]]) -> None:
    users = sorted(m for m, deps in graph.items() if "pytsk3" in deps)
    assert users, "the rule reads imports correctly only if ingest/ is seen importing pytsk3"
    assert [m for m in users if _room(m) != "ingest"] == []


@pytest.mark.parametrize(("room", "forbidden"), [
    ("analyzers", {"pipeline"}),
    ("ingest", {"analyzers", "pipeline"}),
    ("chain_of_custody", {"ingest", "analyzers", "pipeline"}),
])
def test_rooms_import_only_downwards(graph: dict[str, set[str]], room: str,
                                     forbidden: set[str]) -> None:
    wrong = sorted(f"{m} imports {d}" for m, deps in graph.items() if _room(m) == room
                   for d in deps if _room(d) in forbidden)
    assert wrong == []


def test_rooms_of_a_readable_size() -> None:
    lines = {p: len(p.read_text(encoding="utf-8").splitlines())
             for room in ROOMS for p in (REPO / room).rglob("*.py")}
    total = sum(lines.values())
    long = sorted(f"{p.relative_to(REPO)}: {n}" for p, n in lines.items() if n > 600)
    assert long == []
    folders: dict[Path, list[Path]] = {}
    for path in lines:
        folders.setdefault(path.parent, []).append(path)
    for folder, files in folders.items():
        modules = [p for p in files if p.name != "__init__.py"]
        assert len(modules) <= 12, f"{folder.relative_to(REPO)}: {len(modules)} modules"
        share = sum(lines[p] for p in files) / total
        assert share <= 0.30, f"{folder.relative_to(REPO)}: {share:.0%} of the product's lines"


def test_one_list_of_rooms_everywhere() -> None:
    """The packages pyproject.toml installs, the rooms these rules read and the packages
    `make venv` writes bytecode for are the same four."""
    import re
    import tomllib

    with (REPO / "pyproject.toml").open("rb") as fh:
        installed = tomllib.load(fh)["tool"]["setuptools"]["packages"]["find"]["include"]
    compiled = re.search(r"^PACKAGES := (.+)$", (REPO / "Makefile").read_text(), re.M)
    assert compiled is not None
    assert {p.rstrip("*") for p in installed} == set(ROOMS) == set(compiled.group(1).split())
