"""The package layout that docs/ARCHITECTURE.md draws, checked on every module's imports (``ast``;
imports inside functions count):

1. No import cycle.
2. Imports run one way, down the layers of :data:`LAYERS`: the core (``errors``, then
   ``registry``, then ``config``), ``util``, ``types`` and ``answers``, the stages, the pipeline,
   the evaluation and the server, the CLI (and ``python -m pica``). A module imports its own unit (package or top module)
   and lower layers only.
3. Between the stages, only the edges of :data:`STAGE_EDGES` (caption -> datasets; retrieval ->
   caption, datasets; choice -> retrieval; tasks -> llm, retrieval, choice), themselves acyclic.
   Everything else between stages goes through the registry or the pipeline.
4. At most 8 modules at the top of ``pica/``; no module over 450 lines.
5. Every public name README shows still imports.
"""

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


# Lowest first; a unit is a top module or a package with everything under it.
LAYERS: list[tuple[str, ...]] = [
    ("pica.errors",),
    ("pica.registry",),
    ("pica.config",),
    ("pica.util",),
    ("pica.types", "pica.answers"),
    ("pica.datasets", "pica.caption", "pica.llm", "pica.retrieval", "pica.choice", "pica.tasks"),
    ("pica.pipeline",),
    ("pica.evaluation", "pica.serve"),
    ("pica.cli",),
    ("pica.__main__",),
]
# The imports allowed between two units of one layer (the stages), as docs/ARCHITECTURE.md draws.
STAGE_EDGES: set[tuple[str, str]] = {
    ("pica.caption", "pica.datasets"),  # the cached captioner and `pica caption` read datasets
    ("pica.retrieval", "pica.caption"),  # `pica index build` captions the examples
    ("pica.retrieval", "pica.datasets"),  # and reads their captions
    ("pica.choice", "pica.retrieval"),  # the chooser's candidates come from the neighbours
    ("pica.tasks", "pica.llm"),  # a task builds prompts
    ("pica.tasks", "pica.retrieval"),  # shows examples
    ("pica.tasks", "pica.choice"),  # and picks one answer by the --choose rule
}


def unit(module: str) -> str:
    """The layer unit of a module: ``pica.caption.hf`` -> ``pica.caption``."""
    return ".".join(module.split(".")[:2])


def rank(module: str) -> int:
    (found,) = [i for i, layer in enumerate(LAYERS) if unit(module) in layer] or [None]
    if found is None:
        raise AssertionError(f"{module} is in no layer of tests/test_layout.py: add its unit to LAYERS")
    return found


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Every import that does not run down the layers or along a drawn stage edge."""
    bad = []
    for module, targets in sorted(edges.items()):
        if module == "pica":
            continue
        for target in sorted(targets):
            a, b = unit(module), unit(target)
            if a == b or rank(target) < rank(module) or (a, b) in STAGE_EDGES:
                continue
            bad.append(f"{module} -> {target}")
    return bad


def test_imports_run_down_the_layers_and_along_the_drawn_stage_edges():
    assert not violations(graph())


def test_an_upward_or_undrawn_import_is_caught():
    assert violations({"pica.llm.base": {"pica.pipeline"}}) == ["pica.llm.base -> pica.pipeline"]
    assert violations({"pica.config": {"pica.util.images"}}) == ["pica.config -> pica.util.images"]
    assert violations({"pica.caption.hf": {"pica.llm.llama_cpp"}}) == ["pica.caption.hf -> pica.llm.llama_cpp"]
    assert violations({"pica.tasks.direct": {"pica.choice.rules"}}) == []


def test_the_drawn_stage_edges_run_one_way():
    edges: dict[str, set[str]] = {}
    for a, b in STAGE_EDGES:
        edges.setdefault(a, set()).add(b)
    assert find_cycle(edges) is None
    assert all(rank(a) == rank(b) for a, b in STAGE_EDGES)


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
