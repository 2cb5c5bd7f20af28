"""Crash safety and reproducibility: kill -9 then resume, and replay from recorded LLM calls."""

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest


def _counted(db):
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            return c.execute("SELECT COUNT(*) FROM candidates WHERE counted = 1").fetchone()[0]
    except sqlite3.Error:
        return 0


def _wait_for(predicate, timeout=180.0):
    """Poll a condition on another process's database (the only way to observe it mid-run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


def _start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "fairnad", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _rows(db, table, cols="*"):
    with sqlite3.connect(db) as c:
        return c.execute(f"SELECT {cols} FROM {table} ORDER BY rowid").fetchall()


@pytest.mark.slow
def test_kill_9_three_times_then_resume_equals_an_uninterrupted_run(run_cli, tmp_path):
    args = ["-b", "channel-bench-resnet", "-s", "regevo", "-n", "4000", "--seed", "5"]
    ref = json.loads(run_cli("search", *args, "--run-dir", "ref", "--json").stdout)
    db = tmp_path / "run" / "run.db"
    proc = _start(["search", *args, "--run-dir", "run"], tmp_path)
    kills = 0
    for target in (300, 1500, 2800):
        _wait_for(lambda: _counted(db) >= target or proc.poll() is not None)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert _counted(db) < 4000
        if kills == 1:  # the stored status still says running; no process holds the run: it was interrupted
            shown = json.loads(run_cli("runs", "show", "run", "--json").stdout)
            listed = json.loads(run_cli("runs", "--root", ".", "--json").stdout)["runs"]
            assert shown["status"] == "interrupted" and {r["run_dir"]: r["status"] for r in listed}["run"] == "interrupted"
        proc = _start(["resume", "run"], tmp_path)
    assert proc.wait() == 0, proc.stderr.read()
    assert kills == 3
    cols = "trial, genotype, parents, origin, status, metrics, counted"
    assert _rows(db, "candidates", cols) == _rows(tmp_path / "ref" / "run.db", "candidates", cols)
    trials = [r[0] for r in _rows(db, "candidates", "trial")]
    assert trials == list(range(len(trials))) and _counted(db) == 4000 == ref["evaluations"]
    kinds = [r[0] for r in _rows(db, "events", "kind")]
    assert kinds.count("resumed") == 3 and kinds[-1] == "session"


@pytest.mark.llm
@pytest.mark.slow
def test_kill_9_during_a_genius_search_loses_nothing(run_cli, tmp_path):
    db = tmp_path / "g" / "run.db"
    proc = _start(["search", "-b", "nas-bench-macro", "-s", "genius", "-n", "6", "--run-dir", "g"], tmp_path)
    _wait_for(lambda: _counted(db) >= 2 or proc.poll() is not None)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cands_before = _rows(db, "candidates", "trial, genotype, status, metrics")
    calls_before = _rows(db, "llm_calls", "seq, key, text")
    done_before = [c for c in cands_before if c[2] != "running"]
    out = json.loads(run_cli("resume", "g", "--json").stdout)
    assert out["evaluations"] == 6 and out["status"] == "finished"
    after = _rows(db, "candidates", "trial, genotype, status, metrics")
    assert after[: len(done_before)] == done_before  # nothing completed was lost or redone
    assert _rows(db, "llm_calls", "seq, key, text")[: len(calls_before)] == calls_before
    sessions = [json.loads(d) for k, d in _rows(db, "events", "kind, data") if k == "session"]
    assert sessions[-1]["llm"]["replayed"] == len(calls_before)  # recorded answers were not asked again
    genotypes = [r[1] for r in after if r[2] == "complete"]
    assert len(genotypes) == len(set(genotypes)) == 6


@pytest.mark.llm
@pytest.mark.slow
def test_replay_reproduces_a_run_without_a_server(run_cli, tmp_path):
    a = json.loads(run_cli("search", "-b", "nb201-cifar100", "-s", "genius", "-n", "4", "--seed", "2",
                           "--run-dir", "a", "--json").stdout)  # fmt: skip
    assert a["llm"]["calls"] >= 4
    b = json.loads(run_cli("search", "-b", "nb201-cifar100", "-s", "genius", "-n", "4", "--seed", "2",
                           "--run-dir", "b", "--llm", "replay:a", "--json").stdout)  # fmt: skip
    cols = "trial, genotype, status, metrics"
    assert _rows(tmp_path / "b" / "run.db", "candidates", cols) == _rows(tmp_path / "a" / "run.db", "candidates", cols)
    assert b["best"] == a["best"] and b["llm"]["calls"] == a["llm"]["calls"]
    assert not (tmp_path / "b" / "llm-server.log").exists()  # no server was started
    # asking for more than was recorded pauses cleanly, keeping what was done
    p = run_cli("search", "-b", "nb201-cifar100", "-s", "genius", "-n", "40", "--seed", "2", "--run-dir", "c",
                "--llm", "replay:a")  # fmt: skip
    assert p.returncode == 3 and "asks for more" in p.stderr and "fairnad resume c" in p.stderr
    assert len([r for r in _rows(tmp_path / "c" / "run.db", "candidates", "status") if r[0] == "complete"]) == 4


def test_a_run_is_in_use_only_while_a_process_holds_it(tmp_path):
    from fairnad.store.sqlite import RunStore, in_use

    store = RunStore.create(tmp_path / "r", {"t": 1})
    assert in_use(tmp_path / "r") and not in_use(tmp_path / "elsewhere")
    store.close()
    assert not in_use(tmp_path / "r")
    with RunStore.open(tmp_path / "r", readonly=True):  # a reader does not hold it
        assert not in_use(tmp_path / "r")


def test_a_run_stored_before_verdicts_reads_and_resumes_by_the_same_rule(run_cli, tmp_path):
    """A run made before the Study stored its verdicts (no improved_best / improved_front columns, no
    cost in its meta): its summary and report judge it by the same rule the Study uses, and a resume
    keeps every stored row as it was and stores verdicts for the new candidates only."""
    from fairnad.report.data import run_payload

    p = run_cli("search", "-b", "nas-bench-macro", "-s", "fairnad", "-n", "20", "--llm", "none", "--run-dir", "new",
                "--json")  # fmt: skip
    assert p.returncode == 0, p.stderr
    fresh = json.loads(p.stdout)
    stored = _rows(tmp_path / "new" / "run.db", "candidates", "trial, improved_best, improved_front")
    # the same run as an older fairnad stored it
    old = tmp_path / "old"
    old.mkdir()
    with sqlite3.connect(tmp_path / "new" / "run.db") as src, sqlite3.connect(old / "run.db") as dst:
        src.backup(dst)
    with sqlite3.connect(old / "run.db") as c:
        c.execute("ALTER TABLE candidates DROP COLUMN improved_best")
        c.execute("ALTER TABLE candidates DROP COLUMN improved_front")
        c.execute("DELETE FROM meta WHERE key = 'cost'")
    before = _rows(old / "run.db", "candidates")
    shown = json.loads(run_cli("runs", "show", "old", "--json").stdout)
    assert shown["children"] == fresh["children"] and shown["best"]["trial"] == fresh["best"]["trial"]
    payload = run_payload(old)
    assert [(r["trial"], r["improved_best"], r["improved_front"]) for r in payload["candidates"]] == \
        [(t, bool(b), bool(f)) for t, b, f in stored]  # fmt: skip
    p = run_cli("resume", "old", "--budget", "26", "--json")
    assert p.returncode == 0, p.stderr
    after = _rows(old / "run.db", "candidates", "trial, genotype, parents, origin, status, metrics, error, counted, "
                  "created, finished, improved_best, improved_front")  # fmt: skip
    assert [row[:10] for row in after[: len(before)]] == [row[1:] for row in before]  # nothing stored changed
    assert all(row[10] is None for row in after[: len(before)])  # (their verdicts are not written after the fact)
    assert all(row[10] is not None and row[11] is not None for row in after[len(before):]) and len(after) > len(before)
    # the new verdicts follow from all the models before them, the old ones included
    from fairnad.pareto import Verdicts

    judge = Verdicts()
    expected = [judge.judge(json.loads(r[5])["accuracy"] if r[4] == "complete" else None,
                            json.loads(r[5]).get("params")) for r in after]  # fmt: skip
    assert [(bool(r[10]), bool(r[11])) for r in after[len(before):]] == expected[len(before):]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.llm
@pytest.mark.slow
def test_answers_that_failed_their_schema_are_replayed_in_their_place(run_cli, tmp_path, embedded_server):
    """GENIUS takes an answer that fails its schema as a refused proposal and goes on: a run killed after
    such answers resumes and replays to the same candidates, asking nothing it asked before."""
    import shutil

    from chaos import query
    from faultproxy import ANSWER_TIMEOUT_S, FaultProxy

    db = tmp_path / "g" / "run.db"
    # (rationale first: an answer cut in half lacks its architecture)
    args = ["-b", "nas-bench-macro", "-s", "genius", "-n", "6", "--seed", "3",
            "--set", "strategies.genius.rationale_first=true"]  # fmt: skip
    cut = ["garbled"] * 3  # the answer and both repairs cut off: the call fails its schema (LLMOutputError)
    failed = "SELECT COUNT(*) FROM llm_calls WHERE error LIKE 'LLMOutputError:%'"
    cand_cols, call_cols = "trial, genotype, parents, origin, status, metrics", "seq, key, text, error"
    with FaultProxy(embedded_server.base_url, [None, *cut, None, *cut]) as px:
        # (the server's grammar mode named, so that no request of the schedule goes to finding it out)
        proc = _start(["search", *args, "--llm", px.base_url, "--run-dir", "g", "--set",
                       f"llm.timeout={ANSWER_TIMEOUT_S}", "--set", "llm.structured=json_object_schema"],
                      tmp_path)  # fmt: skip
        _wait_for(lambda: (query(db, failed) or [(0,)])[0][0] >= 2 or proc.poll() is not None, timeout=600)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = [r for r in _rows(db, "candidates", cand_cols) if r[4] != "running"]
        calls_before = _rows(db, "llm_calls", call_cols)
        first_failed = next(i for i, r in enumerate(calls_before) if r[3])
        assert any(not r[3] for r in calls_before[first_failed:])  # a good answer after a failed one
        p = run_cli("resume", "g", "--json")  # the calls not yet made go live, through the proxy
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["evaluations"] == 6
    assert _rows(db, "candidates", cand_cols)[: len(done_before)] == done_before
    calls = _rows(db, "llm_calls", call_cols)
    assert calls[: len(calls_before)] == calls_before
    sessions = lambda d: [json.loads(x) for k, x in _rows(d, "events", "kind, data") if k == "session"]  # noqa: E731
    assert sessions(db)[-1]["llm"]["replayed"] == len(calls_before)  # the failed answers too: nothing asked again
    refused = query(db, "SELECT origin FROM candidates WHERE error LIKE '%schema-valid%'")
    assert len(refused) >= 2 and not any("llm_calls" in json.loads(o) for (o,) in refused)  # no proposal of theirs

    # --llm replay:g re-executes it with no server at all (the proxy is gone): the same candidates and calls
    r = run_cli("search", *args, "--llm", "replay:g", "--run-dir", "r", "--json")
    assert r.returncode == 0, r.stderr
    assert _rows(tmp_path / "r" / "run.db", "candidates", cand_cols) == _rows(db, "candidates", cand_cols)
    key_cols = "key, text, error, error_class"
    assert _rows(tmp_path / "r" / "run.db", "llm_calls", key_cols) == _rows(db, "llm_calls", key_cols)
    assert not list((tmp_path / "r").glob("llm-server*.log"))

    # and it resumes again, whole, with an LLM address that answers nothing
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    again = run_cli("resume", "g", "--llm", dead, "--json")
    assert again.returncode == 0, again.stderr
    assert _rows(db, "llm_calls", call_cols) == calls and sessions(db)[-1]["llm"]["replayed"] == len(calls)

    # a run recorded before failed answers had their class stored (only the error text says it) resumes
    # the same way, and its records stay as they were
    shutil.copytree(tmp_path / "g", tmp_path / "old")
    old = tmp_path / "old" / "run.db"
    with sqlite3.connect(old) as c:
        c.execute("ALTER TABLE llm_calls DROP COLUMN error_class")
    stored = _rows(old, "llm_calls"), _rows(old, "candidates")
    p = run_cli("resume", "old", "--llm", dead, "--json")
    assert p.returncode == 0, p.stderr
    assert [r[:-1] for r in _rows(old, "llm_calls")] == stored[0] and _rows(old, "candidates") == stored[1]
    assert {r[-1] for r in _rows(old, "llm_calls")} == {None}  # (the class column is added, empty)
    # one whose record no longer matches what it asks stops with one line that says so, changing nothing
    with sqlite3.connect(old) as c:
        c.execute("UPDATE llm_calls SET key = 'changed' WHERE seq = 3")
    stored = _rows(old, "llm_calls"), _rows(old, "candidates")
    p = run_cli("resume", "old", "--llm", dead)
    assert p.returncode == 2, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert "call 3 differs from call 3" in line and "recorded by fairnad" in line and "Traceback" not in p.stderr
    assert (_rows(old, "llm_calls"), _rows(old, "candidates")) == stored
