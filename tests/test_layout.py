"""The package layout: imports run one way (no cycles, lazy imports counted), small modules, few
modules at the top of ``pica/``, and every public name README shows still imports."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PICA = Path(__file__).resolve().parents[1] / "pica"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PICA.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PICA.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """pica modules that ``name`` imports anywhere in its file (inside functions too), with the
    packages whose ``__init__`` such an import runs (its own ancestors excepted)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets.add(base)
            targets.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known)
    edges = set()
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    for target in targets:
        if not (target == "pica" or target.startswith("pica.")):
            continue
        parts = target.split(".")
        for i in range(2, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in known and prefix not in ancestors and prefix != name:
                edges.add(prefix)
    return edges


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported(name, path, known) for name, path in found.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles_lazy_imports_included():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_a_lazy_import_inside_a_function_is_an_edge(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from pica.pipeline import Pipeline\n")
    assert imported("pica.x", path, {"pica.pipeline"}) == {"pica.pipeline"}


def test_the_stages_do_not_import_the_composers():
    """Core and stages never import the pipeline, evaluation, serving or the CLI."""
    upper = ("pica.pipeline", "pica.evaluation", "pica.serve", "pica.cli")
    lower = ("pica.types", "pica.config", "pica.errors", "pica.registry", "pica.answers", "pica.util",
             "pica.caption", "pica.retrieval", "pica.llm", "pica.choice", "pica.tasks", "pica.datasets")
    bad = [(m, t) for m, ts in graph().items() for t in ts
           if m.startswith(lower) and t.startswith(upper)]
    assert not bad


def test_few_modules_at_the_top_and_none_too_long():
    top = sorted(p.name for p in PICA.glob("*.py"))
    assert len(top) <= 8, top
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 450}
    assert not long


@pytest.mark.parametrize("module, name", [
    ("pica.config", "Settings"), ("pica.pipeline", "Pipeline"), ("pica.types", "Question"),
    ("pica.datasets", "load_questions"), ("pica.datasets", "dataset_identity"),
    ("pica.evaluation", "evaluate"), ("pica.evaluation", "write_outputs"),
])
def test_public_names_still_import(module, name):
    assert hasattr(importlib.import_module(module), name)
