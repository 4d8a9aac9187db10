"""The package-level import graph of poolswap has no cycle, and the pipeline's stages depend only downward.

Every ``import`` / ``from ... import`` in poolswap/ counts, inside functions too, and so
do the ``_LAZY`` tables the packages export names through (``poolswap/_lazy.py``): a
lazy name must not hide a cycle. A node is a subpackage (``poolswap.surgery``) or a
top-level module (``poolswap.calibration``); the top-level ``poolswap/__init__.py`` is
the facade that re-exports every stage, so imports of it (``__version__``) and its own
table are left out.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "poolswap"

#: docs/architecture.md: each stage may import only the stages before it.
PIPELINE = ["kernels", "ops", "model", "data", "calibration", "surgery", "train", "export", "deploy"]

Edges = dict[str, dict[str, list[str]]]


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if not level:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int]]:
    """Every module (or module.name) ``tree`` imports, with the line, lazy tables included."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node.level, node.module)
            out.append((target, node.lineno))
            out += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
        elif (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets)
              and isinstance(node.value, ast.Dict)):
            for value in node.value.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    spec = value.value
                    level = len(spec) - len(spec.lstrip("."))
                    out.append((_resolve(module, is_package, level, spec.lstrip(".") or None), node.lineno))
    return out


def _node(module: str, root_name: str, nodes: set[str]) -> str | None:
    """The graph node of ``module``: its subpackage or top-level module; None outside, or for the facade."""
    parts = module.split(".")
    if parts[0] != root_name or len(parts) < 2 or parts[1] not in nodes:
        return None
    return parts[1]


def import_graph(root: Path = PACKAGE) -> Edges:
    """``{node: {imported node: ["file:line", ...]}}`` for the package at ``root``."""
    nodes = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    nodes |= {p.stem for p in root.glob("*.py") if p.name != "__init__.py"}
    edges: Edges = defaultdict(lambda: defaultdict(list))
    for path in sorted(root.rglob("*.py")):
        module, is_package = _module_name(path, root)
        source = _node(module, root.name, nodes)
        if source is None:  # the facade
            continue
        for target, line in _imported(ast.parse(path.read_text(), str(path)), module, is_package):
            dest = _node(target, root.name, nodes)
            site = f"{path.relative_to(root.parent)}:{line}"
            if dest is not None and dest != source and site not in edges[source][dest]:
                edges[source][dest].append(site)
    return edges


def cycles(edges: Edges) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dest in edges.get(node, {}):
            if dest not in index:
                visit(dest)
                low[node] = min(low[node], low[dest])
            elif dest in on_stack:
                low[node] = min(low[node], index[dest])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _describe(edges: Edges, component: list[str]) -> str:
    lines = []
    for a in component:
        for b in component:
            if b in edges.get(a, {}):
                lines.append(f"  {a} -> {b}: {', '.join(edges[a][b][:3])}")
    return "\n".join(lines)


def test_no_package_level_import_cycle():
    edges = import_graph()
    found = cycles(edges)
    assert not found, "import cycles between poolswap's packages:\n" + "\n\n".join(_describe(edges, c) for c in found)


def test_pipeline_stages_import_only_downward():
    edges = import_graph()
    upward = [f"{a} -> {b}: {', '.join(sites[:3])}" for a, dests in edges.items() for b, sites in dests.items()
              if a in PIPELINE and b in PIPELINE and PIPELINE.index(b) > PIPELINE.index(a)]
    assert not upward, "stages importing a later stage (docs/architecture.md):\n" + "\n".join(upward)


def test_every_stage_is_placed():
    """A new subpackage or top-level module that imports a stage must be placed in PIPELINE or be a top one."""
    edges = import_graph()
    tops = {"bench", "cli", "demo", "pipeline", "study"}
    unplaced = {a for a, dests in edges.items() if a not in PIPELINE and a not in tops and set(dests) & set(PIPELINE)}
    assert not unplaced, f"place {sorted(unplaced)} in PIPELINE (tests/test_import_graph.py) and docs/architecture.md"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_walk_sees_function_level_and_lazy_imports(tmp_path):
    """The checks above cannot pass vacuously: a cycle through a function-level import and a lazy table is found."""
    root = _write(tmp_path, {
        "__init__.py": "",
        "a/__init__.py": "_LAZY = {'thing': '.impl'}\n",
        "a/impl.py": "def f():\n    from ..b import g\n",
        "b/__init__.py": "from .inner import g\n",
        "b/inner.py": "_LAZY = {'h': 'pkg.a.impl'}\ndef g():\n    pass\n",
        "c.py": "from . import a\n",
    })
    edges = import_graph(root)
    assert set(edges["a"]) == {"b"} and set(edges["b"]) == {"a"} and set(edges["c"]) == {"a"}
    assert cycles(edges) == [["a", "b"]]
    assert "pkg/a/impl.py:2" in _describe(edges, ["a", "b"])
