"""Credit between FairNAD's arms (search/credit.py): the chances move towards what improves, never
below the floor, and follow from the children told alone (so resume and replay draw the same arms)."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest

from fairnad.search.credit import Credit

from chaos import query
from test_resume import _counted, _rows, _start, _wait_for

BASE = {("idea", "llm"): 0.45, ("idea", "algorithm"): 0.15, ("iterative", "llm"): 0.15,
        ("iterative", "algorithm"): 0.05, ("pareto", "algorithm"): 0.2}  # fmt: skip


def test_with_no_evidence_the_chances_are_the_starting_ones():
    c = Credit(BASE, floor=0.0, prior=4)
    assert np.allclose(c.chances(), list(BASE.values()))
    c = Credit(BASE, floor=0.05, prior=4)
    assert np.allclose(c.chances(), 0.05 + 0.75 * np.array(list(BASE.values())))
    assert np.isclose(c.chances().sum(), 1.0)


def test_the_credit_moves_towards_the_arm_that_improves_and_keeps_the_floor_for_one_that_never_does():
    c = Credit(BASE, floor=0.05, prior=4)
    start = dict(zip([a.name for a in c.arms], c.chances()))
    for i in range(30):  # scripted outcomes: the algorithm's idea children improve, the LLM's never do
        c.tell("idea/algorithm", improved=i % 2 == 0)
        c.tell("idea/llm", improved=False)
        c.tell("pareto/algorithm", improved=i % 6 == 0)
    now = dict(zip([a.name for a in c.arms], c.chances()))
    assert now["idea/algorithm"] > 2 * start["idea/algorithm"] and now["idea/algorithm"] == max(now.values())
    assert now["idea/llm"] < start["idea/llm"] / 3 and now["idea/llm"] >= 0.05  # never below the floor
    assert min(now.values()) >= 0.05 and np.isclose(sum(now.values()), 1.0)
    # untried arms keep a chance at the pooled rate: tried again, not written off
    assert now["iterative/llm"] >= 0.05
    state = c.state()
    assert state["idea/algorithm"]["children"] == 30 and state["idea/algorithm"]["improved"] == 15
    # the draws follow the chances (same seed, same arms: nothing else decides them)
    draws = [c.draw(np.random.default_rng(7))[0].name for _ in range(3)]
    assert len(set(draws)) == 1
    rng = np.random.default_rng(0)
    counts = {a.name: 0 for a in c.arms}
    for _ in range(4000):
        counts[c.draw(rng)[0].name] += 1
    for name, p in now.items():
        assert abs(counts[name] / 4000 - p) < 0.03, (name, counts[name] / 4000, p)


@pytest.mark.llm
@pytest.mark.slow
def test_a_killed_adaptive_run_resumes_and_replays_to_the_same_candidates_and_chances(run_cli, tmp_path):
    """FairNAD with an LLM (the plumbing model) on a table, adaptive: killed after some children, resumed
    to its budget; then replayed from its recorded answers without a server. The candidates, the arms
    drawn and how the chances moved are the same."""
    args = ["search", "-b", "nas-bench-macro", "-s", "fairnad", "-n", "16", "--seed", "4",
            "--set", "strategies.fairnad.init_population=4", "--set", "strategies.fairnad.credit_prior=1"]  # fmt: skip
    db = tmp_path / "a" / "run.db"
    proc = _start([*args, "--run-dir", "a"], tmp_path)
    _wait_for(lambda: _counted(db) >= 8 or proc.poll() is not None, timeout=600)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = [r for r in _rows(db, "candidates", "trial, genotype, origin, status") if r[3] != "running"]
    p = run_cli("resume", "a", "--json", timeout=900)
    assert p.returncode == 0, p.stderr
    after = _rows(db, "candidates", "trial, genotype, origin, status")
    assert after[: len(before)] == before
    arms = [json.loads(o).get("arm") for _, _, o, _ in after]
    assert {"idea/llm", "idea/algorithm"} & set(arms) and sum(a is not None for a in arms) >= 8
    for _, _, o, _ in after:  # a counterpart's child is the algorithm's: no LLM call made it
        o = json.loads(o)
        if o.get("arm", "").endswith("/algorithm"):
            assert o["source"] == "algorithm" and "llm_calls" not in o, o
    stats = json.loads(query(db, "SELECT value FROM meta WHERE key = 'fairnad_stats'")[0][0])
    told = [json.loads(o).get("arm") for o, counted in _rows(db, "candidates", "origin, counted") if counted]
    assert len(stats["chances"]) == sum(a is not None for a in told)  # one point per child told
    assert sum(s["children"] for s in stats["credit"].values()) == len(stats["chances"])
    p = run_cli("search", *args[1:], "--run-dir", "b", "--llm", "replay:a", "--json", timeout=900)
    assert p.returncode == 0, p.stderr
    cols = "trial, genotype, origin, status, metrics"
    assert _rows(tmp_path / "b" / "run.db", "candidates", cols) == _rows(db, "candidates", cols)
    replayed = json.loads(query(tmp_path / "b" / "run.db", "SELECT value FROM meta WHERE key = 'fairnad_stats'")[0][0])
    assert replayed["credit"] == stats["credit"] and replayed["chances"] == stats["chances"]
    assert not (tmp_path / "b" / "llm-server.log").exists()  # no server was started
