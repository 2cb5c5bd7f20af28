"""The import graph keeps the rules of shared/DESIGN.md: one wiring place (cli.py -> lifecycle ->
stages, cli.py parsing and rendering only); evaluate/ never imports search/; knowledge/ never imports
search/ or evaluate/; llm/ imports nothing of ours; the report and export read a run through the
store; a strategy reaches the world only through its study; and no fairnad module imports, however
indirectly, one that imports it back. Read from the source: every import at any depth in a module
(top level, in functions, under TYPE_CHECKING), relative ones resolved to absolute names, so a
shortcut added anywhere fails here."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import networkx as nx
import pytest

import fairnad

ROOT = Path(fairnad.__file__).resolve().parent


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module(p): p for p in ROOT.rglob("*.py") if "_templates" not in p.parts and "_knowledge" not in p.parts}


def _targets(mod: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> list[str]:
    """The fairnad modules an import statement names: `from a.b import c` is the module a.b.c where c is
    one, else a.b; `from . import x` and `from ..evaluate import y` are resolved against `mod`."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{node.module}" if node.module else package
        else:
            base = node.module or ""
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    out = []
    for name in names:
        while name not in modules and "." in name:  # `import fairnad.x.y.attr`: the module that holds it
            name = name.rpartition(".")[0]
        if name in modules and name != mod:
            out.append(name)
    return out


def _graph() -> nx.DiGraph:
    """module -> the fairnad modules it imports, anywhere in its code."""
    modules = _modules()
    g = nx.DiGraph()
    for mod, path in modules.items():
        g.add_node(mod)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                g.add_edges_from((mod, t) for t in _targets(mod, path, node, modules))
    return g


GRAPH = _graph()


def _in(mod: str, *packages: str) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in packages)


def _reaching(mod: str, *banned: str) -> list[str]:
    return sorted(t for t in GRAPH.successors(mod) if _in(t, *banned))


def _stage(name: str) -> list[str]:
    return [m for m in GRAPH if _in(m, f"fairnad.{name}")]


def test_the_graph_reads_relative_imports_and_every_depth():
    """The reader itself: a relative import resolves to the absolute module, a function-level one counts."""
    modules = {**_modules(), "fairnad.evaluate.fake": ROOT / "evaluate" / "fake.py"}
    src = "from . import tabular\nfrom ..search import base\ndef f():\n    from .relabel import split_name\n"
    found = [t for node in ast.walk(ast.parse(src)) if isinstance(node, (ast.Import, ast.ImportFrom))
             for t in _targets("fairnad.evaluate.fake", ROOT / "evaluate" / "fake.py", node, modules)]  # fmt: skip
    assert found == ["fairnad.evaluate.tabular", "fairnad.search.base", "fairnad.evaluate.relabel"]
    assert "fairnad.llm" in set(GRAPH.successors("fairnad.search.study"))


def test_no_import_cycle_between_fairnad_modules():
    cycles = sorted(nx.simple_cycles(GRAPH), key=len)
    assert not cycles, [" -> ".join([*c, c[0]]) for c in cycles[:10]]


def test_one_wiring_place():
    users = sorted(m for m in GRAPH if _reaching(m, "fairnad.lifecycle"))
    assert users == ["fairnad.bench", "fairnad.cli"], users  # bench drives grids of runs through it
    assert "fairnad.runs" not in GRAPH  # the old second wiring place is gone


def test_cli_parses_and_renders_only():
    """cli.py reaches the stages through the lifecycle (or the bench) only; it reads the config's flag
    parsers, the errors it prints and the terminal rendering; render.py imports none of the stages."""
    allowed = {"fairnad", "fairnad.config", "fairnad.errors", "fairnad.llm", "fairnad.lifecycle", "fairnad.bench",
               "fairnad.render"}  # fmt: skip
    assert set(GRAPH.successors("fairnad.cli")) <= allowed, set(GRAPH.successors("fairnad.cli")) - allowed
    assert set(GRAPH.successors("fairnad.render")) <= {"fairnad.errors"}
    assert len((ROOT / "cli.py").read_text().splitlines()) <= 600


def test_report_and_export_read_the_store_only():
    for mod in [*_stage("report"), "fairnad.export"]:
        for banned in ("fairnad.lifecycle", "fairnad.search", "fairnad.bench", "fairnad.llm", "fairnad.cli"):
            assert not _reaching(mod, banned), (mod, banned)


def test_stages_do_not_reach_back():
    for mod in GRAPH:
        if _in(mod, "fairnad.store", "fairnad.search", "fairnad.evaluate", "fairnad.knowledge", "fairnad.ingest",
               "fairnad.space", "fairnad.llm"):  # fmt: skip
            assert not _reaching(mod, "fairnad.lifecycle", "fairnad.cli", "fairnad.bench", "fairnad.report",
                                 "fairnad.render"), mod  # fmt: skip


@pytest.mark.parametrize(
    "stage,banned",
    [
        ("evaluate", ("fairnad.search",)),  # evaluate/ never imports search/
        ("knowledge", ("fairnad.search", "fairnad.evaluate")),  # knowledge/ never imports search/ or evaluate/
        ("ingest", ("fairnad.knowledge", "fairnad.search", "fairnad.evaluate")),  # PDF -> Document, for knowledge/
        ("space", ("fairnad.evaluate", "fairnad.search", "fairnad.knowledge")),  # what a candidate is: below them
    ],
)
def test_the_data_walks_one_way(stage, banned):
    for mod in _stage(stage):
        assert not _reaching(mod, *banned), (mod, _reaching(mod, *banned))


def test_llm_imports_nothing_of_ours():
    for mod in _stage("llm"):
        assert all(_in(t, "fairnad.llm") for t in GRAPH.successors(mod)), (mod, sorted(GRAPH.successors(mod)))


def test_a_strategy_reaches_the_world_through_its_study():
    """Strategies (every entry point of pyproject's group) and their helpers in search/ read the run, the
    evaluator and the LLM set-up through the Study, which alone holds the store."""
    declared = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["project"]["entry-points"]
    strategies = {target.partition(":")[0] for target in declared["fairnad.strategies"].values()}
    assert strategies <= set(GRAPH)
    for mod in strategies | set(_stage("search")) - {"fairnad.search.study"}:
        assert not _reaching(mod, "fairnad.store", "fairnad.evaluate", "fairnad.config", "fairnad.llm.provider"), mod
