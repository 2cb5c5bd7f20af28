"""A failing LLM server, through a fault-injecting proxy on 127.0.0.1 in front of the real embedded
server: transient faults are retried and the run finishes; a server that stays down or keeps
refusing pauses the run cleanly (exit 3, a resume hint) and nothing done is lost."""

import json

import pytest

from chaos import query
from faultproxy import ANSWER_TIMEOUT_S, SLOW_S, FaultProxy

pytestmark = [pytest.mark.llm, pytest.mark.slow]

SEARCH = ["search", "-b", "nas-bench-macro", "-s", "genius", "-n", "6", "--seed", "3"]


def test_transient_faults_are_retried_and_the_run_finishes(run_cli, tmp_path, embedded_server):
    schedule = [None, "refuse", None, "truncate", "malformed", None, "429", "500", None, "slow", "garbled"]
    with FaultProxy(embedded_server.base_url, schedule, slow_s=SLOW_S) as px:
        p = run_cli(*SEARCH, "--llm", px.base_url, "--run-dir", "r", "--set", f"llm.timeout={ANSWER_TIMEOUT_S}",
                    "--set", "llm.max_retries=3", "--json")  # fmt: skip
        injected = dict(px.injected)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["evaluations"] == 6 and out["status"] == "finished"
    # every scheduled fault was met (the run made enough calls) and none reached the user
    assert sum(injected.values()) == sum(f is not None for f in schedule), injected
    assert "Traceback" not in p.stderr
    done = query(tmp_path / "r" / "run.db", "SELECT genotype FROM candidates WHERE status = 'complete'")
    assert len(done) == len(set(done)) == 6


def test_a_server_that_stays_down_pauses_the_run_and_resume_finishes_it(run_cli, tmp_path, embedded_server):
    db = tmp_path / "g" / "run.db"
    retries = ["--set", "llm.max_retries=2", "--set", f"llm.timeout={ANSWER_TIMEOUT_S}"]  # bounds the good answers
    # 1. the server keeps answering 429 after six good answers: paused, with the hint
    with FaultProxy(embedded_server.base_url, [None] * 6 + ["429"] * 50) as px:
        p = run_cli(*SEARCH, "--llm", px.base_url, "--run-dir", "g", *retries)
        port = px.port
    assert p.returncode == 3, p.stderr
    assert "the last answer was HTTP 429" in p.stderr and "fairnad resume g" in p.stderr
    assert len(p.stderr.strip().splitlines()[-1]) < 400  # one line, not a traceback
    assert query(db, "SELECT value FROM meta WHERE key = 'status'") == [('"paused"',)]
    first = query(db, "SELECT trial, genotype, status, metrics FROM candidates WHERE status != 'running' ORDER BY trial")
    calls = query(db, "SELECT seq, key, text FROM llm_calls WHERE error IS NULL ORDER BY seq")
    assert first and calls

    # 2. it comes back, answers once, then dies mid-run (stops listening): paused again
    with FaultProxy(embedded_server.base_url, [None, "down"], port=port) as px:
        p = run_cli("resume", "g", *[], timeout=600)
    assert p.returncode == 3, p.stderr
    assert "is the server running?" in p.stderr and "fairnad resume g" in p.stderr
    second = query(db, "SELECT trial, genotype, status, metrics FROM candidates WHERE status != 'running' ORDER BY trial")
    assert second[: len(first)] == first  # nothing done was lost or changed

    # 3. back for good: the run finishes, with every earlier evaluation and answer kept as it was
    with FaultProxy(embedded_server.base_url, [], port=port):
        p = run_cli("resume", "g", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["evaluations"] == 6 and out["status"] == "finished"
    final = query(db, "SELECT trial, genotype, status, metrics FROM candidates WHERE status != 'running' ORDER BY trial")
    assert final[: len(second)] == second
    assert query(db, "SELECT seq, key, text FROM llm_calls WHERE error IS NULL ORDER BY seq")[: len(calls)] == calls
    counted = query(db, "SELECT genotype FROM candidates WHERE counted = 1")
    assert len(counted) == len(set(counted)) == 6
