"""The layer rule, checked on the source: imports only go downward, and production code never
imports the sandbox app.

The graph is read with `ast` from every module of the project's apps (migrations excepted):
- module-level imports (what runs at import time; `if TYPE_CHECKING:` blocks left out) must
  form no cycle;
- an import inside a function, or through `importlib.import_module("...")`, must not close a
  cycle either: that is the same cycle, only hidden until the function runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("syncbridge", "integrations", "automations")
SANDBOX = "integrations.sandbox"


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    local: bool  # inside a function, or importlib at run time

    def __str__(self) -> str:
        where = "function-local" if self.local else "module-level"
        return f"{self.importer} -> {self.imported} ({where}, line {self.line})"


def project_modules() -> dict[str, Path]:
    modules = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _walk(node: ast.AST, local: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if _is_type_checking_block(child):
            continue
        inside = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield child, inside
        yield from _walk(child, inside)


def _targets(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name lands in (a module, or the package defining it)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node, local in _walk(tree, local=False):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node)
            names = [f"{base}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func).endswith("import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names, local = [str(node.args[0].value)], True
        for name in names:
            target = _targets(name, modules)
            if target and target != module:
                found.append(Import(module, target, node.lineno, local))
    return found


@cache
def import_graph() -> tuple[Import, ...]:
    modules = project_modules()
    return tuple(i for module, path in modules.items() for i in imports_of(module, path, modules))


def _reaches(start: str, goal: str, edges: dict[str, set[str]]) -> bool:
    seen, todo = {start}, [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def cycles(imports: list[Import] | tuple[Import, ...]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    edges: dict[str, set[str]] = {}
    for i in imports:
        edges.setdefault(i.importer, set()).add(i.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def cycle_closing_local_imports(imports: list[Import] | tuple[Import, ...]) -> list[Import]:
    """Function-local imports a -> b where b leads back to a: a cycle, hidden."""
    edges: dict[str, set[str]] = {}
    for i in imports:
        edges.setdefault(i.importer, set()).add(i.imported)
    return [i for i in imports if i.local and _reaches(i.imported, i.importer, edges)]


def test_module_level_imports_form_no_cycle():
    module_level = [i for i in import_graph() if not i.local]
    found = cycles(module_level)
    details = [
        "\n".join(f"  {i}" for i in module_level if i.importer in group and i.imported in group)
        for group in found
    ]
    assert found == [], "Import cycles among module-level imports:\n" + "\n\n".join(details)


def test_no_function_local_import_hides_a_cycle():
    closing = cycle_closing_local_imports(import_graph())
    assert closing == [], (
        "These imports inside functions close an import cycle; move the shared code down a "
        "layer instead:\n" + "\n".join(f"  {i}" for i in closing)
    )


def test_production_code_never_imports_the_sandbox():
    offending = [
        i
        for i in import_graph()
        if i.imported.startswith(SANDBOX) and not i.importer.startswith(SANDBOX)
    ]
    assert offending == [], "Production modules importing the sandbox app:\n" + "\n".join(
        f"  {i}" for i in offending
    )


def test_the_graph_reader_sees_each_kind_of_import(tmp_path):
    """The checks above are only as good as the reader: it must see every way of importing."""
    package = tmp_path / "integrations"
    (package / "sync").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sync" / "__init__.py").write_text("")
    (package / "models.py").write_text("")
    (package / "tasks.py").write_text("from integrations.sync import realtime\n")
    (package / "sync" / "realtime.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from .. import models\n"
        "if TYPE_CHECKING:\n"
        "    from integrations import tasks\n"
        "def later():\n"
        "    import importlib\n"
        "    importlib.import_module('integrations.tasks')\n"
    )
    modules = {
        "integrations": package / "__init__.py",
        "integrations.sync": package / "sync" / "__init__.py",
        "integrations.models": package / "models.py",
        "integrations.tasks": package / "tasks.py",
        "integrations.sync.realtime": package / "sync" / "realtime.py",
    }
    found = [i for module, path in modules.items() for i in imports_of(module, path, modules)]
    assert {(i.importer, i.imported, i.local) for i in found} == {
        ("integrations.tasks", "integrations.sync.realtime", False),
        ("integrations.sync.realtime", "integrations.models", False),
        ("integrations.sync.realtime", "integrations.tasks", True),
    }
    assert cycles([i for i in found if not i.local]) == []
    assert cycles(found) == [["integrations.sync.realtime", "integrations.tasks"]]
    (hidden,) = cycle_closing_local_imports(found)
    assert (hidden.importer, hidden.imported) == (
        "integrations.sync.realtime",
        "integrations.tasks",
    )
