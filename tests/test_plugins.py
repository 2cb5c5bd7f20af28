"""Strategies as plug-ins: a package installed with pip declares one in the entry-point group
fairnad.strategies; `fairnad strategies` lists it, `fairnad search` runs it; broken ones are named and
break nothing else. The packages are real (tests/data/plugin_*), installed into a temporary folder."""

import json
import shutil
import subprocess
import sys
import tomllib

import pytest

from fairnad.errors import ConfigError
from fairnad.search import base
from fairnad.store import RunStore

from conftest import ROOT

DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """Both test packages installed with pip (no network, no build isolation) into one folder."""
    tmp = tmp_path_factory.mktemp("plugins")
    srcs = []
    for name in ("plugin_strategy", "plugin_broken"):  # a copy: the build writes into the source tree
        srcs.append(str(shutil.copytree(DATA / name, tmp / name)))
    site = tmp / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), *srcs],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (site / "fairnad_greedy_neighbour-0.2.0.dist-info" / "entry_points.txt").is_file()
    return site


def _env(site):
    return {"PYTHONPATH": str(site)}


def _json(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_builtins_are_fairnads_own_entry_points():
    """The built-ins are found one way, as plug-ins are: pyproject's entry points, each loading as the
    strategy it names (nothing in the code lists them again)."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["fairnad.strategies"]
    builtins = {i.name: i.target for i in base.strategy_infos() if i.builtin}
    assert builtins == declared
    for name in declared:
        assert base.strategy_class(name).name == name
    assert set(declared) <= set(base.list_strategies())
    assert not hasattr(base, "BUILTIN") and not hasattr(base, "register")


def test_the_documented_example_is_the_tested_package():
    """docs/strategies.md shows the test package's module and entry point as they are."""
    doc = (ROOT / "docs" / "strategies.md").read_text()
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    assert code == (DATA / "plugin_strategy" / "fairnad_greedy_neighbour.py").read_text()
    assert 'greedy-neighbour = "fairnad_greedy_neighbour:GreedyNeighbour"' in doc


@pytest.mark.slow
def test_strategies_lists_builtin_installed_and_broken(run_cli, plugin_site):
    listed = _json(run_cli("strategies", "--json", env=_env(plugin_site)))["strategies"]
    rows = {(r["name"], r["source"]): r for r in listed}
    assert len(rows) == len(listed)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["fairnad.strategies"]
    for name in declared:
        assert rows[(name, "built-in")]["status"] == "ok"
    assert rows[("random", "built-in")]["entry_point"] == "fairnad.search.random_search:RandomSearch"
    assert rows[("fairnad", "built-in")]["spaces"] == ["tabular", "open"]
    assert rows[("genius", "built-in")]["uses_llm"] is True

    g = rows[("greedy-neighbour", "fairnad-greedy-neighbour 0.2.0")]
    assert g["status"] == "ok" and g["error"] is None
    assert (g["distribution"], g["version"], g["builtin"]) == ("fairnad-greedy-neighbour", "0.2.0", False)
    assert g["spaces"] == ["tabular"] and g["uses_llm"] is False
    assert g["description"].startswith("Hill climbing on a table")  # the class docstring's first line
    assert g["settings"] == [{"name": "start", "type": "int", "required": False, "default": 3,
                              "description": "random models evaluated before climbing"}]  # fmt: skip

    broken = {name: r for (name, src), r in rows.items() if src == "fairnad-broken-strategy 0.0.1"}
    assert set(broken) == {"needs-missing", "not-a-strategy", "random", "impostor"}
    assert all(r["status"] == "broken" and "\n" not in r["error"] for r in broken.values())
    assert "ModuleNotFoundError" in broken["needs-missing"]["error"]
    assert "fairnad_no_such_dependency" in broken["needs-missing"]["error"]
    assert "not a subclass of fairnad.search.base.Strategy" in broken["not-a-strategy"]["error"]
    assert "name clash with the built-in strategy 'random'" in broken["random"]["error"]
    assert "entry point is named 'impostor'" in broken["impostor"]["error"]

    text = run_cli("strategies", env={**_env(plugin_site), "COLUMNS": "200"})
    assert text.returncode == 0, text.stderr
    assert "greedy-neighbour" in text.stdout and "fairnad-greedy-neighbour 0.2.0" in text.stdout
    assert "start=3" in text.stdout and "broken" in text.stdout
    assert "4 broken plug-in(s)" in text.stderr


@pytest.mark.slow
def test_plugin_strategy_searches_end_to_end_with_its_settings(run_cli, plugin_site, tmp_path):
    out = _json(run_cli("search", "-b", "nb201-cifar10", "-s", "greedy-neighbour", "-n", "5", "--json",
                        "--run-dir", "runs/greedy", env=_env(plugin_site)))  # fmt: skip
    assert out["strategy"] == "greedy-neighbour" and out["evaluations"] == 5
    with RunStore.open(tmp_path / "runs" / "greedy", readonly=True) as store:
        cands = store.candidates()
        assert store.meta()["config"]["strategy"] == "greedy-neighbour"
    assert len(cands) == 5 and all(c.status == "complete" for c in cands)
    assert len({c.genotype for c in cands}) == 5  # unseen genotypes only
    assert [c.origin["op"] for c in cands] == ["random"] * 3 + ["neighbour"] * 2  # start=3 (its default)
    by_trial = {c.trial: c for c in cands}
    for c in cands[3:]:  # a climb step: one position away from its parent
        parent = by_trial[c.parents[0]].genotype
        assert sum(a != b for a, b in zip(parent, c.genotype)) == 1

    # its own setting reaches its config through --set strategies.<name>.<field>
    out = _json(run_cli("search", "-b", "nb201-cifar10", "-s", "greedy-neighbour", "-n", "5", "--json",
                        "--set", "strategies.greedy-neighbour.start=5", "--run-dir", "runs/all-random",
                        env=_env(plugin_site)))  # fmt: skip
    assert out["origins"] == {"random": 5}
    bad = run_cli("search", "-b", "nb201-cifar10", "-s", "greedy-neighbour", "-n", "5",
                  "--set", "strategies.greedy-neighbour.start=0", "--run-dir", "runs/bad",
                  env=_env(plugin_site))  # fmt: skip
    assert bad.returncode == 2
    assert "strategies.greedy-neighbour" in bad.stderr and "start" in bad.stderr
    assert not (tmp_path / "runs" / "bad").exists()


@pytest.mark.slow
def test_broken_plugins_do_not_break_builtins(run_cli, plugin_site, tmp_path):
    out = _json(run_cli("search", "-b", "nb201-cifar10", "-s", "random", "-n", "5", "--json",
                        "--run-dir", "runs/random", env=_env(plugin_site)))  # fmt: skip
    assert out["evaluations"] == 5 and out["origins"] == {"random": 5}  # the built-in, not the impostor

    p = run_cli("search", "-b", "nb201-cifar10", "-s", "needs-missing", "-n", "5", "--run-dir", "runs/broken",
                env=_env(plugin_site))  # fmt: skip
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert "fairnad-broken-strategy 0.0.1" in lines[0] and "needs-missing" in lines[0]
    assert "No module named 'fairnad_no_such_dependency'" in lines[0]
    assert "pip uninstall fairnad-broken-strategy" in lines[0]
    assert not (tmp_path / "runs" / "broken").exists()

    p = run_cli("search", "-b", "nb201-cifar10", "-s", "not-a-strategy", "-n", "5", env=_env(plugin_site))
    assert p.returncode == 2 and "not a subclass" in p.stderr


def test_loading_plugins_in_process_keeps_the_builtins(plugin_site, monkeypatch):
    """The broken package declares its Impostor (named 'random') under the built-in's name: refused,
    and the name still gives the built-in random; the good plug-in is built with its validated config."""
    monkeypatch.syspath_prepend(str(plugin_site))
    infos = {(i.name, i.source): i for i in base.strategy_infos()}
    assert not infos[("not-a-strategy", "fairnad-broken-strategy 0.0.1")].ok  # its package was imported
    assert not infos[("random", "fairnad-broken-strategy 0.0.1")].ok
    assert base.strategy_class("random").__module__ == "fairnad.search.random_search"
    s = base.create_strategy("greedy-neighbour", {"start": 2})
    assert type(s).__module__ == "fairnad_greedy_neighbour" and s.config.start == 2
    with pytest.raises(ConfigError, match="strategies.greedy-neighbour"):
        base.create_strategy("greedy-neighbour", {"start": 0})
    with pytest.raises(ConfigError, match="is broken: cannot import"):
        base.strategy_class("needs-missing")
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        base.strategy_class("nope")


def test_without_fairnads_entry_points_it_says_to_install(monkeypatch):
    """A checkout run without installing fairnad has no entry points: one line says what to do."""
    monkeypatch.setattr(base.metadata, "entry_points", lambda group: [])
    monkeypatch.setattr(base, "_ENTRIES", {})
    with pytest.raises(ConfigError, match=r"pip install -e \."):
        base.strategy_class("random")
