"""FairNAD: fair sampling, NSGA-II parent choice against pymoo, each mutation type, ablations,
budget downscaling, duplicate detection, statistics in the run store, and crash + resume."""

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from fairnad.config import SearchConfig
from fairnad.search.base import create_strategy
from fairnad.search.ideas import Idea, IdeaSpace
from fairnad.search.pareto import rank_and_crowding, tournament
from fairnad.search.study import Study, StrategyStalled
from fairnad.llm import RecordingLLM
from fairnad.lifecycle import make_problem
from fairnad.store import RunStore

from conftest import ScriptedLLM


# -- fair sampling --------------------------------------------------------------------------------
def test_fair_sampling_is_uniform_over_categories_not_ideas():
    cats = {"popular": [Idea(f"p{i}", f"p{i}", "popular", "Popular") for i in range(30)],
            "rare": [Idea("r0", "r0", "rare", "Rare")],
            "middle": [Idea(f"m{i}", f"m{i}", "middle", "Middle") for i in range(5)]}  # fmt: skip
    space = IdeaSpace(cats)
    rng = np.random.default_rng(0)
    n = 6000
    draws = [space.sample(rng) for _ in range(n)]
    counts = np.array([sum(d.category == c for d in draws) for c in sorted(cats)])
    chi2 = float(((counts - n / 3) ** 2 / (n / 3)).sum())
    assert chi2 < 9.21  # chi-square, 2 degrees of freedom, p = 0.01
    assert sum(d.id == "r0" for d in draws) > 1800  # the single rare idea gets a third, not 1/36
    inner = np.array([sum(d.id == f"m{i}" for d in draws) for i in range(5)])
    assert float(((inner - inner.sum() / 5) ** 2 / (inner.sum() / 5)).sum()) < 13.28  # uniform inside (4 dof)


# -- NSGA-II --------------------------------------------------------------------------------------
F = np.array([[-90, 100], [-85, 50], [-80, 10], [-88, 120], [-70, 5], [-91, 300], [-60, 60], [-85, 80], [-75, 70]], float)


def test_rank_and_crowding_match_pymoo():
    rank, crowd = rank_and_crowding(F, np.random.default_rng(0))
    fronts = NonDominatedSorting().do(F)
    expected_rank = np.zeros(len(F), int)
    for r, idx in enumerate(fronts):
        expected_rank[idx] = r
    assert (rank == expected_rank).all()
    crowding = get_crowding_function("cd")
    for idx in fronts:
        np.testing.assert_allclose(crowd[idx], crowding.do(F[idx]))


def test_tournament_prefers_lower_rank_then_crowding():
    rank, crowd = rank_and_crowding(F, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    picks = tournament(rank, crowd, rng, n=4000)
    counts = np.bincount(picks, minlength=len(F))
    front0 = rank == 0
    assert counts[front0].sum() > counts[~front0].sum()
    worst = int(np.argmax(rank))
    assert counts[worst] < counts[front0].min()  # a dominated point wins only against even worse ones


# -- mutation types on a tabular space (scripted LLM: deterministic logic) -------------------------------
def _tabular_study(tmp_path, bench="nb201-cifar10", budget=14, llm=None, name="run"):
    cfg = SearchConfig(benchmark=bench)
    problem = make_problem(cfg)
    store = RunStore.create(tmp_path / name, {"t": 1})
    rec = RecordingLLM(llm, sink=store.add_llm_call) if llm is not None else None
    return Study(problem=problem, store=store, budget=budget, seed=0, llm=rec)  # fmt: skip


def _answers(space, n=200):
    return [{"architecture": space.labels(space.format([(i * 3 + j) % len(o) for j, o in enumerate(space.options)])),
             "rationale": "x"} for i in range(n)]  # fmt: skip


@pytest.mark.parametrize("only", ["idea", "pareto"])
def test_ablation_flags_switch_mutation_types_off(tmp_path, only):
    study = _tabular_study(tmp_path)
    llm = ScriptedLLM(_answers(study.space))
    study.llm = RecordingLLM(llm, sink=study.store.add_llm_call)
    others = [t for t in ("idea", "pareto", "iterative") if t != only]
    study.optimize(create_strategy("fairnad", {"disable": others, "init_population": 4, "table_answer": "write"}))
    ops = {c.origin["op"] for c in study.candidates}
    assert ops == {"init", only}
    assert study.evaluations == 14
    if only == "pareto":
        assert llm.requests == []  # Pareto-aware mutation of a table needs no LLM
        moved = [c for c in study.candidates if c.origin["op"] == "pareto"]
        assert all(sum(a != b for a, b in zip(c.genotype, study.candidates[c.parents[0]].genotype)) == 1 for c in moved)
    else:
        assert all(c.origin["idea"]["id"] for c in study.candidates if c.origin["op"] == "idea")
        prompt = llm.requests[0][-1]["content"]
        assert "The parent architecture is" in prompt and "applies this idea" in prompt
    stats = study.store.meta()["fairnad_stats"]
    assert stats["mutations"][only]["tried"] == 10


@pytest.mark.parametrize("answer", ["write", "choice"])
def test_idea_is_always_in_the_child(tmp_path, answer):
    study = _tabular_study(tmp_path, budget=12)
    answers = _answers(study.space) if answer == "write" else [{"rationale": "x", "choice": 2}] * 20
    study.llm = RecordingLLM(ScriptedLLM(answers), sink=study.store.add_llm_call)
    study.optimize(create_strategy("fairnad", {"disable": ["pareto", "iterative"], "table_answer": answer}))
    for c in study.candidates:
        if c.origin["op"] == "idea":
            pos, code = c.origin["idea"]["id"].split("=")
            d = [x.name for x in study.space.dims].index(pos)
            assert c.genotype[d] == code


def _moves_in(prompt: str) -> dict[int, tuple[str, str]]:
    """{number: (position, new option label)} of the changes a choice prompt lists."""
    out = {}
    for line in prompt.splitlines():
        m = re.match(r"(\d+)\. (\S+): (\S+)(?: \(.*?\))? instead of ", line)
        if m:
            out[int(m.group(1))] = (m.group(2), m.group(3))
    return out


@pytest.mark.parametrize("op", ["idea", "iterative"])
def test_the_llm_chooses_among_one_option_changes_on_tables(tmp_path, op):
    study = _tabular_study(tmp_path, budget=16)
    llm = ScriptedLLM([{"rationale": "x", "choice": 3}] * 5 + ["not json"] + [{"rationale": "x", "choice": 9}] * 10)
    study.llm = RecordingLLM(llm, sink=study.store.add_llm_call)
    others = [t for t in ("idea", "pareto", "iterative") if t != op]
    # (adaptive off: every child of the type is the LLM's choice; the credit's own tests are in test_credit.py)
    study.optimize(create_strategy("fairnad", {"disable": others, "init_population": 4, "choices": 4,
                                               "adaptive": False}))  # fmt: skip
    kids = [c for c in study.candidates if c.origin["op"] == op]
    assert len(kids) == 12 and len(llm.requests) == 12
    labels = {d.name: i for i, d in enumerate(study.space.dims)}
    done_before = {}
    for c, msgs in zip(kids, llm.requests):
        parent = study.candidates[c.parents[0]]
        assert sum(a != b for a, b in zip(c.genotype, parent.genotype)) == 1  # one option changed
        moves = _moves_in(msgs[-1]["content"])
        assert sorted(moves) == [1, 2, 3, 4]
        pos, new = moves[c.origin["choice"]]
        assert str(study.space.labels(c.genotype)[labels[pos]]) == new  # the child is the change chosen
        assert c.origin["idea"]["id"].split("=")[0] == pos  # its idea statistics go to the change's idea
        done_before[c.trial] = msgs[-1]["content"]
    sources = [(c.origin["source"], c.origin["choice"]) for c in kids]
    assert sources[:5] == [("llm", 3)] * 5
    assert all(s == ("fallback", 1) for s in sources[5:])  # unusable (not JSON; 9 of 4): the first change
    # the evidence shown for a change is the table's record so far
    first = kids[0]
    prompt = done_before[first.trial]
    pos, new = _moves_in(prompt)[1]
    d = labels[pos]
    seen = [c for c in study.candidates if c.trial < first.trial and c.ok]
    accs = [c.metrics["accuracy"] for c in seen if str(study.space.labels(c.genotype)[d]) == new]
    line = next(x for x in prompt.splitlines() if x.startswith("1. "))
    assert (f"{len(accs)}, averaging {np.mean(accs):.2f}%" in line) if accs else ("there: none yet" in line)


def test_without_an_llm_the_change_with_the_best_record_is_taken(tmp_path):
    study = _tabular_study(tmp_path, budget=25)
    study.optimize(create_strategy("random", {}))
    done, space = study.completed(), study.space
    parent = max(done, key=lambda c: c.metrics["accuracy"])
    overall = np.mean([c.metrics["accuracy"] for c in done])
    old = space.parse(parent.genotype)

    def record(d, j, prior):  # the models with option j at position d, `prior` more at the mean of all
        accs = [c.metrics["accuracy"] for c in done if space.parse(c.genotype)[d] == j]
        return (np.sum(accs) + prior * overall) / (len(accs) + prior) if accs else overall

    picks = set()
    for prior in (0, 4, 50):  # 0: raw means; the default 4; 50: every record near the mean
        # (stall off: 25 random models may hold their best 20 evaluations back, a stall; tests/test_tables.py)
        fair = create_strategy("fairnad", {"choices": 6, "evidence_prior": prior, "stall": 0})
        fair._setup(study)
        moves = [fair.steps._move(study, parent.genotype, g) for g in space.neighbours(parent.genotype)[:6]]
        gain = [record(d, j, prior) - record(d, old[d], prior) for d, j, _ in moves]
        child = fair.steps._chosen(study, parent, moves, {"op": "idea"})
        assert child.genotype == moves[int(np.argmax(gain))][2] and child.source == "algorithm"
        assert child.origin["rule"] == "evidence" and child.origin["of"] == 6
        picks.add(child.genotype)
    assert len(picks) > 1  # on this record the prior changes which change is taken
    assert create_strategy("fairnad", {}).config.evidence_prior == 4
    sampled = create_strategy("fairnad", {"choices": 6, "table_rule": "sampled"})
    sampled._setup(study)
    assert sampled.steps._chosen(study, parent, moves, {"op": "idea"}).genotype == moves[0][2]  # the fair sample as is


@pytest.mark.llm
def test_a_real_server_answers_the_choice_with_a_listed_number(tmp_path, embedded_llm):
    # plumbing (SmolLM2-135M): the constrained answer reaches the child through llama.cpp's grammar
    study = _tabular_study(tmp_path, budget=7, llm=embedded_llm)
    study.optimize(create_strategy("fairnad", {"disable": ["pareto"], "init_population": 3, "choices": 3,
                                               "adaptive": False}))  # fmt: skip  (every child the model's)
    kids = [c for c in study.candidates if c.origin["op"] in ("idea", "iterative")]
    assert len(kids) == 4 and all(c.origin["source"] == "llm" for c in kids), [c.origin for c in kids]
    assert all(1 <= c.origin["choice"] <= c.origin["of"] <= 3 for c in kids)
    calls = study.store.llm_calls()
    assert len(calls) == 4 and all('"choice"' in c["text"] for c in calls), calls[:1]


def test_all_switched_off_is_refused():
    from fairnad.errors import ConfigError

    with pytest.raises(ConfigError, match="every mutation type is switched off"):
        create_strategy("fairnad", {"disable": ["idea", "pareto", "iterative"]})
    with pytest.raises(ConfigError, match="unknown mutation types"):
        create_strategy("fairnad", {"probs": {"magic": 1.0}})


# -- open space: real sandboxed training -----------------------------------------------------------
def _open_study(tmp_path, budget, llm=None, **open_kw):
    cfg = SearchConfig(space="open", open={"dataset": "mnist1d", "epochs": 1, **open_kw})
    problem = make_problem(cfg)
    store = RunStore.create(tmp_path / "open", {"t": 1})
    rec = RecordingLLM(llm, sink=store.add_llm_call) if llm is not None else None
    study = Study(problem=problem, store=store, budget=budget, seed=0, llm=rec)  # fmt: skip
    return study, problem


@pytest.mark.slow
def test_budget_downscale_and_structural_duplicates(tmp_path):
    # the reference 1-D CNN has 37k parameters; a budget of 20k makes it fail, then it is shrunk
    study, problem = _open_study(tmp_path, budget=3, max_params=20_000)
    try:
        study.optimize(create_strategy("fairnad", {"disable": ["idea", "iterative"], "init_population": 1}))
        first, second = study.candidates[0], study.candidates[1]
        assert first.metrics["failure"] == "budget" and "over the budget of 20,000" in first.error
        assert second.origin["op"] == "downscale" and second.parents == [0] and second.ok
        assert second.metrics["params"] <= 20_000
        # a renamed, reformatted copy of a model already trained is caught by its structure, not trained again
        twin = second.genotype.replace("Mnist1dCNN", "Renamed").replace("    ", "  ") + "\n# same network\n"
        res = problem.evaluator.evaluate(type(second)(id=0, trial=9, genotype=twin))
        assert res.status == "duplicate" and "same network" in res.error
    finally:
        problem.close()


@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.parametrize("only", ["idea", "pareto", "iterative"])
def test_each_mutation_type_on_mnist1d_with_the_embedded_server(tmp_path, embedded_llm, only):
    others = [t for t in ("idea", "pareto", "iterative") if t != only]
    study, problem = _open_study(tmp_path, budget=2, llm=embedded_llm)
    # an answer without usable code is refused and not counted: with the 135M model the run could ask on
    # for many minutes, so three refusals in a row end it (StrategyStalled, itself an outcome with a reason)
    study.max_rejections = 3
    try:
        study.optimize(create_strategy("fairnad", {"disable": others, "init_population": 1, "max_tokens": 300,
                                                   "agent_turns": 2}))  # fmt: skip
    except StrategyStalled as err:
        assert "proposals in a row that could not be evaluated" in str(err)
    finally:
        problem.close()
    assert study.candidates[0].origin["op"] == "init" and study.candidates[0].ok
    children = [c for c in study.candidates if c.origin["op"] == only]
    assert children, [c.origin for c in study.candidates]
    for c in children:
        # a valid child, a failure with its category (and traceback), a refusal with its reason, or a
        # change that left the network as it was (the parent merged with the answer's definitions)
        assert (c.ok or (c.status == "failed" and c.metrics.get("failure"))
                or (c.status in ("invalid", "duplicate") and c.error))  # fmt: skip
    if only == "pareto":
        assert children[0].ok and children[0].origin["via"] == "arguments"  # scaled through build_model's arguments
    else:
        assert study.store.llm_calls()  # the LLM was asked, and every call is recorded


@pytest.mark.slow
def test_open_run_resumes_after_kill_9(run_cli, tmp_path):
    args = ["search", "--space", "open", "--dataset", "mnist1d", "--strategy", "fairnad", "--budget", "5",
            "--epochs", "1", "--set", "strategies.fairnad.disable=[idea, iterative]",
            "--set", "strategies.fairnad.init_population=3", "--run-dir", "r"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "fairnad", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    db = tmp_path / "r" / "run.db"

    def counted():
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                return c.execute("SELECT COUNT(*) FROM candidates WHERE counted = 1").fetchone()[0]
        except sqlite3.Error:
            return 0

    deadline = time.monotonic() + 300
    while counted() < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as c:
        before = c.execute("SELECT trial, genotype, metrics FROM candidates WHERE counted = 1 ORDER BY trial").fetchall()
    out = json.loads(run_cli("resume", "r", "--json").stdout)
    assert out["evaluations"] == 5 and out["status"] == "finished"
    with sqlite3.connect(db) as c:
        after = c.execute("SELECT trial, genotype, metrics FROM candidates WHERE counted = 1 ORDER BY trial").fetchall()
    assert after[: len(before)] == before  # nothing trained before the kill was lost or trained again
    assert (tmp_path / "r" / "best_model.py").read_text().strip().startswith('"""')


def test_iterative_refinement_builds_on_the_ideas_that_worked():
    from fairnad.search.fairnad_base import Steps

    strategy = create_strategy("fairnad", {})
    strategy.ideas = IdeaSpace({"a": [Idea("se", "squeeze-and-excitation", "a", "A"), Idea("res", "residual", "a", "A")],
                                "b": [Idea("drop", "dropout", "b", "B")]})  # fmt: skip
    strategy.rng = np.random.default_rng(0)
    assert Steps(strategy).refining_idea()[1] is False  # nothing has worked yet: a fair draw
    strategy.idea_stats = {"se": {"tried": 3, "valid": 0, "improved": 0}, "drop": {"tried": 2, "valid": 1, "improved": 0}}
    # a child that only trained is no sign the idea works (seed 0: 4 refinements with squeeze-and-excitation
    # after its one child trained to 56%): still a fair draw
    assert {worked for _, worked in (Steps(strategy).refining_idea() for _ in range(20))} == {False}
    assert {i.id for i, _ in (Steps(strategy).refining_idea() for _ in range(40))} == {"se", "res", "drop"}
    strategy.idea_stats["res"] = {"tried": 4, "valid": 2, "improved": 1}
    assert {(i.id, worked) for i, worked in (Steps(strategy).refining_idea() for _ in range(20))} == {("res", True)}
    strategy.idea_stats["drop"]["improved"] = 1
    # the parent's own line is not refined with its own ideas again (the model writes the parent back)
    assert {(i.id, worked) for i, worked in (Steps(strategy).refining_idea({"res"}) for _ in range(20))} == {("drop", True)}
    assert {(i.id, worked) for i, worked in (Steps(strategy).refining_idea({"res", "drop"}) for _ in range(20))} == {("se", False)}


def test_a_models_ideas_are_those_of_its_line_of_descent():
    from types import SimpleNamespace

    from fairnad.space.candidate import Candidate

    def cand(trial, parents, idea=None):
        return Candidate(id=trial, trial=trial, genotype=str(trial), parents=parents,
                         origin={"op": "idea", "idea": {"id": idea}} if idea else {"op": "init"})  # fmt: skip

    from fairnad.search.fairnad_open import OpenSteps

    cands = [cand(0, []), cand(1, [0], "se"), cand(2, [1], "res"), cand(3, [0], "drop"), cand(4, [2, 3])]
    study = SimpleNamespace(candidates=cands)
    assert OpenSteps._ideas_of(study, cands[2]) == {"se", "res"}
    assert OpenSteps._ideas_of(study, cands[4]) == {"se", "res", "drop"}
    assert OpenSteps._ideas_of(study, cands[0]) == set()


def test_failures_in_later_prompts_give_the_error_and_where_not_the_failing_line(tmp_path):
    """A run's feedback once quoted a failing default argument, and the model copied it into 37 of its next
    39 answers: later prompts name the error and where it happened, never the failing source line."""
    from fairnad.prompts import render
    from fairnad.space.candidate import Proposal

    bad_line = "def __init__(self, c, stride: int = 2 if cin % 2 == 1 else 1):"
    code = ("import torch.nn as nn\n\n\nclass ConvBlock1d(nn.Module):\n    " + bad_line + "\n"
            "        super().__init__()\n        self.conv = nn.Conv1d(c, c, 3, stride, 1)\n\n"
            "    def forward(self, x):\n        return self.conv(x)\n\n\n"
            "def build_model(num_classes: int = 10):\n"
            "    return nn.Sequential(ConvBlock1d(1), nn.Flatten(), nn.LazyLinear(num_classes))\n")  # fmt: skip
    study, problem = _open_study(tmp_path, budget=2)
    try:
        strategy = create_strategy("fairnad", {})
        strategy._setup(study)
        origin = {"op": "idea", "idea": {"id": "strided", "name": "strided blocks"}, "source": "llm"}
        results = study._run_batch([Proposal(code, parents=[], origin=origin)])
        assert results[0].status == "failed" and bad_line in results[0].metrics["traceback"]  # the sandbox keeps it
        strategy.tell(study, results)
        feedback = render("fairnad/feedback.j2", fb=strategy.steps.feedback(study))
    finally:
        problem.close()
    assert ('- idea with idea "strided blocks": import: NameError: name \'cin\' is not defined (in ConvBlock1d)\n\n'
            in feedback)  # one line per failure, a blank line before the next section
    assert "cin % 2" not in feedback and "candidate.py" not in feedback


def test_a_run_that_stored_no_idea_source_keeps_the_template_it_was_made_with():
    """Open searches made before papers13 was the default stored no `knowledge`: they resume and replay
    with the template's examples; a new config that names none stores the default (the template again: the
    tree of 8304e28 ended below it in the 3-seed search), and papers13 stays selectable."""
    from fairnad import lifecycle

    before = lifecycle.load_knowledge(SearchConfig(space="open", strategy="fairnad"))
    assert before.attributes() == lifecycle.load_tree("template").attributes()
    assert lifecycle.default_knowledge() == "template"
    assert lifecycle.load_tree("papers13").attributes() != before.attributes()


@pytest.mark.slow
def test_llm_none_on_an_open_space_trains_argument_moves_end_to_end(run_cli, tmp_path):
    """`--llm none` on MNIST-1D through the CLI: FairNAD's deterministic counterpart. The starting models
    train, then every idea and iterative child is an argument move of the strongest front model (it
    says which), Pareto children move arguments too; real training, no server, no LLM call."""
    r = run_cli("search", "--space", "open", "--dataset", "mnist1d", "--strategy", "fairnad", "--llm", "none",
                "--budget", "10", "--epochs", "2", "--seed", "3", "--run-dir", "r", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["evaluations"] == 10 and out["llm"]["calls"] == 0
    with sqlite3.connect(tmp_path / "r" / "run.db") as c:
        rows = [(json.loads(o), s, json.loads(m)) for o, s, m in c.execute(
            "SELECT origin, status, metrics FROM candidates WHERE counted = 1 ORDER BY trial")]  # fmt: skip
    children = [(o, s, m) for o, s, m in rows if o.get("op") in ("idea", "iterative", "pareto")]
    assert children, [o for o, _, _ in rows]
    for origin, status, metrics in children:
        assert origin["via"] == "arguments" and origin["changes"] and origin["action"] in ("up", "down", "tune")
        assert status == "complete" and metrics["val_acc"] > 20, metrics  # a real model, trained (chance is 10%)
    assert {o["op"] for o, _, _ in children} & {"idea", "iterative"}  # the LLM steps' counterparts ran
    assert all(o.get("counterpart") == "arguments" for o, _, _ in children if o["op"] in ("idea", "iterative"))
    # a new open search that names no idea source stores the default one, the template's examples
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["knowledge"] == "template"
    # FairNAD's LLM-less counterpart exists only for FairNAD in open spaces: the others refuse in one line
    r = run_cli("search", "--space", "open", "--dataset", "mnist1d", "--strategy", "llmatic", "--llm", "none",
                "--budget", "2")
    assert r.returncode == 2 and "--llm none: llmatic has no run without its LLM here" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
