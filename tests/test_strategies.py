"""Every strategy on every benchmark, and the logic of each (GENIUS with a scripted and a real LLM)."""

import json

import pytest

from fairnad.evaluate.tabular import TabularEvaluator, list_benchmarks, load_benchmark
from fairnad.llm import RecordingLLM
from fairnad.search.base import create_strategy, list_strategies
from fairnad.problem import Problem
from fairnad.search.study import Study, StrategyStalled
from fairnad.store import RunStore

from conftest import ScriptedLLM


def make_study(tmp_path, bench="nas-bench-macro", budget=10, seed=0, llm=None, name="run"):
    b = load_benchmark(bench)
    store = RunStore.create(tmp_path / name, {"test": True})
    rec = RecordingLLM(llm, sink=store.add_llm_call) if llm is not None else None
    problem = Problem(kind="tabular", space=b.space, evaluator=TabularEvaluator(b), dataset=b.spec.dataset,
                      domain=b.keys)  # fmt: skip
    return Study(problem=problem, store=store, budget=budget, seed=seed, llm=rec)


def cycling_llm(space, n=400):
    """Proposes every genotype of a fixed stride in turn, sometimes repeating (scripted, for logic tests)."""
    answers = []
    for i in range(n):
        g = space.format([(i * 7 + j * 3) % len(o) for j, o in enumerate(space.options)]) if i % 5 else space.format(
            [0] * space.ndim)
        answers.append({"architecture": space.labels(g), "rationale": f"idea {i}"})
    return ScriptedLLM(answers)


@pytest.mark.parametrize("bench", list_benchmarks())
@pytest.mark.parametrize("strategy", ["random", "regevo", "genius"])
def test_every_strategy_on_every_benchmark(tmp_path, bench, strategy):
    b = load_benchmark(bench)
    study = make_study(tmp_path, bench, budget=15, llm=cycling_llm(b.space) if strategy == "genius" else None)
    study.optimize(create_strategy(strategy))
    counted = [c for c in study.candidates if c.counted]
    assert len(counted) == 15 == study.evaluations
    assert len({c.genotype for c in counted}) == 15  # no genotype evaluated twice
    assert all(c.ok and b.space.is_valid(c.genotype) for c in counted)
    stored = study.store.candidates()
    assert [c.genotype for c in stored] == [c.genotype for c in study.candidates]
    assert study.store.meta()["status"] == "finished"


def test_registry_lists_the_strategies():
    assert {"random", "regevo", "genius"} <= set(list_strategies())


def test_random_is_seeded_and_distinct(tmp_path):
    runs = []
    for i, seed in enumerate([1, 1, 2]):
        s = make_study(tmp_path, "nb201-cifar10", budget=30, seed=seed, name=f"r{i}")
        s.optimize(create_strategy("random"))
        runs.append([c.genotype for c in s.candidates])
    assert runs[0] == runs[1] != runs[2]
    assert len(set(runs[0])) == 30


def test_regevo_tournament_mutation_and_aging(tmp_path):
    study = make_study(tmp_path, "channel-bench-resnet", budget=40)
    strat = create_strategy("regevo", {"population": 8, "sample": 3})
    study.optimize(strat)
    cands = study.candidates
    assert all(c.origin["op"] == "random" for c in cands[:8])
    for c in cands[8:]:
        assert c.origin["op"] == "mutation"
        parent = cands[c.parents[0]]
        assert sum(a != b for a, b in zip(parent.genotype, c.genotype)) == 1
        assert parent.trial < c.trial and c.trial - parent.trial <= 8  # parents come from the living population
    assert [m.trial for m in strat.population] == list(range(32, 40))  # the oldest left first


def test_regevo_beats_random_on_average(tmp_path):
    def mean_best(strategy):
        out = []
        for seed in range(8):
            s = make_study(tmp_path, "nb201-cifar100", budget=60, seed=seed, name=f"{strategy}{seed}")
            s.optimize(create_strategy(strategy))
            out.append(s.best().metrics["test_accuracy"])
        return sum(out) / len(out)

    assert mean_best("regevo") > mean_best("random")


def test_genius_prompts_from_the_space_description(tmp_path):
    b = load_benchmark("channel-bench-mobilenet")
    llm = cycling_llm(b.space)
    study = make_study(tmp_path, "channel-bench-mobilenet", budget=3, llm=llm)
    study.optimize(create_strategy("genius"))
    first = llm.requests[0]
    assert first[0]["role"] == "system" and "neural architecture search" in first[0]["content"]
    problem = first[1]["content"]
    assert "CIFAR-10" in problem and "channels[6]" in problem and "1152" in problem
    assert "class InvertedResidual" in problem
    second = llm.requests[1]
    assert second[-2]["role"] == "assistant" and second[-1]["role"] == "user"
    acc = study.candidates[0].metrics["accuracy"]
    assert f"{acc:.2f}%" in second[-1]["content"]


def test_genius_retries_then_falls_back(tmp_path):
    b = load_benchmark("nas-bench-macro")
    same = {"architecture": b.space.labels("11111111"), "rationale": "again"}
    bad = {"architecture": [1, 1, 1], "rationale": "too short"}
    llm = ScriptedLLM([same, same, bad, same, same, same, same, same])
    study = make_study(tmp_path, budget=3, llm=llm)
    study.optimize(create_strategy("genius", {"max_retries": 2}))
    statuses = [(c.status, c.origin["op"]) for c in study.candidates]
    assert statuses[:5] == [
        ("complete", "llm"), ("duplicate", "llm"), ("invalid", "llm"), ("duplicate", "llm"), ("complete", "fallback"),
    ]  # fmt: skip
    assert "already evaluated" in llm.requests[2][-1]["content"]
    assert "could not be used: expected a list of 8" in llm.requests[3][-1]["content"]
    fb = study.candidates[4]
    assert fb.parents == [0] and sum(a != b for a, b in zip(fb.genotype, "11111111")) == 1
    assert "was evaluated instead" in llm.requests[4][-1]["content"]
    # every proposal, refused or not, is in the store with its reason
    stored = study.store.candidates()
    assert stored[2].status == "invalid" and "expected a list of 8" in stored[2].error
    assert stored[1].error == "already evaluated as trial 0" and not stored[1].counted


def test_genius_conversation_window(tmp_path):
    b = load_benchmark("nb201-cifar10")
    llm = cycling_llm(b.space)
    study = make_study(tmp_path, "nb201-cifar10", budget=30, llm=llm)
    study.optimize(create_strategy("genius", {"history_turns": 4}))
    lengths = [len(r) for r in llm.requests]
    assert max(lengths) <= 2 + 2 * 4  # system + problem + at most 4 answers, 3 feedbacks and the new one
    assert min(lengths[8:]) >= 2 + 2 * 2  # never fewer than history_turns/2 exchanges once it is full
    for r in llm.requests:
        assert [m["role"] for m in r[:2]] == ["system", "user"]
        assert all(r[i]["role"] != r[i + 1]["role"] for i in range(1, len(r) - 1))


def test_stalled_strategy_is_stopped(tmp_path):
    b = load_benchmark("nas-bench-macro")
    answers = [{"architecture": b.space.labels("22222222"), "rationale": "x"}] * 200
    study = make_study(tmp_path, budget=5, llm=ScriptedLLM(answers))
    study.max_rejections = 6
    with pytest.raises(StrategyStalled, match="6 proposals in a row"):
        study.optimize(create_strategy("genius", {"max_retries": 100}))


@pytest.mark.llm
def test_genius_with_the_real_embedded_server(tmp_path, embedded_llm):
    study = make_study(tmp_path, "channel-bench-resnet", budget=4, llm=embedded_llm)
    study.optimize(create_strategy("genius"))
    assert study.evaluations == 4
    calls = study.store.llm_calls()
    assert len(calls) >= 4 and all(c["error"] is None for c in calls)
    assert all(json.loads(c["text"])["architecture"] for c in calls)  # schema-valid JSON every time
    assert {c.origin["op"] for c in study.candidates} <= {"llm", "fallback"}


def test_llm_made_counts_only_the_models_own_proposals(tmp_path):
    from fairnad.store.summary import made_by_llm, summarize

    assert made_by_llm({"op": "llm"}) and made_by_llm({"op": "evoprompt", "round": 1})
    assert made_by_llm({"op": "pareto", "via": "llm"}) and not made_by_llm({"op": "pareto", "via": "arguments"})
    for replaced in ({"fallback": "random neighbour"}, {"idea_enforced": True}, {"llm_answer": "unusable"}):
        assert not made_by_llm({"op": "idea", **replaced})
    assert not made_by_llm({"op": "init"}) and not made_by_llm({"op": "fallback"})
    # a GENIUS run whose model repeats itself: the repeats' replacements are not counted as the model's
    b = load_benchmark("nas-bench-macro")
    same = {"architecture": b.space.labels(b.space.format([0] * b.space.ndim)), "rationale": "again"}
    study = make_study(tmp_path, budget=4, llm=ScriptedLLM([same] * 40))
    study.optimize(create_strategy("genius", {"max_retries": 1}))
    study.store.set_meta(config={"strategy": "genius", "benchmark": "nas-bench-macro"})
    s = summarize(study.store, b)
    assert s["evaluations"] == 4 and s["llm_made"] == 1  # only the first answer was new
    assert sum(n for op, n in s["origins"].items() if op != "llm") == 3
    # regularized evolution's "mutation" is not an LLM's, whatever its op is called
    rs = make_study(tmp_path, budget=12, name="regevo")
    rs.optimize(create_strategy("regevo", {"population": 4}))
    rs.store.set_meta(config={"strategy": "regevo", "benchmark": "nas-bench-macro"})
    assert summarize(rs.store, b)["llm_made"] == 0
