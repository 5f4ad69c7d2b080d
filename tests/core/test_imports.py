"""The core's import structure, read statically from the source (nothing is imported):

- no module under ``radinterp/`` imports a stage package (``eval``, ``sae_training``,
  ``autointerp``, ``steering``), at module level, inside a function or under TYPE_CHECKING;
- the imports between ``radinterp`` modules form no cycle. Module-level and function-level
  (lazy) imports both count, so a lazy import cannot hide a loop; only ``if TYPE_CHECKING:``
  imports are left out (they never run). ``from a.b import c`` is an edge to module ``a.b.c``
  when that is a module, else to ``a.b``; the package ``__init__`` files that Python runs on
  the way are not edges of their own (importing ``a.b.c`` from inside ``a`` always enters
  ``a`` first, which is no loop).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "radinterp"
STAGE_PACKAGES = ("eval", "sae_training", "autointerp", "steering")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(CORE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, type_checking: bool = False) -> Iterator[tuple[ast.stmt, bool]]:
    """Every import statement anywhere in ``tree``, with whether it sits under TYPE_CHECKING."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, type_checking
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), type_checking)
        else:
            yield from _imports(node, type_checking)


def _targets(module: str, node: ast.stmt) -> list[str]:
    """Absolute names an import statement brings in (``from a import b`` -> ``a.b`` / ``a``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:  # relative: resolve against the importing module's package
        package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(edges between radinterp modules, every imported name per module incl. TYPE_CHECKING)."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    imported: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for node, type_only in _imports(ast.parse(path.read_text(), str(path))):
            for name in _targets(module, node):
                imported[module].add(name)
                while name not in MODULES and "." in name:  # a.b.attr -> a.b
                    name = name.rsplit(".", 1)[0]
                if name in MODULES and name != module and not type_only:
                    edges[module].add(name)
    return edges, imported


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_the_walk_sees_the_core():
    edges, imported = _graph()
    assert len(MODULES) > 50
    # a function-level import is an edge (resolve_kinds imports TokenKind lazily)
    assert "radinterp.models.tokens" in edges["radinterp.store.kinds"]
    # a TYPE_CHECKING import is read but is no edge
    assert "radinterp.store.reader" in imported["radinterp.store.batches"]
    assert "radinterp.store.reader" not in edges["radinterp.store.batches"]


def test_the_cycle_finder_finds_cycles():
    loop = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _cycles(loop) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_core_imports_no_stage_package():
    _, imported = _graph()
    bad = sorted(f"{m} imports {name}" for m, names in imported.items() for name in names
                 if name.split(".")[0] in STAGE_PACKAGES)
    assert not bad, "the core must not import stage packages (move the shared code into " \
                    "radinterp/ instead):\n" + "\n".join(bad)


def test_no_import_cycles_inside_the_core():
    edges, _ = _graph()
    cycles = _cycles(edges)
    detail = "\n".join(" <-> ".join(c) + ": " + "; ".join(
        f"{m} -> {sorted(edges[m] & set(c))}" for m in c) for c in cycles)
    assert not cycles, ("import cycles in radinterp/ (move the shared definitions into a module "
                        f"both can import):\n{detail}")
