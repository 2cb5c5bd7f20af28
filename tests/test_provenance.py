"""Provenance at the source: every strategy says who made each proposal (origin["source"]: llm,
algorithm, fallback, init) and which stored LLM calls made it (origin["llm_calls"]); the LLM share of a
run counts the model's own proposals from that, and runs stored before `source` existed read as before.

Real SQLite run stores and real tabular benchmarks; the LLM is scripted (it reads the prompt it is given,
so each answer's kind is known: a new child, a repeat, an answer without the idea, an unusable one)."""

import json
import re
import sqlite3

import numpy as np
import pytest

from fairnad.config import SearchConfig
from fairnad.llm import Completion, RecordingLLM, Usage
from fairnad.lifecycle import make_problem
from fairnad.store.summary import made_by_llm, summarize
from fairnad.search.base import create_strategy
from fairnad.search.ideas import IdeaSpace
from fairnad.search.study import Study
from fairnad.space.candidate import SOURCES, Proposal
from fairnad.store import RunStore

REPLACED = ("fallback", "idea_enforced", "llm_answer")  # origin keys saying how a fallback was made


class PromptLLM:
    """Answers through `answer(prompt, i) -> (kind, answer)`; remembers each call's kind, in order."""

    def __init__(self, answer):
        self.answer = answer
        self.kinds: list[str] = []

    def complete(self, messages, *, temperature=0.0, schema=None, max_tokens=None, seed=None, purpose="", stop=None):
        kind, a = self.answer(messages[-1]["content"], len(self.kinds))
        self.kinds.append(kind)
        text = a if isinstance(a, str) else json.dumps(a)
        return Completion(text=text, parsed=None if isinstance(a, str) else a, usage=Usage(10, 5), latency=0.0,
                          model="scripted")  # fmt: skip


def _study(tmp_path, bench="nb201-cifar10", budget=20, llm=None, name="run"):
    problem = make_problem(SearchConfig(benchmark=bench))
    store = RunStore.create(tmp_path / name, {"strategy": "t", "benchmark": bench})
    rec = RecordingLLM(llm, sink=store.add_llm_call) if llm is not None else None
    return Study(problem=problem, store=store, budget=budget, seed=0, llm=rec)  # fmt: skip


def _listed(prompt: str, before: str) -> list:
    """The JSON list of labels that follows `before` in a prompt (the last one when there are several)."""
    found = re.findall(re.escape(before) + r"\s*(\[[^\[\]]*\])", prompt)
    assert found, f"{before!r} not in the prompt"
    return json.loads(found[-1])


def _garbage(space):
    return {"architecture": ["no such op"] * space.ndim, "rationale": "?"}


def _random_labels(space, rng):
    return {"architecture": space.labels(space.format([int(rng.integers(len(o))) for o in space.options])),
            "rationale": "new"}  # fmt: skip


def _kind_of(study, llm: PromptLLM, cand) -> str | None:
    """The kind of the last LLM answer that made `cand`, through its origin's llm_calls."""
    seqs = [c["seq"] for c in study.store.llm_calls()]
    calls = cand.origin.get("llm_calls")
    return llm.kinds[seqs.index(calls[-1])] if calls else None


def _check_provenance(study, purpose: str) -> list:
    """What every run must hold; returns the stored candidates."""
    stored = study.store.candidates()
    calls = {c["seq"]: c for c in study.store.llm_calls()}
    claimed: list[int] = []
    for c in stored:
        src = c.origin.get("source")
        assert src in SOURCES, c.origin
        if src == "llm":  # the model's own: the calls that made it are named, and are this strategy's
            assert c.origin.get("llm_calls"), c.origin
            assert all(calls[s]["purpose"].startswith(purpose) for s in c.origin["llm_calls"])
            assert not any(k in c.origin for k in REPLACED), c.origin
        elif src == "fallback":
            assert any(k in c.origin for k in REPLACED), c.origin  # and how
        else:  # starting models and algorithmic steps asked nothing
            assert "llm_calls" not in c.origin, c.origin
        claimed += c.origin.get("llm_calls") or []
        assert made_by_llm(c.origin) == (src == "llm")
    assert len(claimed) == len(set(claimed))  # no call made two proposals
    s = summarize(study.store)
    assert s["llm_made"] == sum(c.counted and c.origin["source"] == "llm" for c in stored)
    assert sum(s["sources"].values()) == s["evaluations"]
    return stored


def _strip_sources(store, renames: dict[str, str] | None = None) -> None:
    """Make the run look like one stored before `source` (and with the op names of then)."""
    with sqlite3.connect(store.run_dir / "run.db") as db:
        db.execute("UPDATE candidates SET origin = json_remove(origin, '$.source')")
        for new, old in (renames or {}).items():
            db.execute("UPDATE candidates SET origin = json_set(origin, '$.op', ?)"
                       " WHERE json_extract(origin, '$.op') = ?", (old, new))  # fmt: skip


# -- FairNAD -----------------------------------------------------------------------------------------
def test_fairnad_children_say_whose_they_are(tmp_path):
    study = _study(tmp_path, budget=40)
    space = study.space
    ideas = list(IdeaSpace.from_tabular(space).by_id.values())
    kinds = ["apply", "ignore", "apply", "garbage", "apply"]

    def answer(prompt, i):
        kind = kinds[i % len(kinds)]
        if kind == "garbage":
            return kind, _garbage(space)
        labels = _listed(prompt, "The parent architecture is")
        if kind == "apply":  # the idea, and one more change elsewhere: a new child
            idea = next(x for x in ideas if re.search(re.escape(f"applies this idea: {x.name}") + r"[ .]", prompt))
            labels[idea.position] = space.options[idea.position][idea.option].label
            other = (idea.position + 1 + i % (space.ndim - 1)) % space.ndim
            opts = [o.label for o in space.options[other]]
            labels[other] = opts[(opts.index(labels[other]) + 1 + i % (len(opts) - 1)) % len(opts)]
        return kind, {"architecture": labels, "rationale": kind}  # "ignore": the parent as it was

    llm = PromptLLM(answer)
    study.llm = RecordingLLM(llm, sink=study.store.add_llm_call)
    # the written answer (table_answer: write); the choice's provenance: test_fairnad's choice tests
    # (adaptive off: every idea child is the LLM's, and the run reads as one stored before sources; the credit's
    # counterparts say "algorithm": tests/test_credit.py)
    study.optimize(create_strategy("fairnad", {"disable": ["iterative"], "init_population": 4, "table_answer": "write",
                                               "adaptive": False}))  # fmt: skip
    stored = _check_provenance(study, "fairnad.")
    by_source: dict[str, list] = {}
    for c in stored:
        by_source.setdefault(c.origin["source"], []).append(c)
        kind = _kind_of(study, llm, c)
        op = c.origin["op"]
        if op == "init":
            assert c.origin["source"] == "init"
        elif op == "pareto":  # a move through the table's options
            assert c.origin["source"] == "algorithm" and kind is None
        else:
            assert op == "idea" and kind is not None
            if kind == "apply":  # the model's child, unless it happened to repeat one (then a neighbour)
                assert c.origin["source"] == "llm" or c.origin.get("fallback") == "neighbour", c.origin
            elif kind == "ignore":  # the idea had to be set into it, or it was its parent again
                assert c.origin["source"] == "fallback" and ("idea_enforced" in c.origin or "fallback" in c.origin)
            else:
                assert c.origin["source"] == "fallback" and c.origin["llm_answer"] == "unusable"
    assert {"init", "algorithm", "llm", "fallback"} <= set(by_source), {k: len(v) for k, v in by_source.items()}
    assert len(by_source["llm"]) >= 3
    # a run stored before sources reads the same: same share, same labels
    before = summarize(study.store)
    _strip_sources(study.store)
    with RunStore.open(study.store.run_dir, readonly=True) as old:
        after = summarize(old)
        assert all("source" not in c.origin for c in old.candidates())
    assert after["llm_made"] == before["llm_made"] > 0 and after["sources"] == {"?": after["evaluations"]}
    rows = lambda s: [(r["origin"], r["by_llm"]) for r in s["children"]]  # noqa: E731
    assert rows(after) == rows(before)


# -- GENIUS ------------------------------------------------------------------------------------------
def test_genius_answers_are_the_models_and_its_fallback_is_not(tmp_path):
    study = _study(tmp_path, "nas-bench-macro", budget=3)
    space = study.space
    same = {"architecture": space.labels("11111111"), "rationale": "again"}
    llm = PromptLLM(lambda prompt, i: ("x", [same, same, _garbage(space), same, same, same, same][i]))
    study.llm = RecordingLLM(llm, sink=study.store.add_llm_call)
    study.optimize(create_strategy("genius", {"max_retries": 2}))
    stored = _check_provenance(study, "genius.")
    assert [(c.status, c.origin["op"], c.origin["source"]) for c in stored[:5]] == [
        ("complete", "llm", "llm"), ("duplicate", "llm", "llm"), ("invalid", "llm", "llm"), ("duplicate", "llm", "llm"),
        ("complete", "fallback", "fallback"),
    ]  # fmt: skip
    assert [c.origin.get("llm_calls") for c in stored[:5]] == [[1], [2], [3], [4], None]  # one call each; none for it
    assert summarize(study.store)["llm_made"] == 1


# -- LLMatic and EvoPrompting -------------------------------------------------------------------------
def _echo_or_repeat(space, before: str, kinds: list[str]):
    rng = np.random.default_rng(5)

    def answer(prompt, i):
        kind = kinds[i % len(kinds)]
        if kind == "garbage":
            return kind, _garbage(space)
        if kind == "repeat" and before in prompt:  # an evaluated architecture shown in the prompt
            return kind, {"architecture": _listed(prompt, before), "rationale": "the same"}
        return "new", _random_labels(space, rng)

    return PromptLLM(answer)


def test_llmatic_mutation_is_the_llms_and_a_repeat_falls_back(tmp_path):
    study = _study(tmp_path, budget=24)
    llm = _echo_or_repeat(study.space, "The current architecture is", ["new", "repeat", "new", "garbage"])
    study.llm = RecordingLLM(llm, sink=study.store.add_llm_call)
    study.optimize(create_strategy("llmatic", {"init_population": 4, "mutation_prob": 0.6}))
    stored = _check_provenance(study, "llmatic.")
    assert {c.origin["op"] for c in stored} == {"init", "llm_mutation", "crossover"}
    assert all(c.origin["source"] == "init" for c in stored if c.origin["op"] == "init")
    seen = set()
    for c in stored:
        kind = _kind_of(study, llm, c)
        if c.origin["op"] != "init":
            assert kind is not None
            seen.add(kind)
        if kind == "repeat":  # the parent again: an unseen neighbour in its place
            assert c.origin["source"] == "fallback" and c.origin["fallback"] == "random neighbour" and c.counted
        elif kind == "garbage":  # refused, still the model's (refused) proposal; not an evaluation
            assert c.status == "invalid" and c.origin["source"] == "llm" and not c.counted
        elif kind == "new":
            assert c.origin["source"] == "llm" or "fallback" in c.origin
    assert seen == {"new", "repeat", "garbage"}
    # old runs: LLMatic's LLM mutation was stored as "mutation" and counted as the model's
    before = summarize(study.store)["llm_made"]
    _strip_sources(study.store, {"llm_mutation": "mutation"})
    with RunStore.open(study.store.run_dir, readonly=True) as old:
        assert summarize(old)["llm_made"] == before > 0


def test_evoprompting_children_and_fallbacks(tmp_path):
    study = _study(tmp_path, budget=16)
    llm = _echo_or_repeat(study.space, "- ", ["new", "new", "repeat", "garbage"])
    study.llm = RecordingLLM(llm, sink=study.store.add_llm_call)
    study.optimize(create_strategy("evoprompting", {"parents": 3, "children": 4, "init_population": 4}))
    stored = _check_provenance(study, "evoprompting.")
    kinds = {}
    for c in stored:
        if c.origin["op"] == "init":
            assert c.origin["source"] == "init" and "llm_calls" not in c.origin
            continue
        assert c.origin["op"] == "evoprompt"
        kind = kinds[c.trial] = _kind_of(study, llm, c)
        want = {"new": "llm", "repeat": "fallback", "garbage": "llm"}[kind]
        assert c.origin["source"] == want or (kind == "new" and "fallback" in c.origin), (kind, c.origin)
        assert (c.status == "invalid") == (kind == "garbage")
    assert set(kinds.values()) == {"new", "repeat", "garbage"}


# -- strategies without an LLM -------------------------------------------------------------------------
def test_regevo_and_random_are_algorithmic(tmp_path):
    rs = _study(tmp_path, "channel-bench-resnet", budget=20, name="regevo")
    rs.optimize(create_strategy("regevo", {"population": 6}))
    stored = _check_provenance(rs, "-")
    assert [c.origin["source"] for c in stored[:6]] == ["init"] * 6  # the starting population
    assert all(c.origin["source"] == "algorithm" for c in stored[6:] if c.origin["op"] == "mutation")
    assert any(c.origin["op"] == "mutation" for c in stored) and summarize(rs.store)["llm_made"] == 0
    rnd = _study(tmp_path, "channel-bench-resnet", budget=8, name="random")
    rnd.optimize(create_strategy("random"))
    assert {c.origin["source"] for c in _check_provenance(rnd, "-")} == {"algorithm"}


# -- the vocabulary and the legacy rule ---------------------------------------------------------------
def test_proposal_source_is_checked_and_stored_in_the_origin():
    p = Proposal("0", origin={"op": "x"}, source="algorithm")
    assert p.origin == {"op": "x", "source": "algorithm"} and p.source == "algorithm"
    assert Proposal("0", origin={"op": "x", "source": "llm"}).source == "llm"
    assert Proposal("0").source is None and Proposal("0").origin == {}
    with pytest.raises(ValueError, match="unknown proposal source"):
        Proposal("0", source="model")
    with pytest.raises(ValueError, match="origin says"):
        Proposal("0", origin={"source": "llm"}, source="fallback")


def test_the_source_decides_and_old_origins_read_as_before():
    # the source decides, whatever the op is called
    assert made_by_llm({"op": "mutation", "source": "llm"})
    assert not made_by_llm({"op": "mutation", "source": "algorithm"})
    assert not made_by_llm({"op": "idea", "source": "fallback"}) and not made_by_llm({"op": "llm", "source": "init"})
    assert made_by_llm({"op": "idea", "source": "llm", "inferred_sizes": 2})  # healed sizes: still the model's design
    # origins stored without a source: the op rule of then
    assert made_by_llm({"op": "llm"}) and made_by_llm({"op": "mutation"})
    assert made_by_llm({"op": "idea", "inferred_sizes": 1})
    assert made_by_llm({"op": "pareto", "via": "llm"}) and not made_by_llm({"op": "pareto", "via": "arguments"})
    for replaced in ({"fallback": "random neighbour"}, {"idea_enforced": True}, {"llm_answer": "unusable"}):
        assert not made_by_llm({"op": "idea", **replaced})
    assert not any(made_by_llm({"op": op}) for op in ("init", "fallback", "random", "downscale"))
