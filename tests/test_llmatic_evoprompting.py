"""LLMatic and EvoPrompting: their logic with a scripted LLM, then each on a tabular benchmark and on
MNIST-1D with the real embedded server, through the CLI, and EvoPrompting's soft prompt tuning on a
real local transformers model."""

import json

import numpy as np
import pytest

from fairnad.config import SearchConfig
from fairnad.llm import RecordingLLM
from fairnad.lifecycle import make_problem
from fairnad.search.base import create_strategy
from fairnad.search.study import Study
from fairnad.store import RunStore

from conftest import ScriptedLLM


def _tabular_study(tmp_path, llm, bench="nb201-cifar10", budget=30, seed=0):
    problem = make_problem(SearchConfig(benchmark=bench))
    store = RunStore.create(tmp_path / "run", {"t": 1})
    study = Study(problem=problem, store=store, budget=budget, seed=seed, llm=RecordingLLM(llm, sink=store.add_llm_call) if llm is not None else None)  # fmt: skip
    return study, problem.bench


def _open_study(tmp_path, budget, llm):
    problem = make_problem(SearchConfig(space="open", open={"dataset": "mnist1d", "epochs": 1}))
    store = RunStore.create(tmp_path / "open", {"t": 1})
    study = Study(problem=problem, store=store, budget=budget, seed=0, llm=RecordingLLM(llm, sink=store.add_llm_call))  # fmt: skip
    return study, problem


def echo_llm(space, n=300, seed=0):
    """Answers with a seeded random genotype each time, as labels (fixed, so the logic is deterministic)."""
    rng = np.random.default_rng(seed)
    return ScriptedLLM([
        {"architecture": space.labels(space.format([int(rng.integers(len(o))) for o in space.options])),
         "rationale": f"r{i}"} for i in range(n)
    ])  # fmt: skip


# -- LLMatic --------------------------------------------------------------------------------------
def test_llmatic_fills_both_archives_and_moves_temperatures(tmp_path):
    study, b = _tabular_study(tmp_path, None, budget=40)
    study.llm = RecordingLLM(echo_llm(b.space), sink=study.store.add_llm_call)
    strat = create_strategy("llmatic", {"init_population": 4, "mutation_prob": 0.5})
    study.optimize(strat)
    cands = study.candidates
    assert [c.origin["op"] for c in cands[:4]] == ["init"] * 4
    ops = {c.origin["op"] for c in cands[4:]}
    assert ops == {"llm_mutation", "crossover"}  # (regevo's "mutation" is a random change, not this)
    for c in cands[4:]:
        assert len(c.parents) == (2 if c.origin["op"] == "crossover" else 1)
        assert all(p < c.trial for p in c.parents)
        assert 0 <= c.origin["prompt"] < len(strat.config.instructions)
    # the network archive keeps one (most accurate) network per descriptor cell
    elites = strat.nets.data()
    assert 1 <= len(elites["index"]) <= len([c for c in cands if c.ok])
    for sol, obj in zip(elites["solution"][:, 0], elites["objective"]):
        assert study.candidates[int(sol)].metrics["accuracy"] == pytest.approx(obj)
    # temperatures moved away from the initial one, by whole steps, within range
    temps = {round(v["temperature"], 3) for v in strat.cells.values()}
    assert len(temps) > 1 and all(strat.T_RANGE[0] < t < strat.T_RANGE[1] for t in temps)
    assert any(v["curiosity"] > 0 for v in strat.cells.values())  # children that entered the archive raised it
    meta = study.store.meta()["llmatic_archives"]
    assert meta["networks"]["cells"] == len(elites["index"]) and meta["prompts"]["cells"] >= 1
    # the prompt names the instruction and shows the parent with its accuracy
    prompts = [r[-1]["content"] for r in study.llm.live.requests]
    mutations = [p for p in prompts if "Architecture A is" not in p]
    crossovers = [p for p in prompts if "Architecture A is" in p]
    assert mutations and crossovers
    assert all(any(i in p for i in strat.config.instructions) and "% accuracy" in p for p in mutations)
    assert all(p.count("% accuracy") == 2 for p in crossovers)  # both parents, with their accuracy


def test_llmatic_unusable_answer_is_an_invalid_proposal_not_a_crash(tmp_path):
    study, b = _tabular_study(tmp_path, None, budget=6)
    answers = [{"architecture": ["no such op"] * b.space.ndim, "rationale": "x"}] * 3 + echo_llm(b.space).answers
    study.llm = RecordingLLM(ScriptedLLM(answers), sink=study.store.add_llm_call)
    study.optimize(create_strategy("llmatic", {"init_population": 2}))
    invalid = [c for c in study.candidates if c.status == "invalid"]
    assert invalid and all(c.error for c in invalid)
    assert study.evaluations == 6


# -- EvoPrompting ----------------------------------------------------------------------------------
def test_evoprompting_rounds_parents_and_targets(tmp_path):
    study, b = _tabular_study(tmp_path, None, budget=20)
    study.llm = RecordingLLM(echo_llm(b.space, seed=3), sink=study.store.add_llm_call)
    strat = create_strategy("evoprompting", {"parents": 3, "children": 4, "init_population": 4})
    study.optimize(strat)
    cands = study.candidates
    kids = [c for c in cands if c.origin["op"] == "evoprompt"]
    assert len(kids) >= 12 and {c.origin["round"] for c in kids} >= {1, 2, 3}
    # the parents are the best completed models by accuracy minus size
    done = sorted((c for c in cands if c.ok), key=lambda c: strat.fitness(study, c), reverse=True)
    assert strat.parent_trials == [c.trial for c in done[:3]]
    # each prompt shows the parents as examples, weakest first, and states a target above the best
    prompt = study.llm.live.requests[0][-1]["content"]
    first_parents = kids[0].parents
    best = max((cands[t] for t in first_parents), key=lambda c: strat.fitness(study, c))
    assert f"{best.metrics['accuracy'] + strat.config.margin:.2f}" in prompt
    shown = [prompt.find(json.dumps(b.space.labels(cands[t].genotype))) for t in first_parents]
    assert all(i >= 0 for i in shown)
    assert prompt.find(json.dumps(b.space.labels(best.genotype))) == max(shown)  # the best comes last
    # a scripted (untrainable) backend: tuning is skipped, once, and the run log says so
    events = [e for e in study.store.events() if e["kind"].startswith("prompt_tun")]
    assert [e["kind"] for e in events] == ["prompt_tuning_skipped"]
    assert study.store.meta()["evoprompting"]["parents"] == strat.parent_trials


# -- the real embedded server -----------------------------------------------------------------
@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["llmatic", "evoprompting"])
def test_on_a_tabular_benchmark_with_the_embedded_server(tmp_path, embedded_llm, strategy):
    study, b = _tabular_study(tmp_path, embedded_llm, bench="nas-bench-macro", budget=10)
    study.optimize(create_strategy(strategy, {"init_population": 2, **({"children": 2} if strategy == "evoprompting" else {})}))
    counted = [c for c in study.candidates if c.counted]
    assert len(counted) == 10 and len({c.genotype for c in counted}) == 10
    assert all(c.ok and b.space.is_valid(c.genotype) for c in counted)
    calls = study.store.llm_calls()
    assert len(calls) >= 8 - 2  # every child after the two starting ones came through the LLM, recorded
    assert all(c["purpose"].startswith(strategy) for c in calls)
    assert any(c.origin["op"] not in ("init",) and "fallback" not in c.origin for c in counted)


@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["llmatic", "evoprompting"])
def test_on_mnist1d_with_the_embedded_server(tmp_path, embedded_llm, strategy):
    study, problem = _open_study(tmp_path, budget=3, llm=embedded_llm)
    try:
        study.optimize(create_strategy(strategy, {"init_population": 1, "max_tokens": 400,
                                                  **({"children": 2} if strategy == "evoprompting" else {})}))  # fmt: skip
    finally:
        problem.close()
    first = study.candidates[0]
    assert first.origin["op"] == "init" and first.ok and first.metrics["accuracy"] > 10  # trained, above chance
    kids = [c for c in study.candidates if c.origin["op"] != "init"]
    assert kids and study.store.llm_calls()
    for c in kids:  # trained, or failed with a category, or refused with a reason - never a crashed run
        assert c.ok or (c.status == "failed" and c.metrics.get("failure")) or (c.status in ("invalid", "duplicate") and c.error)
    assert study.store.meta()["status"] == "finished"


@pytest.mark.llm
@pytest.mark.slow
def test_cli_bench_runs_both_strategies_and_replays(run_cli, tmp_path):
    proc = run_cli("bench", "--benchmarks", "nas-bench-macro", "--strategies", "llmatic,evoprompting", "--seeds", "1",
                   "--budgets", "6", "--out", "b", "--json", "--set", "strategies.llmatic.init_population=2",
                   "--set", "strategies.evoprompting.init_population=2", "--set", "strategies.evoprompting.children=2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["rows"]
    assert {r["strategy"] for r in rows} == {"llmatic", "evoprompting", "random (exact expectation)"}
    ours = [r for r in rows if r["strategy"] in ("llmatic", "evoprompting")]
    assert len(ours) == 2 and all(r["runs"] == 1 and r["budget"] == 6 and r["acc_mean"] > 0 for r in ours)
    assert all(r["llm_calls"] and r["llm_calls"] >= 3 for r in ours)
    # a recorded run replays to the same sequence without a server
    run = tmp_path / "b" / "nas-bench-macro" / "evoprompting" / "seed0"
    again = run_cli("search", "-b", "nas-bench-macro", "-s", "evoprompting", "-n", "6", "--llm", f"replay:{run}",
                    "--set", "strategies.evoprompting.init_population=2", "--set", "strategies.evoprompting.children=2",
                    "--run-dir", "again", "--json")  # fmt: skip
    assert again.returncode == 0, again.stderr
    from fairnad.store import RunStore as RS

    a = [c.genotype for c in RS.open(run).candidates()]
    b = [c.genotype for c in RS.open(tmp_path / "again").candidates()]
    assert a == b
    # a finished LLMatic run resumes to a larger budget: its archives are rebuilt from the store, the
    # recorded answers are reused, and the earlier candidates stay as they were
    lrun = tmp_path / "b" / "nas-bench-macro" / "llmatic" / "seed0"
    before = RS.open(lrun, readonly=True).candidates()
    more = run_cli("resume", str(lrun), "--budget", "9", "--json")
    assert more.returncode == 0, more.stderr
    assert json.loads(more.stdout)["evaluations"] == 9
    after = RS.open(lrun, readonly=True).candidates()
    assert [c.genotype for c in after[: len(before)]] == [c.genotype for c in before]
    assert sum(c.counted for c in after) == 9


# -- soft prompt tuning on a real local transformers model ------------------------------------------
def _run(tmp_path, name):
    with RunStore.open(tmp_path / name, readonly=True) as store:
        cands = [(c.trial, c.genotype, c.status, c.metrics, c.origin) for c in store.candidates()]
        return cands, [e for e in store.events() if e["kind"] == "prompt_tuned"], store.llm_calls(), store.events()


@pytest.mark.slow
def test_evoprompting_tunes_a_soft_prompt_on_a_local_transformers_model(run_cli, tmp_path):
    # one parent: each round's other child is tuned on, so round 2 is written with the prompt of round 1
    args = ["-b", "nb201-cifar100", "-s", "evoprompting", "--set", "strategies.evoprompting.init_population=3",
            "--set", "strategies.evoprompting.children=2", "--set", "strategies.evoprompting.parents=1",
            "--set", "strategies.evoprompting.tuning_steps=3", "--json"]  # fmt: skip
    env = {"FAIRNAD_LLM_THREADS": "1"}
    proc = run_cli("search", *args, "-n", "7", "--llm", "transformers", "--run-dir", "t", env=env,
                   timeout=1500)  # fmt: skip  (~2 min alone, far more beside other tests)
    assert proc.returncode == 0, proc.stderr
    store = RunStore.open(tmp_path / "t")
    # no grammar on this backend: the answers are decoded within the schema's choices, so every one parses
    calls = store.llm_calls()
    assert len(calls) >= 4 and all(c["parsed"] and not c["error"] for c in calls)
    assert all(c.status == "complete" for c in store.candidates())
    events = store.events()
    store.close()
    tuned = [e for e in events if e["kind"] == "prompt_tuned"]
    assert tuned and not [e for e in events if e["kind"] == "prompt_tuning_skipped"]
    first = tuned[0]
    assert first["steps"] == 3 and first["texts"] >= 1 and first["trainable_parameters"] > 0
    assert first["loss_after"] < first["loss_before"]  # the soft prompt learned the non-parent children
    # each tuned prompt is kept in the run folder
    files = [tmp_path / "t" / e["file"] for e in tuned]
    assert [e["n"] for e in tuned] == [1, 2] and all(f.is_file() for f in files)
    t_cands, t_tuned, t_calls, _ = _run(tmp_path, "t")
    tunings = lambda ev: [(e["key"], e["loss_before"], e["loss_after"]) for e in ev]  # noqa: E731

    # --llm replay:t re-executes it without a model: the recorded tunings are taken, their prompts copied
    r = run_cli("search", *args, "-n", "7", "--llm", "replay:t", "--run-dir", "r", env=env)
    assert r.returncode == 0, r.stderr
    r_cands, r_tuned, _, _ = _run(tmp_path, "r")
    assert r_cands == t_cands and tunings(r_tuned) == tunings(t_tuned)
    assert [(tmp_path / "r" / e["file"]).read_bytes() for e in r_tuned] == [f.read_bytes() for f in files]

    # a resume whose answers and tunings are all recorded builds no model: one that cannot be loaded is not missed
    p = run_cli("resume", "t", "--llm", f"transformers:{tmp_path / 'no-such-model.gguf'}", env=env)
    assert p.returncode == 0, p.stderr
    cands, again, calls_after, events = _run(tmp_path, "t")
    assert cands == t_cands and again == t_tuned and len(calls_after) == len(t_calls)
    session = [e for e in events if e["kind"] == "session"][-1]["llm"]
    assert session["replayed"] == len(t_calls) and session["tunings_replayed"] == len(t_tuned)

    # a run stopped after its first tuning goes on with the prompt it tuned, loaded from its file: it makes
    # the same children, and tunes on from the same prompt, as the run that was never stopped. Its first
    # part is the replay of t's (the same answers and tuning as a live run, above, without the model's time)
    h = run_cli("search", *args, "-n", "5", "--llm", "replay:t", "--run-dir", "h", env=env)
    assert h.returncode == 0, h.stderr
    assert tunings(_run(tmp_path, "h")[1]) == tunings(t_tuned[:1])
    p = run_cli("resume", "h", "--budget", "7", "--llm", "transformers", env=env, timeout=1500)
    assert p.returncode == 0, p.stderr
    h_cands, h_tuned, _, events = _run(tmp_path, "h")
    assert h_cands == t_cands and tunings(h_tuned) == tunings(t_tuned)
    assert [e for e in events if e["kind"] == "session"][-1]["llm"]["prompts_loaded"] == [first["file"]]
