"""FairNAD in an open space: the candidates are model files the sandbox trains.

  idea       the LLM applies a fairly sampled idea (with its description and source quotes) to the parent;
             a child it writes as an evaluated network (mostly the parent: the idea is already in it) is
             asked afresh with another idea (`new_idea_on_duplicate`).
  pareto     small front models are scaled up, large ones get a knob tuned, through the model's own
             build_model arguments where it has them, through the LLM where it does not.
  iterative  the strongest front model is refined with an idea that has worked (its children improved
             the front) and is not already in its line; the sandbox drives the turns: each answer is
             built and checked, a failure goes back to the model once, then it is asked afresh.
Every LLM-written child is checked (builds, output shape, not an evaluated network: a stored probe)
before it costs an evaluation; one that fails is asked afresh (`retries`), and a last answer that still
fails on a shape has its layers' input sizes inferred. A child over the parameter budget is shrunk and
evaluated again. With `--llm none` an idea or iterative child is an argument move of the strongest
front model, and a Pareto move the model would have written is another argument move of its parent.
"""

from __future__ import annotations


import numpy as np

from fairnad.prompts import render
from fairnad.search.common import ask_code, starting_models
from fairnad.search.fairnad_base import DUPLICATE, Steps
from fairnad.search.ideas import IdeaSpace
from fairnad.search.pareto import tournament
from fairnad.space.candidate import Proposal
from fairnad.space.code import infer_input_sizes, scale, shrink_to_budget


class OpenSteps(Steps):
    def __init__(self, core, study) -> None:
        super().__init__(core)
        tree = study.problem.ideas
        core.ideas = IdeaSpace.from_tree(tree, self.config.include_over_specific) if tree is not None else IdeaSpace({})
        self.contract = study.problem.contract
        self.budget = study.problem.max_params
        self.fresh_left = self.config.fresh_tries

    def start(self, study) -> list[Proposal]:
        return starting_models(study, self.config.init_population, self.rng)

    def describe(self, study, cand) -> str:
        return study.space.describe(cand.genotype)

    def no_parent(self, study, pending) -> Proposal | None:
        """Every starting model failed: ask the LLM for a fresh model from the contract, with their
        failures as feedback, `fresh_tries` times; then stop, naming the failures. Nothing while
        children of this step are pending (they may train)."""
        if pending:
            return None
        if self.fresh_left <= 0 or study.llm is None:
            from fairnad.search.study import StrategyStalled

            fails = "; ".join(f"trial {c.trial} {c.metrics.get('failure') or c.status}: {(c.error or '')[:70]}"
                              for c in study.candidates[-4:])  # fmt: skip
            tried = ("with --llm none there is no fresh model to ask for" if study.llm is None
                     else f"{self.config.fresh_tries} fresh models from the LLM failed too")  # fmt: skip
            raise StrategyStalled(
                f"fairnad: no starting model trained and {tried} ({fails}); check the starting models (open.initial), "
                "the dataset and the open.* limits"
            )
        self.fresh_left -= 1
        prompt = render("fairnad/fresh_open.j2", contract=self.contract, fb=self.feedback(study))
        code, text, how = ask_code(study, prompt, system=render("fairnad/system.j2"), temperature=self.config.temperature,
                                   max_tokens=self.config.max_tokens, seed=study.seed * 7919 + len(study.candidates),
                                   purpose="fairnad.fresh", check=lambda c: self._check(study, c),
                                   repairs=self.config.repairs, retries=self.config.retries, heal=self._heal)  # fmt: skip
        origin = {"op": "fresh", "source": "llm", **how}
        if code is None:
            return Proposal(text[:200] or "(empty answer)", origin=origin, invalid_reason="the answer contained no code")
        return Proposal(code, origin=origin)

    # -- the three mutation types -------------------------------------------------------------------
    def idea(self, study, parent, done, rank) -> Proposal:
        if self.llm is None:  # --llm none: an argument move of the strongest front model instead
            return self._argument_move(study, self._strongest(study, done, rank), {"op": "idea", "counterpart": "arguments"})
        idea = self.ideas.sample(self.rng)
        origin = {"op": "idea", "idea": idea.brief()}
        fb = self.feedback(study)

        def prompt_for(idea):
            return render("fairnad/idea_open.j2", contract=self.contract, parent=self.parent_view(parent, study),
                          idea=idea, fb=fb, form=self.config.code_answer)  # fmt: skip

        ideas = [idea]

        def another_idea(problem: str) -> str | None:
            """The model wrote an evaluated network back (mostly its parent: the idea is already in
            it), so the same prompt would get the same answer: ask with another fairly sampled idea."""
            if not (self.config.new_idea_on_duplicate and problem.startswith(DUPLICATE)):
                return None
            tried = {i.id for i in ideas}
            fresh = [i for i in (self.ideas.sample(self.rng) for _ in range(8)) if i.id not in tried]
            if not fresh:
                return None
            ideas.append(fresh[0])
            return prompt_for(fresh[0])

        p = self._code_answer(study, prompt_for(idea), parent, origin, afresh=another_idea)
        if len(ideas) > 1:  # the child is the last idea's; the ones its parent already had are kept beside it
            p.origin = {**p.origin, "idea": ideas[-1].brief(), "ideas_in_parent": [i.name for i in ideas[:-1]]}
        return p

    def pareto(self, study, done, rank, crowd) -> Proposal:
        return self.pareto_of(study, done[tournament(rank, crowd, self.rng)[0]], done, rank)

    def pareto_of(self, study, parent, done, rank) -> Proposal:
        """A small front model scaled up (inside the parameter budget), a large one with a knob tuned:
        through its build_model arguments where it has them, else through the LLM."""
        on_front = [c for c, r in zip(done, rank) if r == 0]
        costs = [c.metrics.get(study.problem.cost) or 0 for c in on_front]
        small = (parent.metrics.get(study.problem.cost) or 0) <= float(np.median(costs)) if costs else True
        action = "up" if small else "tune"
        origin = {"op": "pareto", "action": action}
        factor = 1.3
        params, budget = parent.metrics.get("params"), self.budget
        if action == "up" and params and budget:  # params grow about as width squared: stay inside the budget
            factor = min(1.3, (0.95 * budget / params) ** 0.5)
            if factor < 1.05:
                action, origin = "tune", {**origin, "action": "tune", "at_budget": True}
        scaled = scale(parent.genotype, action, self.rng, factor=max(factor, 1.05))
        if scaled is not None and study.seen(scaled[0]) is None:
            return Proposal(scaled[0], parents=[parent.trial], source="algorithm",
                            origin={**origin, "via": "arguments", "changes": scaled[1]})  # fmt: skip
        if self.llm is None:  # no model to rewrite it: another argument move of the same parent
            return self._argument_move(study, [parent], {"op": "pareto", "counterpart": "arguments"})
        prompt = render("fairnad/pareto_open.j2", contract=self.contract, parent=self.parent_view(parent, study),
                        action=action, fb=self.feedback(study), form=self.config.code_answer)  # fmt: skip
        return self._code_answer(study, prompt, parent, {**origin, "via": "llm"})

    def iterative(self, study, parent, done, rank) -> Proposal:
        if self.llm is None:  # --llm none: an argument move of the strongest front model instead
            return self._argument_move(study, self._strongest(study, done, rank),
                                       {"op": "iterative", "counterpart": "arguments"})  # fmt: skip
        fb = self.feedback(study)
        # the sandbox drives the turns: every answer is built and checked, no tool call needed
        turns = self.config.agent_turns
        idea, worked = self.refining_idea(self._ideas_of(study, parent))
        origin = {"op": "iterative", **({"idea": idea.brief(), "idea_worked": worked} if idea else {})}
        prompt = render("fairnad/iterate_open.j2", contract=self.contract, parent=self.parent_view(parent, study),
                        fb=fb, idea=idea, worked=worked, form=self.config.code_answer)  # fmt: skip
        return self._code_answer(study, prompt, parent, origin, repairs=min(1, turns - 1),
                                 retries=max(0, turns - 2))  # fmt: skip

    def on_failure(self, study, c) -> None:
        """A child over the parameter budget is shrunk and evaluated again (once more if still too big)."""
        budget = study.problem.max_params
        attempt = c.origin.get("attempt", 0) + 1
        if c.metrics.get("failure") == "budget" and attempt <= 2 and budget and c.metrics.get("params"):
            shrunk = shrink_to_budget(c.genotype, c.metrics["params"], budget)
            if shrunk is not None:
                self.core.queue.append(Proposal(shrunk[0], parents=[c.trial], source="algorithm", origin={
                    "op": "downscale", "changes": shrunk[1], "of": c.origin.get("of", c.origin.get("op", "?")),
                    "attempt": attempt}))  # fmt: skip

    @staticmethod
    def _strongest(study, done, rank) -> list:
        """The front's models, the strongest first."""
        return sorted((c for c, r in zip(done, rank) if r == 0), key=study.score, reverse=True)

    def _argument_move(self, study, parents, origin) -> Proposal:
        """Open spaces without an LLM (--llm none): a new model one move of a parent's build_model
        arguments away - width or depth up (inside the parameter budget) or down, or another knob
        (kernel size, expansion, dropout ...) tuned - the kinds in random order, a few draws each; the
        next of `parents` only when the first has no new move. The child's origin says which move
        (`action`, `changes`) and which LLM step it stands in for (`op`)."""
        for parent in parents:
            params, budget = parent.metrics.get("params"), self.budget
            for action in map(str, self.rng.permutation(["up", "down", "tune"])):
                factor = 1.3
                if action == "up" and params and budget:  # params grow about as width squared
                    factor = min(1.3, (0.95 * budget / params) ** 0.5)
                    if factor < 1.05:
                        continue
                for _ in range(3):  # a draw picks width or depth, or the knob and its value: another may be new
                    scaled = scale(parent.genotype, action, self.rng, factor=factor)
                    if scaled is None:
                        break
                    if study.seen(scaled[0]) is None:
                        return Proposal(scaled[0], parents=[parent.trial], source="algorithm", origin={
                            **origin, "action": action, "via": "arguments", "changes": scaled[1]})  # fmt: skip
        return Proposal(parents[0].genotype, parents=[parents[0].trial], source="algorithm",
                        origin={**origin, "via": "arguments"},
                        invalid_reason="no new model one argument move away (its build_model arguments)")  # fmt: skip

    def _code_answer(self, study, prompt: str, parent, origin, *, repairs: int | None = None,
                     retries: int | None = None, afresh=None) -> Proposal:
        """The LLM's child of `parent`, checked in the sandbox (see ask_code). Idea and iterative
        children keep the parent's build_model defaults, as their prompts ask; Pareto ones change them."""
        cfg = self.config
        code, text, how = ask_code(study, prompt, system=render("fairnad/system.j2"), temperature=cfg.temperature,
                                   max_tokens=cfg.max_tokens, seed=study.seed * 7919 + len(study.candidates),
                                   purpose=f"fairnad.{origin['op']}", parent=parent.genotype,
                                   check=lambda code: self._check(study, code),
                                   repairs=cfg.repairs if repairs is None else repairs,
                                   retries=cfg.retries if retries is None else retries, heal=self._heal,
                                   keep_defaults=origin["op"] != "pareto", afresh=afresh)  # fmt: skip
        origin = {**origin, "source": "llm", **how}  # the model's child, repaired or healed (see `how`) included
        if code is None:
            self.core.llm_misses += 1
            return Proposal(text[:200] or "(empty answer)", parents=[parent.trial], origin=origin,
                            invalid_reason=text if how.get("edit_error") else "the answer contained no code")  # fmt: skip
        self.core.llm_misses = 0
        return Proposal(code, parents=[parent.trial], origin=origin)

    @property
    def _heal(self):
        return infer_input_sizes if self.config.infer_sizes else None

    def _check(self, study, code: str) -> str | None:
        """What is wrong with an LLM-written child before it costs an evaluation (a stored probe), or None:
        a failed build or shape, or the same network as an evaluated model (its code differs only in
        form). Over the parameter budget is left to the deterministic downscale retry."""
        if study.seen(code) is not None:
            return f"{DUPLICATE[0]}; change it"
        r = study.probe("check", code)
        if r is None or r["category"] == "budget":
            return None
        if r["status"] == "complete":
            twin = next((c for c in study.candidates if c.ok and r.get("structure")
                         and c.metrics.get("structure") == r["structure"]), None)  # fmt: skip
            return None if twin is None else (f"{DUPLICATE[1]} the same network as trial {twin.trial} (same parameter "
                                              "shapes and outputs); change the network itself")  # fmt: skip
        return f"{r['category']}: {r['error']}" + (f"\n{r['traceback'][-800:]}" if r.get("traceback") else "")

    @staticmethod
    def _ideas_of(study, model) -> set[str]:
        """The ideas a model's line of descent was written with (its own, its parents', ...)."""
        by_trial = {c.trial: c for c in study.candidates}
        out: set[str] = set()
        todo, seen = [model], set()
        while todo:
            c = todo.pop()
            if c.trial in seen:
                continue
            seen.add(c.trial)
            if c.origin.get("idea"):
                out.add(c.origin["idea"]["id"])
            todo += [by_trial[t] for t in c.parents if t in by_trial]
        return out
