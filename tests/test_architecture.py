"""The package's layering, read from its source with ``ast``: who imports whom.

Layers, bottom to top (a module imports only from its own layer or below): errors, locations,
profiles < kernels < measure < data < engine < record < requirements < plugin < fleet < cli. Imports
inside functions count for the layering (a lazy import is still a dependency); only module-level
imports count for cycles (those are the ones that can fail at import time). The kernels are array
maths: they import no test framework and no file-format library.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_cryobench

PACKAGE = "pytest_cryobench"
ROOT = Path(pytest_cryobench.__file__).parent

LAYERS = ("errors", "locations", "profiles"), ("kernels",), ("measure",), ("data",), ("engine",), ("workflow",), \
    ("record",), ("requirements",), ("plugin",), ("fleet",), ("cli",)
RANK = {top: rank for rank, tops in enumerate(LAYERS) for top in tops}

# Imports that break the layering in modules this change does not own; each is to be removed where
# the importing module is reworked (plugin/ and record/ are being rewritten), then deleted here.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()  # (importer, imported) pairs allowed for now: none

SHIPPED = ("bench_suites", "shipped_references")  # folders a wheel maps into the package: not layered

KERNEL_FORBIDDEN = {"pytest", "_pytest", "pluggy", "mrcfile", "tifffile", "imagecodecs"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_package(name: str) -> bool:
    return (ROOT.joinpath(*name.split(".")) / "__init__.py").is_file() if name else True


def _resolve(name: str) -> str | None:
    """The package-relative module of an absolute import of ``pytest_cryobench...``, or ``None``."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    parts = name.split(".")[1:]
    while parts and not (ROOT.joinpath(*parts).with_suffix(".py").is_file() or _is_package(".".join(parts))):
        parts.pop()  # "from pytest_cryobench.x import name": name is not a module
    return ".".join(parts)


class _Imports(ast.NodeVisitor):
    """Every import in a module: ``(target, top_level, external)``."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.depth = 0
        self.found: list[tuple[str, bool]] = []

    def _scoped(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scoped

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return  # not a runtime dependency
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, self.depth == 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            raise AssertionError(f"{self.module}: relative import; the package uses absolute imports")
        base = node.module or ""
        for alias in node.names:
            self.found.append((f"{base}.{alias.name}", self.depth == 0))


def _graph() -> dict[str, list[tuple[str, str, bool]]]:
    """``module -> [(imported name as written, internal module or "", top level)]``."""
    graph = {}
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        if module.split(".")[0] in SHIPPED:
            continue
        visitor = _Imports(module)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        graph[module] = [(name, _resolve(name) or "", top) for name, top in visitor.found]
    return graph


GRAPH = _graph()


def _layer(module: str) -> int | None:
    return RANK.get(module.split(".")[0]) if module else None


def test_the_graph_sees_the_package():
    assert {"kernels.array_api", "plugin.hooks", "record.model", "cli"} <= set(GRAPH)
    assert any(target == "kernels.array_api" for edges in GRAPH.values() for _, target, _ in edges)


def test_every_module_belongs_to_a_layer():
    loose = [m for m in GRAPH if m and _layer(m) is None]
    assert not loose, f"modules outside the layers {LAYERS}: {loose}"


def test_imports_point_down_the_layers():
    upward = set()
    for module, edges in GRAPH.items():
        for _, target, _ in edges:
            if target and module and _layer(target) is not None and _layer(target) > _layer(module):
                upward.add((module, target))
    assert sorted(upward - KNOWN_VIOLATIONS) == [], "imports from a higher layer"
    assert sorted(KNOWN_VIOLATIONS - upward) == [], "KNOWN_VIOLATIONS lists imports that are gone: remove them"


def test_no_import_cycles_at_module_level():
    edges = {m: sorted({t for _, t, top in es if top and t and t != m}) for m, es in GRAPH.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    assert cycles == []


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("kernels")))
def test_kernels_are_array_maths(module):
    external = {name.split(".")[0] for name, target, _ in GRAPH[module] if not target}
    assert not external & KERNEL_FORBIDDEN, f"{module} imports {sorted(external & KERNEL_FORBIDDEN)}"
    internal = {target for _, target, _ in GRAPH[module] if target}
    assert all(t.startswith("kernels") for t in internal), f"{module} imports {sorted(internal)}"


def test_cupy_is_never_imported_at_module_level():
    eager = sorted(module for module, edges in GRAPH.items()
                   for name, _, top in edges if top and name.split(".")[0] in ("cupy", "cupyx"))
    assert eager == [], "CuPy is optional: import it inside the function that needs it"
