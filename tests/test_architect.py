"""The default embedded model as an architect: LLM-written children are checked by a probe that goes
through the run (stored, counted, answered from the store on resume), asked afresh (or sent back with
the error, `repairs`) when they fail it, and - with the real Qwen2.5-Coder-1.5B - train."""

from __future__ import annotations

import json
import sqlite3

import pytest

from fairnad.config import SearchConfig
from fairnad.llm import RecordingLLM
from fairnad.lifecycle import make_problem
from fairnad.search.base import create_strategy
from fairnad.search.study import Study
from fairnad.space.reference import reference
from fairnad.store import RunStore

from conftest import ARCHITECT, ScriptedLLM

PARENT = reference("mnist1d-cnn").source()
BLOCK = PARENT[PARENT.index("class ConvBlock1d"):PARENT.index("class Mnist1dCNN")]
# a conv block whose residual adds a tensor of another width (a shape failure), and a good change
BROKEN = BLOCK.replace("return self.act(self.bn(self.conv(x)))", "return self.act(self.bn(self.conv(x))) + x")
SILU = BLOCK.replace("self.act = nn.GELU()", "self.act = nn.SiLU()")


def _open_study(tmp_path, budget, llm, name="open"):
    problem = make_problem(SearchConfig(space="open", open={"dataset": "mnist1d", "epochs": 1}))
    store = RunStore.create(tmp_path / name, {"t": 1}) if not (tmp_path / name).exists() else RunStore.open(tmp_path / name)
    study = Study(problem=problem, store=store, budget=budget, seed=0, llm=RecordingLLM(llm, sink=store.add_llm_call, recorded=store.llm_calls()))  # fmt: skip
    return study, problem


def _fenced(code: str) -> str:
    return f"Here is the change.\n```python\n{code}```"


def _fairnad(tmp_path, answers: list[str], only: str = "idea", **config):
    """One starting model, then one child of mutation type `only` from the scripted answers."""
    llm = ScriptedLLM([_fenced(a) for a in answers])
    study, problem = _open_study(tmp_path, budget=2, llm=llm)
    others = [t for t in ("idea", "pareto", "iterative") if t != only]
    try:
        study.optimize(create_strategy("fairnad", {"disable": others, "init_population": 1, **config}))
    finally:
        problem.close()
    return study, llm


@pytest.mark.slow
def test_a_child_that_fails_its_check_is_asked_afresh(tmp_path):
    """The default: the same prompt again with a new seed (the server's prompt cache makes it cheap),
    and the new answer is a change of the parent, not of the broken child."""
    study, llm = _fairnad(tmp_path, [BROKEN, SILU])
    child = study.candidates[1]
    assert child.origin["op"] == "idea" and child.origin["retried"] == 1 and child.origin["attempts"] == 2 and child.ok
    assert child.origin["check_failures"][0].startswith("shape: RuntimeError") and "repaired" not in child.origin
    assert llm.requests[1] == llm.requests[0]  # the same messages: a prefix the server has cached
    assert "nn.SiLU()" in child.genotype and "+ x" not in child.genotype
    probes = study.store.probes()
    # the broken answer and the new one; no size inference while answers are left
    assert [p["result"]["category"] for p in probes] == ["shape", None] and study.probes == 2


@pytest.mark.slow
def test_a_child_that_is_its_parent_in_another_form_is_caught_by_its_check(tmp_path):
    """Different code, the same network (same parameter shapes and outputs): found by the check's
    structure, before it costs an evaluation, and asked afresh."""
    same = PARENT.replace("self.features(x).mean(dim=-1)", "self.features(x).mean(-1)")
    study, _ = _fairnad(tmp_path, [same, SILU])
    assert same != PARENT and [c.status for c in study.candidates] == ["complete", "complete"]
    child = study.candidates[1]
    assert child.origin["check_failures"] == ["duplicate: the same network as trial 0 (same parameter shapes and "
                                              "outputs); change the network itself"]  # fmt: skip
    assert "nn.SiLU()" in child.genotype and child.origin["retried"] == 1


@pytest.mark.slow
def test_a_parent_written_back_is_asked_afresh_with_another_idea(tmp_path):
    """The parent written back means it already has the idea, so the same prompt would get the same
    answer: the fresh ask names another fairly sampled idea, and the child is that idea's. Switched
    off, the same prompt goes again (as after a failure of any other kind, tests above)."""
    study, llm = _fairnad(tmp_path, [PARENT, SILU])
    child = study.candidates[1]
    assert child.ok and "nn.SiLU()" in child.genotype and child.origin["retried"] == 1
    assert child.origin["check_failures"][0].startswith("this network was already evaluated")
    first, second = (r[-1]["content"] for r in llm.requests)
    (had,) = child.origin["ideas_in_parent"]
    new = child.origin["idea"]["name"]
    assert new != had and had in first and new in second and new not in first
    assert [r[0] for r in llm.requests[0:1]] == [r[0] for r in llm.requests[1:2]]  # same system message

    study, llm = _fairnad(tmp_path / "off", [PARENT, SILU], new_idea_on_duplicate=False)
    assert llm.requests[1] == llm.requests[0] and "ideas_in_parent" not in study.candidates[1].origin


@pytest.mark.slow
def test_a_child_that_fails_its_check_is_repaired_through_a_stored_probe(tmp_path):
    study, llm = _fairnad(tmp_path, [BROKEN, SILU], repairs=1, retries=0)
    child = study.candidates[1]
    assert child.origin["op"] == "idea" and child.origin["repaired"] == 1 and child.ok
    assert child.origin["check_failures"][0].startswith("shape: RuntimeError")
    assert "nn.SiLU()" in child.genotype and "+ x" not in child.genotype  # the fix is a change of the broken child
    repair = llm.requests[1][-1]["content"]
    assert repair.startswith("That model fails its check:\nshape: RuntimeError") and 'File "candidate.py"' in repair
    assert "/tmp/" not in repair and "site-packages" not in repair  # no random paths, no library frames
    probes = study.store.probes()
    assert [p["kind"] for p in probes] == ["check"] * 2
    assert [p["result"]["category"] for p in probes] == ["shape", None]
    assert study.probes == 2 and probes[0]["genotype"].count("+ x") == 1


@pytest.mark.slow
def test_the_iterative_child_is_driven_by_the_sandbox(tmp_path):
    """Iterative refinement in an open space needs no tool call from the model: every answer is built
    and checked, the first failure goes back with its error, a later one is asked afresh."""
    # its fix still fails (a gate from a tensor of another length in the strided blocks)
    still = BLOCK.replace("return self.act(self.bn(self.conv(x)))", "return self.act(self.bn(self.conv(x))) * x[:, :1]")
    study, llm = _fairnad(tmp_path, [BROKEN, still, SILU], only="iterative")
    child = study.candidates[1]
    assert child.origin["op"] == "iterative" and child.origin["source"] == "llm" and child.ok
    assert child.origin["repaired"] == 1 and child.origin["retried"] == 1 and child.origin["attempts"] == 3
    task = llm.requests[0][-1]["content"]
    # no idea has worked yet in this run: a fairly drawn one, named in the task
    assert "most accurate model on the Pareto front" in task and child.origin["idea_worked"] is False
    assert f"**{child.origin['idea']['name']}**" in task
    assert llm.requests[1][-1]["content"].startswith("That model fails its check:")  # the error, shown to the model
    assert llm.requests[2] == llm.requests[0]  # then afresh
    assert "nn.SiLU()" in child.genotype and "+ x" not in child.genotype and still not in child.genotype


# a child with SiLU (a new network) whose head was written for twice the channels that arrive
WRONG_HEAD = PARENT.replace("self.head = nn.Linear(c, num_classes)", "self.head = nn.Linear(c * 2, num_classes)").replace(
    "self.act = nn.GELU()", "self.act = nn.SiLU()")


@pytest.mark.slow
def test_a_wrong_input_size_is_inferred_from_the_data_without_a_call(tmp_path):
    """The commonest failure of a small model's child, a head whose in_features does not match what
    arrives, is fixed by lazy layers (nn.LazyLinear...) when the last answer still has it, and the
    child trains."""
    study, llm = _fairnad(tmp_path, [WRONG_HEAD] * 3)
    parent, child = study.candidates[:2]
    assert len(llm.requests) == 3 and child.origin["retried"] == 2 and "repaired" not in child.origin
    assert child.origin["inferred_sizes"] == 3 and child.origin["check_failures"][0].startswith("shape: RuntimeError")
    assert child.ok and "nn.LazyLinear(num_classes)" in child.genotype
    # materialised before counting: the same layers as the parent, so the same parameters
    assert child.metrics["params"] == parent.metrics["params"]


@pytest.mark.slow
def test_inferring_sizes_can_be_switched_off(tmp_path):
    fixed = WRONG_HEAD.replace("nn.Linear(c * 2, num_classes)", "nn.Linear(c, num_classes)")
    study, llm = _fairnad(tmp_path, [WRONG_HEAD, fixed], infer_sizes=False)
    child = study.candidates[1]
    assert len(llm.requests) == 2 and child.origin["retried"] == 1 and "inferred_sizes" not in child.origin
    assert "Lazy" not in child.genotype and child.ok


@pytest.mark.slow
def test_stored_probes_answer_a_resume_without_running(tmp_path):
    strategy = {"disable": ["pareto", "iterative"], "init_population": 1}
    study, problem = _open_study(tmp_path, budget=2, llm=ScriptedLLM([_fenced(BROKEN), _fenced(SILU)]))
    try:
        study.optimize(create_strategy("fairnad", strategy))
        first = [(c.genotype, c.status) for c in study.candidates]
    finally:
        problem.close()
        study.store.close()
    # the same run again, resumed: the LLM answers come from the recording, the probes from the store
    study, problem = _open_study(tmp_path, budget=2, llm=ScriptedLLM([]))
    try:
        study.probe_fn_calls = 0
        real = problem.probes["check"]

        def counting(src):
            study.probe_fn_calls += 1
            return real(src)

        problem.probes["check"] = counting
        study.optimize(create_strategy("fairnad", strategy))
        assert [(c.genotype, c.status) for c in study.candidates] == first
        assert study.probe_fn_calls == 0 and study.probes_run == 0 and study.probes == 2
    finally:
        problem.close()


SIMPLE_IDEAS = """name: simple
description: a few everyday design ideas
levels:
  - id: operation
    name: Operation level
    categories:
      - id: activation
        name: Activation
        description: Non-linear functions between layers.
        examples: [Swish / SiLU, ReLU6]
      - id: regularization
        name: Regularization
        description: What keeps a network from overfitting.
        examples: [dropout before the classifier]
"""


@pytest.mark.llm
@pytest.mark.slow
def test_the_default_model_writes_children_that_train(run_cli, tmp_path):
    """With Qwen2.5-Coder-1.5B (named explicitly: the tests' plumbing default is the 135M model), idea
    mutations of the reference CNN with everyday ideas: LLM-written children train, and differ from
    their parent. (How often they train is measured by benchmarks/llm_children.py: about a third of
    the harder ideas' children; here at least one of three.)"""
    from fairnad.knowledge.template import load_template
    from fairnad.knowledge.tree import AttributeTree

    (tmp_path / "simple.yaml").write_text(SIMPLE_IDEAS)
    AttributeTree.from_template(load_template(tmp_path / "simple.yaml")).save(tmp_path / "ideas.json")
    p = run_cli("search", "--space", "open", "--dataset", "mnist1d", "-s", "fairnad", "-n", "5", "--epochs", "2",
                "--llm", f"embedded:{ARCHITECT}", "--knowledge", "ideas.json",
                "--set", "strategies.fairnad.disable=[pareto, iterative]",
                "--set", "strategies.fairnad.init_population=2", "--run-dir", "r", "--json", timeout=2400)  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    s = json.loads(p.stdout)
    idea = next(r for r in s["children"] if r["origin"] == "idea")
    assert idea["by_llm"] and idea["proposed"] >= 3
    assert idea["trained"] >= 1, s["children"]
    with sqlite3.connect(tmp_path / "r" / "run.db") as db:
        models = {m for (m,) in db.execute("select distinct model from llm_calls")}
        rows = db.execute("select genotype, parents from candidates where status = 'complete' and "
                          "json_extract(origin, '$.op') = 'idea'").fetchall()  # fmt: skip
        parents = {t: g for t, g in db.execute("select trial, genotype from candidates")}
    assert models == {ARCHITECT}  # the answers came from the default model, not the plumbing one
    for genotype, ps in rows:
        assert genotype != parents[json.loads(ps)[0]]


@pytest.mark.slow
def test_past_the_probe_cap_children_go_unchecked_to_their_evaluation(tmp_path):
    llm = ScriptedLLM([_fenced(BROKEN)])
    study, problem = _open_study(tmp_path, budget=2, llm=llm)
    study.max_probes = 0
    try:
        study.optimize(create_strategy("fairnad", {"disable": ["pareto", "iterative"], "init_population": 1}))
    finally:
        problem.close()
    child = study.candidates[1]
    assert "repaired" not in child.origin and child.status == "failed" and child.metrics["failure"] == "shape"
    assert study.probes == 0 and len(llm.requests) == 1
    assert [e["kind"] for e in study.store.events()].count("probe_cap_reached") == 1


@pytest.mark.slow
def test_the_train_probe_trains_one_epoch_and_is_stored(tmp_path):
    """`study.probe("train", code)`, for strategies that want a quick accuracy before an evaluation."""
    study, problem = _open_study(tmp_path, budget=1, llm=ScriptedLLM([]))
    try:
        r = study.probe("train", PARENT)
        again = study.probe("train", PARENT)
    finally:
        problem.close()
    assert r["status"] == "complete" and 10 < r["val_acc"] <= 100 and r["params"] > 0
    assert again == r and study.probes_run == 1 and [p["kind"] for p in study.store.probes()] == ["train"]


@pytest.mark.slow
def test_a_lazy_layer_the_forward_never_uses_is_a_shape_failure_not_a_crash(tmp_path):
    unused = PARENT.replace("self.head = nn.Linear(c, num_classes)",
                            "self.head = nn.Linear(c, num_classes)\n        self.aux = nn.LazyLinear(5)")
    study, problem = _open_study(tmp_path, budget=1, llm=ScriptedLLM([]))
    try:
        r = problem.probes["check"](unused)
    finally:
        problem.close()
    assert r["status"] == "failed" and r["category"] == "shape" and "never used in the forward pass" in r["error"]
