"""The package's layout: what its modules may import from each other."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "guardrail"

#: Private names imported across modules, each to be renamed in its own
#: module, which is being rewritten: (importer, module, name).
PRIVATE_IMPORTS_PENDING: frozenset[tuple[str, str, str]] = frozenset()

#: Import cycles being removed elsewhere: (importer, imported).
CYCLE_EDGES_PENDING: frozenset[tuple[str, str]] = frozenset()


def module_name(path: Path) -> str:
    """A module's name inside the package: ``_limits``, ``_app.cli``, ``__init__``."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, ast.Module]:
    """Every module of the package, parsed, by its name inside the package."""
    return {
        module_name(path): ast.parse(path.read_text(), str(path)) for path in PACKAGE.rglob("*.py")
    }


def _known(name: str) -> str:
    """*name* if it is a module of the package, else the package that holds it."""
    path = PACKAGE.joinpath(*name.split("."))
    if path.with_suffix(".py").exists() or (path / "__init__.py").exists():
        return name
    return name.rpartition(".")[0] or "__init__"


def imported(
    node: ast.ImportFrom | ast.Import, importer: str = "__init__"
) -> Iterator[tuple[str, str | None]]:
    """(module inside the package, name or None) for each name *node* imports."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] == "guardrail":
                yield (".".join(parts[1:]) or "__init__"), None
        return
    if node.level == 0:
        parts = (node.module or "").split(".")
        if parts[0] != "guardrail":
            return
        base = ".".join(parts[1:])
    else:
        here = PACKAGE.joinpath(*importer.split("."))
        package = importer if (here / "__init__.py").exists() else importer.rpartition(".")[0]
        if importer == "__init__":
            package = ""
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = ".".join(p for p in (package, node.module or "") if p)
    for alias in node.names:
        candidate = f"{base}.{alias.name}" if base else alias.name
        if _known(candidate) == candidate:  # from . import x: x is a module
            yield candidate, None
        else:
            yield (_known(base) if base else "__init__"), alias.name


def runtime_imports(tree: ast.Module) -> Iterator[ast.ImportFrom | ast.Import]:
    """The imports that run: at module level or in functions, not under TYPE_CHECKING."""

    def walk(node: ast.AST) -> Iterator[ast.ImportFrom | ast.Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from (n for stmt in child.orelse for n in walk_stmt(stmt))
                continue
            yield from walk_stmt(child)

    def walk_stmt(node: ast.AST) -> Iterator[ast.ImportFrom | ast.Import]:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        else:
            yield from walk(node)

    return walk(tree)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports at run time."""
    graph: dict[str, set[str]] = {}
    for name, tree in modules().items():
        edges = graph.setdefault(name, set())
        for node in runtime_imports(tree):
            edges.update(module for module, _ in imported(node, name) if module != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of *graph*: one path per strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(path_through(sorted(component), graph))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def path_through(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A cycle from the component's first module back to it, for the failure message."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    return component


class TestPrivateNames:
    def test_no_module_imports_another_modules_private_names(self) -> None:
        """A leading underscore means "this module only": no other module imports the name."""
        found = set()
        for name, tree in modules().items():
            for node in ast.walk(tree):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                for module, imported_name in imported(node, name):
                    if (
                        imported_name is not None
                        and imported_name.startswith("_")
                        and not imported_name.startswith("__")
                    ):
                        found.add((name, module, imported_name))
        assert sorted(found - PRIVATE_IMPORTS_PENDING) == []
        assert sorted(PRIVATE_IMPORTS_PENDING - found) == [], "renamed: drop from the list"


class TestImportGraph:
    def test_sees_imports_in_functions_and_skips_type_checking(self) -> None:
        """The graph counts function-level imports and ignores TYPE_CHECKING blocks."""
        graph = import_graph()
        assert "_app.demo" in graph["_app.cli"]  # imported inside a command
        assert "_limits" in graph["limits"]  # a public facade over its private module
        assert "_guard_config" not in graph["_outcomes"]  # only under TYPE_CHECKING

    def test_finds_a_cycle(self) -> None:
        """A cycle is reported as the path that closes it."""
        assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]

    def test_runtime_imports_have_no_cycle(self) -> None:
        """Modules import each other in layers, so any of them can be imported first."""
        graph = import_graph()
        for importer, module in CYCLE_EDGES_PENDING:
            assert module in graph[importer], "gone: drop it from CYCLE_EDGES_PENDING"
            graph[importer].discard(module)
        assert cycles(graph) == []
