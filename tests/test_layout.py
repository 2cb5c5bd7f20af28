"""The import graph keeps one wiring place: cli.py -> lifecycle -> stages. The report and export read a
run through the store; the store, the search and the evaluators know nothing of the lifecycle; the
LLM package imports nothing of ours but its own errors. Read from the source (every import, at any
depth in a module), so a shortcut added anywhere fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import fairnad

ROOT = Path(fairnad.__file__).resolve().parent


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """module -> the fairnad modules it imports (anywhere in its code)."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        if "_templates" in path.parts or "_knowledge" in path.parts:
            continue
        mod = _module(path)
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                out.update(n for n in names if n.startswith("fairnad"))
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names if a.name.startswith("fairnad"))
        graph[mod] = out
    return graph


def _reaches(graph: dict[str, set[str]], mod: str, banned: str) -> list[str]:
    return sorted(i for i in graph[mod] if i == banned or i.startswith(banned + "."))


def test_one_wiring_place():
    graph = _imports()
    users = sorted(m for m, imps in graph.items() if any(i == "fairnad.lifecycle" or i.startswith("fairnad.lifecycle.")
                                                          for i in imps))  # fmt: skip
    assert users == ["fairnad.bench", "fairnad.cli"], users  # bench drives grids of runs through it
    assert "fairnad.runs" not in graph  # the old second wiring place is gone


def test_report_and_export_read_the_store_only():
    graph = _imports()
    readers = [m for m in graph if m.startswith("fairnad.report")] + ["fairnad.export"]
    for mod in readers:
        for banned in ("fairnad.lifecycle", "fairnad.search", "fairnad.bench", "fairnad.llm", "fairnad.cli"):
            assert not _reaches(graph, mod, banned), (mod, banned)


def test_stages_do_not_reach_back():
    graph = _imports()
    for mod, imps in graph.items():
        if mod.startswith(("fairnad.store", "fairnad.search", "fairnad.evaluate", "fairnad.knowledge", "fairnad.ingest",
                           "fairnad.space")):  # fmt: skip
            for banned in ("fairnad.lifecycle", "fairnad.cli", "fairnad.bench", "fairnad.report"):
                assert not _reaches(graph, mod, banned), (mod, banned)
        if mod.startswith("fairnad.evaluate"):
            assert not _reaches(graph, mod, "fairnad.search"), mod
        if mod.startswith("fairnad.llm"):
            assert all(i.startswith(("fairnad.llm", "fairnad.errors")) for i in imps), (mod, imps)
