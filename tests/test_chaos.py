"""Kill -9 at random moments, many times, then resume: tabular searches (with and without an LLM), an
open-ended search that trains models in sandboxes, and a knowledge build. Nothing completed is lost
or counted twice, no child process outlives fairnad, and with the LLM's answers recorded the final
state equals an uninterrupted run. (benchmarks/reliability.py runs the same campaigns with more kills.)"""

import numpy as np
import pytest

from chaos import comparable_tree, finished_candidates, query, run_campaign
from pdfs import make_paper
from test_knowledge import MINI

pytestmark = pytest.mark.slow
COUNTED = "SELECT COUNT(*) FROM candidates WHERE status != 'running'"


def _assert_clean(c, what):
    assert c.returncode == 0, f"{what}: exit {c.returncode}: {c.stderr[-2000:]}"
    assert not c.orphans, f"{what}: child processes outlived a kill -9: {c.orphans}"
    assert not c.lost and not c.doubles, (c.lost, c.doubles)


def test_regevo_killed_ten_times_equals_an_uninterrupted_run(run_cli, tmp_path):
    args = ["search", "-b", "channel-bench-resnet", "-s", "regevo", "-n", "3000", "--seed", "7"]
    assert run_cli(*args, "--run-dir", "ref").returncode == 0
    c = run_campaign([*args, "--run-dir", "run"], ["resume", "run"], tmp_path, tmp_path / "run" / "run.db", kills=10,
                     rng=np.random.default_rng(1), progress_sql=COUNTED, max_step=400)  # fmt: skip
    _assert_clean(c, "regevo")
    assert c.kills == 10
    assert finished_candidates(tmp_path / "run" / "run.db") == finished_candidates(tmp_path / "ref" / "run.db")
    assert query(tmp_path / "run" / "run.db", "SELECT COUNT(*) FROM candidates WHERE counted = 1") == [(3000,)]


@pytest.mark.llm
def test_genius_killed_many_times_with_recorded_answers_equals_the_recorded_run(run_cli, tmp_path):
    # rows to spare: see below; a short history keeps the live reference's prompts short (what is tested is
    # the kills, not the prompt: 16 turns made prompts of up to 2,600 tokens and the test ~400 s)
    args = ["search", "-b", "nb201-cifar10", "-s", "genius", "-n", "20", "--seed", "4",
            "--set", "strategies.genius.history_turns=4"]
    ref = run_cli(*args, "--run-dir", "ref", "--json")  # live, with the embedded model
    assert ref.returncode == 0, ref.stderr
    db = tmp_path / "run" / "run.db"
    c = run_campaign([*args, "--run-dir", "run", "--llm", "replay:ref"], ["resume", "run"], tmp_path, db, kills=6,
                     rng=np.random.default_rng(2), progress_sql=COUNTED, max_step=2, max_delay=1.0, gate=True)  # fmt: skip
    _assert_clean(c, "genius")
    # the replayed search writes its rows within ~20 ms of a ~1 s start-up: the gate runs it in slices of
    # ~0.2 ms, so the kills after 1-2 new rows land mid-search (a kill by time lands in start-up, or at
    # the latest at its rows' target); on a busy machine a slice can stretch to a few ms and a kill land
    # several rows on, hence 20 evaluations for 6 kills
    assert c.kills == 6 and c.mid_search >= 4, c
    assert finished_candidates(db) == finished_candidates(tmp_path / "ref" / "run.db")
    calls = "SELECT key, text FROM llm_calls WHERE error IS NULL ORDER BY seq"
    assert query(db, calls) == query(tmp_path / "ref" / "run.db", calls)


def test_open_search_killed_during_training_equals_an_uninterrupted_run(run_cli, tmp_path):
    args = ["search", "--space", "open", "--dataset", "mnist1d", "--strategy", "fairnad", "--budget", "4",
            "--epochs", "1", "--set", "strategies.fairnad.disable=[idea, iterative]",
            "--set", "strategies.fairnad.init_population=2", "--set", "open.keep_weights=2"]  # fmt: skip
    assert run_cli(*args, "--run-dir", "ref").returncode == 0
    db = tmp_path / "run" / "run.db"
    # a Pareto move whose scaled arguments repeat a model asks the LLM: its answers come from the reference
    # run (a kill between two calls of one child would otherwise ask a fresh server with another prompt
    # cache, whose answer may differ in its sampled tokens)
    c = run_campaign([*args, "--run-dir", "run", "--llm", "replay:ref"], ["resume", "run"], tmp_path, db, kills=3,
                     rng=np.random.default_rng(3), progress_sql=COUNTED, max_step=1, max_delay=8.0)  # fmt: skip
    _assert_clean(c, "open")
    assert c.kills == 3
    assert finished_candidates(db) == finished_candidates(tmp_path / "ref" / "run.db")
    weights = sorted(p.name for p in (tmp_path / "run" / "weights").glob("*.safetensors"))
    assert weights == sorted(p.name for p in (tmp_path / "ref" / "weights").glob("*.safetensors"))
    assert not list((tmp_path / "run" / "weights").glob("*.tmp"))


@pytest.mark.llm
def test_knowledge_build_killed_then_resumed_equals_an_uninterrupted_build(run_cli, tmp_path):
    papers = tmp_path / "papers"
    for i in range(3):
        make_paper(papers / f"p{i}.pdf", title=f"Residual Blocks with Separable Convolutions, part {i + 1}")
    (tmp_path / "mini.yaml").write_text(MINI)
    build = ["knowledge", "build", "papers", "--template", "mini.yaml", "--candidates", "8"]
    ref = run_cli(*build, "--out", "knowledge/ref.json", "--json")
    assert ref.returncode == 0, ref.stderr
    db = tmp_path / "runs" / "knowledge-c" / "build.db"
    again = [*build, "--out", "knowledge/c.json", "--llm", "replay:runs/knowledge-ref"]
    c = run_campaign(again, again, tmp_path, db, kills=4, rng=np.random.default_rng(4),
                     progress_sql="SELECT COUNT(*) FROM llm_calls", max_step=2, max_delay=4.0)  # fmt: skip
    _assert_clean(c, "knowledge build")
    assert c.kills >= 2
    assert comparable_tree(tmp_path / "knowledge" / "c.json") == comparable_tree(tmp_path / "knowledge" / "ref.json")
    assert query(db, "SELECT COUNT(*) FROM papers") == [(3,)]
