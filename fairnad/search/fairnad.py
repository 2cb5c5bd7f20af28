"""FairNAD (Yoshimura et al. 2026): multi-type mutation over a structured space of design ideas.

Each child comes from one of three mutation types (probabilities configurable, each can be
switched off for ablations):
  idea       fair idea sampling: a category uniformly, an idea uniformly inside it; the LLM applies
             the idea (with its description and source quotes) to an accurate recent model (a
             tournament on accuracy; `parent: nsga2` for NSGA-II's choice). Tables: the LLM chooses
             among `choices` fairly sampled ideas, each a one-option change of the parent shown with
             its cost and how models with the new and the old option did (`table_answer: write`:
             it writes the architecture; the 1.5B then changed 3-5 positions and lost accuracy).
  pareto     Pareto-aware: NSGA-II (pymoo) picks a parent on or near the front of accuracy vs cost;
             open spaces: small front models are scaled up, large ones get a hyperparameter tuned,
             through the model's own width/depth arguments where it has them, through the LLM where
             it does not; tables: the cheap half grows and the dear half shrinks by one option.
  iterative  the most accurate model on the front is refined with an idea that has worked (its
             children improved the front, else trained) and is not already in its line; open spaces: the sandbox drives the
             turns (each answer is built and checked, a failure goes back to the model once, then
             it is asked afresh) until the child passes and is new; tables: the LLM chooses among
             new one-option neighbours of that model, as for ideas (`table_answer: write`: an agent
             (qwen-agent) with a tool backed by the table; an answer that calls no tool is told to,
             while turns are left).
Every prompt carries fine-grained feedback: the parent's metrics and curve, the failure category,
error and site of recent failed children (not their failing line, which a model copies back),
per-idea statistics (tried / valid / improved the front) and the current front. An LLM-written
child that fails its check is asked afresh (`retries`); inferred input sizes heal a last answer
that still fails on a shape. A child over the parameter budget is shrunk and retried once. With
`--llm none` each LLM step is replaced by its deterministic counterpart: on tables as above; in open
spaces an idea or iterative child is an argument move of the strongest front model (width, depth or
another build_model knob), and a Pareto move the model could not make is another argument move. The per-idea and
per-mutation-type statistics are kept in the run store (meta `fairnad_stats`).
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from fairnad.prompts import render
from fairnad.search.agent import Tool, run_agent
from fairnad.search.base import Strategy, StrategyConfig
from fairnad.search.ideas import Idea, IdeaSpace
from fairnad.search.pareto import front, improves_front, objectives, rank_and_crowding, tournament
from fairnad.search.random_search import UnseenSampler
from fairnad.search.common import ask_code, ask_genotype, cost_text, problem_text, starting_models, view
from fairnad.space.candidate import Proposal
from fairnad.space.code import failure_site, infer_input_sizes, scale, shrink_to_budget

MUTATIONS = ("idea", "pareto", "iterative")
# how a child's check begins when the LLM wrote a network that was already evaluated
DUPLICATE = ("this network was already evaluated", "duplicate:")
# defaults by the kind of space: open runs as measured with the embedded model (docs/performance.md);
# tables chosen with --llm none over 30 seeds on the six tables
OPEN_PROBS, OPEN_TOURNAMENT = {"idea": 0.6, "pareto": 0.2, "iterative": 0.2}, 3
TABLE_PROBS, TABLE_TOURNAMENT = {"idea": 0.7, "pareto": 0.1, "iterative": 0.2}, 5


class FairNADConfig(StrategyConfig):
    probs: dict[str, float] | None = Field(
        None, description="chance of each mutation type; default: idea 0.6, pareto 0.2, iterative 0.2 in open spaces "
        "(Pareto moves there scale a model's arguments, often the best children), 0.7 / 0.1 / 0.2 on tables (a "
        "table's Pareto move fills the front's largest gap, so a tenth of the moves keeps the hypervolume above "
        "regularized evolution's; chosen with --llm none over 30 seeds, docs/performance.md)")
    disable: list[Literal["idea", "pareto", "iterative"]] = Field(default_factory=list, description="ablations")
    init_population: int = Field(10, ge=1, description="evaluated before any mutation (open spaces: at most the "
                                 "starting models there are)")
    parent: Literal["accuracy", "nsga2"] = Field(
        "accuracy", description="how a parent is chosen: the most accurate of `tournament` models drawn from the "
        "latest `population` within the parameter budget (serves best accuracy under a budget), or NSGA-II's binary "
        "tournament on rank and crowding (it picks the cheap end of the front as often as the accurate end)")
    population: int = Field(20, ge=2, description="parent = accuracy: the latest completed models a parent is drawn from")
    tournament: int | None = Field(None, ge=1, description="parent = accuracy: models drawn per tournament; default 3 "
                                   "in open spaces, 5 on tables (with gap moves, 5 matched or beat 3 on best accuracy "
                                   "on 5 of the 6 tables, 30 seeds)")
    cost: Literal["params", "flops"] = "params"
    pareto_move: Literal["gap", "halves"] = Field(
        "gap", description="tables: where a Pareto move goes: into the largest gap of the front (the front member "
        "beside it moves toward it; below the cheapest member counts), or the front's cheap half grows and its dear "
        "half shrinks")
    table_answer: Literal["choice", "write"] = Field(
        "choice", description="tables: what the LLM answers for an idea or iterative child: the number of one of "
        "`choices` one-option changes of the parent (idea: fairly sampled ideas; iterative: new neighbours of the "
        "strongest model), each shown with its cost and how the evaluated models with the new and the old option "
        "there did; or the whole architecture (idea) and an agent's tool calls (iterative)")
    choices: int = Field(5, ge=2, description="tables: one-option changes a choice is made among")
    evidence_prior: float = Field(4.0, ge=0, description="tables: an option's record counts this many models more, "
                                  "each at the mean of all evaluated models, so a record of one model says less than one of "
                                  "ten (0: raw means; 4 was best of 0/1/2/4/8/16 over held-out seeds 10-69, "
                                  "docs/performance.md)")
    stall: int = Field(20, ge=0, description="tables, table_rule evidence: after this many evaluations without a "
                       "more accurate model, idea and iterative children take the sampled changes in their fair order "
                       "(the first, or the LLM's pick of them unranked), not the best evidence, until one is found: "
                       "the evidence adds up options' records and cannot see two options that help only together "
                       "(0: never; 20 chosen of 10/20/30 over held-out seeds 10-69, docs/performance.md)")
    table_rule: Literal["evidence", "sampled"] = Field(
        "evidence", description="tables: how the algorithm chooses a one-option change: the one whose new option's "
        "evaluated models beat the old option's by the most, of `choices` fairly sampled ones (the order the LLM "
        "sees them in; what --llm none and an unusable answer take), or the one fairly sampled idea as it is "
        "(the paper's rule; --llm none then changes nothing else)")
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int = Field(1500, ge=64, description="per code answer (tabular answers use 200)")
    code_answer: Literal["definitions", "edits", "file"] = Field(
        "file", description="what a code child's prompt asks for: the changed classes and functions "
        "(merged into the parent by name), SEARCH/REPLACE edits, or the whole file; every form is accepted")
    agent_turns: int = Field(3, ge=1, description="iterative: answers the model gives for one child (open spaces: "
                             "its first failed check is shown to it to fix, later ones are asked afresh; tables: "
                             "turns of the tool-calling agent)")
    fresh_tries: int = Field(3, ge=0, description="open spaces: when every starting model fails, fresh models asked "
                             "of the LLM before the run stops")
    retries: int = Field(2, ge=0, description="open spaces: an LLM-written child that fails its build/shape check (a "
                         "probe) or repeats an evaluated model is asked afresh (same prompt, new seed) this many times "
                         "before it is evaluated")
    repairs: int = Field(0, ge=0, description="open spaces: before the fresh answers, the failing child goes back to "
                         "the model with its error this many times (Qwen2.5-Coder-1.5B fixed 0 of about 20 this way)")
    new_idea_on_duplicate: bool = Field(True, description="open spaces: an idea child the model wrote as an "
                                        "evaluated network (mostly its parent written back: the parent already has the "
                                        "idea) is asked afresh with another fairly sampled idea, not the same prompt; "
                                        "recorded as `ideas_in_parent` in its origin")
    infer_sizes: bool = Field(True, description="open spaces: an LLM-written child whose last answer still fails "
                              "on a shape gets its layers' input sizes from the data (nn.LazyLinear, ...); recorded "
                              "as `inferred_sizes` in its origin")
    failures_in_prompt: int = Field(3, ge=0)
    front_in_prompt: int = Field(5, ge=0)
    ideas_in_prompt: int = Field(8, ge=0)
    batch: int = Field(1, ge=1, description="children per step (evaluated in parallel)")
    include_over_specific: bool = False

    @field_validator("probs")
    @classmethod
    def _probs(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        unknown = set(v) - set(MUTATIONS)
        if unknown:
            raise ValueError(f"unknown mutation types {sorted(unknown)}; use {', '.join(MUTATIONS)}")
        if any(p < 0 for p in v.values()) or sum(v.values()) <= 0:
            raise ValueError("probabilities must be >= 0 and not all 0")
        return v


def _stat() -> dict[str, int]:
    return {"tried": 0, "valid": 0, "improved": 0}


class FairNAD(Strategy):
    name = "fairnad"
    Config = FairNADConfig
    uses_llm = True
    runs_without_llm = ("tabular", "open")
    spaces = ("tabular", "open")

    def __init__(self, config: FairNADConfig) -> None:
        super().__init__(config)
        self._choose_ops(open_space=True)  # refuses a config with every type off before any run starts
        self.tournament = config.tournament or OPEN_TOURNAMENT  # set again for the space's kind in _setup
        self.idea_stats: dict[str, dict[str, Any]] = {}
        self.type_stats: dict[str, dict[str, int]] = {}
        self.failures: deque = deque(maxlen=max(1, config.failures_in_prompt))
        self.queue: deque = deque()  # children waiting (budget retries)
        self.llm_misses = 0
        self.fresh_left = config.fresh_tries
        self._ready = False

    # -- setup ------------------------------------------------------------------------------------
    def _choose_ops(self, open_space: bool) -> None:
        """The mutation types in use and their chances (`probs`, else the default of the space's kind)."""
        probs = self.config.probs or (OPEN_PROBS if open_space else TABLE_PROBS)
        enabled = {k: v for k, v in probs.items() if k not in self.config.disable and v > 0}
        if not enabled:
            from fairnad.errors import ConfigError

            raise ConfigError("strategies.fairnad: every mutation type is switched off; keep at least one")
        total = sum(enabled.values())
        self.ops = sorted(enabled)
        self.op_p = np.array([enabled[k] / total for k in self.ops])

    def _setup(self, study) -> None:
        self._ready = True
        self.rng = study.rng(5)
        problem = study.problem
        self.open = problem.is_open
        self._choose_ops(self.open)
        self.tournament = self.config.tournament or (OPEN_TOURNAMENT if self.open else TABLE_TOURNAMENT)
        self.budget = problem.max_params
        if self.open:
            tree = problem.ideas
            self.ideas = IdeaSpace.from_tree(tree, self.config.include_over_specific) if tree is not None else IdeaSpace({})
            self.contract = problem.contract
        else:
            self.ideas = IdeaSpace.from_tabular(study.space)
            self.idea_at = {(i.position, i.option): i for i in self.ideas.by_id.values()}
            self.sampler = UnseenSampler(study)
            self.option_cost = problem.option_costs
            self.problem = problem_text(study, answer=self.config.table_answer == "write")
        self.init = deque(starting_models(study, self.config.init_population, self.rng,
                                          None if self.open else self.sampler))  # fmt: skip
        self.init_left = self.config.init_population

    # -- ask --------------------------------------------------------------------------------------
    def ask(self, study) -> list[Proposal]:
        if not self._ready:
            self._setup(study)
        out = []
        for _ in range(self.config.batch):
            mark = study.llm_mark()
            p = self._one(study, pending=out)
            if p is None:
                break
            calls = study.llm_calls_since(mark)
            if calls:  # the calls that made this child, not its batch-mates
                p.origin = {**p.origin, "llm_calls": calls}
            out.append(p)
        return out

    def _one(self, study, pending) -> Proposal | None:
        if self.queue:
            return self.queue.popleft()
        done = study.completed()
        if self.init_left > 0:
            self.init_left -= 1
            if self.init:
                return self.init.popleft()
        if not done:  # nothing to mutate yet
            if self.open:
                return None if pending else self._no_parent(study)
            g = self.sampler.draw(study)
            return Proposal(g, origin={"op": "init"}, source="init") if g is not None else None
        op = self.ops[int(self.rng.choice(len(self.ops), p=self.op_p))]
        if self.llm_misses >= 3 and "pareto" in self.ops:
            op, self.llm_misses = "pareto", 0  # the LLM keeps failing: take a step that needs none
        rank, crowd = rank_and_crowding(objectives(done, self.config.cost, study.problem.primary), self.rng)
        if op == "pareto" and not self.open and self.config.pareto_move == "gap":
            parent, action = self._front_gap(study, done, rank)
            return self._pareto_tabular(study, parent, action, {"op": "pareto", "action": action, "to": "gap"})
        if op == "pareto":  # Pareto-aware: a parent on or near the front, by NSGA-II's tournament
            return self._pareto(study, done[tournament(rank, crowd, self.rng)[0]], done, rank)
        if self.open and study.llm is None:  # --llm none: an idea or iterative child is an argument move instead
            strong = sorted((c for c, r in zip(done, rank) if r == 0), key=study.score, reverse=True)
            return self._argument_move(study, strong, {"op": op, "counterpart": "arguments"})
        parent = self._parent(study, done, rank, crowd)
        if op == "idea" and len(self.ideas):
            return self._idea(study, parent)
        if op == "iterative":
            strong = [c for c, r in zip(done, rank) if r == 0]
            return self._iterative(study, max(strong, key=study.score))
        return self._pareto(study, parent, done, rank)

    def _parent(self, study, done, rank, crowd):
        """The model the next child is made from (config `parent`)."""
        if self.config.parent == "nsga2":
            return done[tournament(rank, crowd, self.rng)[0]]
        pool = done[-self.config.population :]
        if self.budget:  # over the budget only when nothing else is there
            pool = [c for c in pool if (c.metrics.get("params") or 0) <= self.budget] or pool
        picks = self.rng.choice(len(pool), size=min(self.tournament, len(pool)), replace=False)
        return max((pool[int(i)] for i in picks), key=lambda c: (study.score(c), -(c.metrics.get(self.config.cost) or 0)))

    def _no_parent(self, study) -> Proposal | None:
        """Every starting model failed: ask the LLM for a fresh model from the contract, with their
        failures as feedback, `fresh_tries` times; then stop, naming the failures."""
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
        prompt = render("fairnad/fresh_open.j2", contract=self.contract, fb=self._feedback(study))
        code, text, how = ask_code(study, prompt, system=render("fairnad/system.j2"), temperature=self.config.temperature,
                                   max_tokens=self.config.max_tokens, seed=study.seed * 7919 + len(study.candidates),
                                   purpose="fairnad.fresh", check=lambda c: self._check(study, c),
                                   repairs=self.config.repairs, retries=self.config.retries, heal=self._heal)  # fmt: skip
        origin = {"op": "fresh", "source": "llm", **how}
        if code is None:
            return Proposal(text[:200] or "(empty answer)", origin=origin, invalid_reason="the answer contained no code")
        return Proposal(code, origin=origin)

    # -- the three mutation types -------------------------------------------------------------------
    def _idea(self, study, parent) -> Proposal:
        idea = self.ideas.sample(self.rng)
        origin = {"op": "idea", "idea": idea.brief()}
        choosing = not self.open and self._choosing(study)
        if choosing and (moves := self._idea_moves(study, parent, first=idea)):
            return self._chosen(study, parent, moves, {"op": "idea"})
        if study.llm is None or choosing:  # the idea set into the parent, nothing else changed
            return self._idea_applied(study, parent, {**origin, "source": "algorithm"}, idea)
        fb = self._feedback(study)
        if self.open:
            def prompt_for(idea):
                return render("fairnad/idea_open.j2", contract=self.contract, parent=self._parent_view(parent, study),
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
        prompt = render("fairnad/idea_tabular.j2", problem=self.problem, parent=self._parent_view(parent, study),
                        idea=idea, fb=fb, metric=study.problem.primary.text)  # fmt: skip
        return self._tabular_answer(study, prompt, parent, origin, idea)

    def _pareto(self, study, parent, done, rank) -> Proposal:
        on_front = [c for c, r in zip(done, rank) if r == 0]
        costs = [c.metrics.get(self.config.cost) or 0 for c in on_front]
        small = (parent.metrics.get(self.config.cost) or 0) <= float(np.median(costs)) if costs else True
        if not self.open:  # a table: the front's cheap half grows, its dear half shrinks, one option at a time
            return self._pareto_tabular(study, parent, "up" if small else "down", {"op": "pareto",
                                        "action": "up" if small else "down"})  # fmt: skip
        action = "up" if small else "tune"
        origin = {"op": "pareto", "action": action}
        if self.open:
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
            if study.llm is None:  # no model to rewrite it: another argument move of the same parent
                return self._argument_move(study, [parent], {"op": "pareto", "counterpart": "arguments"})
            prompt = render("fairnad/pareto_open.j2", contract=self.contract, parent=self._parent_view(parent, study),
                            action=action, fb=self._feedback(study), form=self.config.code_answer)  # fmt: skip
            return self._code_answer(study, prompt, parent, {**origin, "via": "llm"})
        return self._pareto_tabular(study, parent, action, origin)

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

    def _front_gap(self, study, done, rank) -> tuple[Any, str]:
        """The front member beside the front's largest gap, and the way that fills it: the area a model
        halfway across a gap would add to the hypervolume (cost and accuracy scaled to what has been
        seen), with the stretch below the cheapest member as a gap too."""
        cost = self.config.cost
        members = sorted((c for c, r in zip(done, rank) if r == 0), key=lambda c: c.metrics.get(cost) or 0)
        costs = np.array([c.metrics.get(cost) or 0 for c in done], dtype=float)
        accs = np.array([study.score(c) for c in done], dtype=float)
        span_c, span_a = max(np.ptp(costs), 1e-12), max(np.ptp(accs), 1e-12)
        # cost from zero, so the stretch below the cheapest member stays a gap; accuracy from the worst seen
        pts = [((m.metrics.get(cost) or 0) / span_c, (study.score(m) - accs.min()) / span_a) for m in members]
        gaps = [(pts[0][0] * pts[0][1] / 4, members[0], "down")]
        for (a, pa), (b, pb) in zip(zip(members, pts), zip(members[1:], pts[1:])):
            area = (pb[0] - pa[0]) * (pb[1] - pa[1]) / 4
            gaps += [(area, a, "up"), (area, b, "down")]
        best = max(g[0] for g in gaps)
        ties = [g for g in gaps if g[0] >= best - 1e-12]
        _, member, action = ties[int(self.rng.integers(len(ties)))]
        return member, action

    def _pareto_tabular(self, study, parent, action, origin) -> Proposal:
        """A new model one option away from `parent` whose cost goes `action` ("up" or "down"), drawn
        uniformly among those (a move to the nearest cost recycled near-copies of the parent: NB201's
        free operations none / skip / pooling cost the same and differ most in accuracy)."""
        space = study.space
        idx = list(space.parse(parent.genotype))
        cost = self.option_cost
        moves, others = [], []
        for d, opts in enumerate(space.options):
            here = cost[d][idx[d]] if cost else idx[d]
            for j in range(len(opts)):
                if j == idx[d]:
                    continue
                c = cost[d][j] if cost else j
                child = space.format(idx[:d] + [j] + idx[d + 1 :])
                if study.seen(child) is None and study.in_domain(child):
                    ((moves if (c > here if action == "up" else c < here) else others)).append((d, child))
        origin = {**origin, "source": "algorithm"}  # a move through the table's options, no LLM answer in it
        for pool, how in ((moves, {}), (others, {"direction": "any"})):
            if pool:
                d, child = pool[int(self.rng.integers(len(pool)))]
                return Proposal(child, parents=[parent.trial], origin={**origin, **how, "position": space.dims[d].name})
        g = self.sampler.draw(study)
        if g is None:
            return Proposal(parent.genotype, origin=origin, invalid_reason="space exhausted")
        return Proposal(g, origin={**origin, "fallback": "random"})

    def _iterative(self, study, parent) -> Proposal:
        if not self.open and (study.llm is None or self._choosing(study)):  # a new one-option neighbour of it
            alts = [g for g in study.space.neighbours(parent.genotype) if study.seen(g) is None and study.in_domain(g)]
            if alts and self._choosing(study):
                picks = self.rng.permutation(len(alts))[: self.config.choices]
                return self._chosen(study, parent, [self._move(study, parent.genotype, alts[int(i)]) for i in picks],
                                    {"op": "iterative"})  # fmt: skip
            g = alts[int(self.rng.integers(len(alts)))] if alts else self.sampler.draw(study)
            if g is None:
                return Proposal(parent.genotype, origin={"op": "iterative", "source": "algorithm"},
                                invalid_reason="space exhausted")  # fmt: skip
            return Proposal(g, parents=[parent.trial] if alts else [], source="algorithm",
                            origin={"op": "iterative", **({} if alts else {"fallback": "random"})})  # fmt: skip
        fb = self._feedback(study)
        if self.open:  # the sandbox drives the turns: every answer is built and checked, no tool call needed
            turns = self.config.agent_turns
            idea, worked = self._refining_idea(self._ideas_of(study, parent))
            origin = {"op": "iterative", **({"idea": idea.brief(), "idea_worked": worked} if idea else {})}
            prompt = render("fairnad/iterate_open.j2", contract=self.contract, parent=self._parent_view(parent, study),
                            fb=fb, idea=idea, worked=worked, form=self.config.code_answer)  # fmt: skip
            return self._code_answer(study, prompt, parent, origin, repairs=min(1, turns - 1),
                                     retries=max(0, turns - 2))  # fmt: skip
        # tables: a tool-calling agent (qwen-agent) whose tool looks an architecture up in the table
        origin: dict[str, Any] = {"op": "iterative", "source": "llm"}
        space, state = study.space, {"passed": None}

        def check_architecture(args):
            try:
                g = space.from_labels(args.get("architecture"))
            except ValueError as err:
                return f"INVALID: {err}"
            row = study.problem.cost_of(g) if study.problem.cost_of else None
            if study.seen(g) is not None:
                return f"valid, {row}, ALREADY EVALUATED: try another"
            if not study.in_domain(g):
                return "INVALID: not in the benchmark's table"
            state["passed"] = g
            return f"valid, {row}, NEW"

        arch_arg = {"type": "object", "properties": {"architecture": {"type": "array", "items": {},
                    "description": f"{space.ndim} option labels"}}, "required": ["architecture"]}  # fmt: skip
        tools = [Tool("check_architecture", "Is this architecture valid, what does it cost, was it evaluated?",
                      arch_arg, check_architecture)]  # fmt: skip
        task = render("fairnad/agent_tabular.j2", problem=self.problem, parent=self._parent_view(parent, study),
                      fb=fb, metric=study.problem.primary.text, n=space.ndim)  # fmt: skip
        run = run_agent(study.llm, system=render("fairnad/system.j2"), task=task, tools=tools,
                        max_turns=self.config.agent_turns, temperature=self.config.temperature, max_tokens=300,
                        seed=study.seed * 7919 + len(study.candidates), done=lambda: state["passed"] is not None,
                        nudge=render("fairnad/agent_nudge.j2", n=space.ndim))  # fmt: skip
        origin.update(turns=run.turns, tool_calls=len(run.tool_calls), agent_error=run.error)
        if state["passed"] is not None:
            self.llm_misses = 0
            return Proposal(state["passed"], parents=[parent.trial], origin=origin)
        self.llm_misses += 1
        return Proposal(run.final_text[:200] or "(no answer)", parents=[parent.trial], origin=origin,
                        invalid_reason=f"the agent produced no new valid model in {run.turns} turns"
                                       + (f" ({run.error})" if run.error else ""))  # fmt: skip

    def _refining_idea(self, used: set[str] = frozenset()) -> tuple[Idea | None, bool]:
        """What an iterative refinement builds on (the paper's agent refines high-performing ideas):
        an idea whose children improved the front, drawn uniformly; else a fairly sampled one. A bare
        "refine it" makes a small model copy the model. A child that merely trained is not an idea
        that worked: with that rule, 5 of one run's 7 iterative children (seed 0) refined with such
        an idea, 4 with squeeze-and-excitation after its one child trained to 56%; 2 of the 5 trained.
        Ideas in `used` (the parent's own line) are passed over: asked to add resolution scaling to the
        model it made, the 1.5B model wrote that model back (seed 2: 4 of 8 iterative children).
        Returns (idea, whether it has worked)."""
        ids = sorted(i for i, s in self.idea_stats.items() if s["improved"] and i in self.ideas.by_id and i not in used)
        if ids:
            return self.ideas.by_id[ids[int(self.rng.integers(len(ids)))]], True
        if not len(self.ideas):
            return None, False
        for _ in range(20):  # a fair draw, again while it lands on the parent's own ideas
            idea = self.ideas.sample(self.rng)
            if idea.id not in used:
                break
        return idea, False

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

    # -- tables: the LLM chooses among one-option changes ---------------------------------------------
    def _move(self, study, parent: str, child: str) -> tuple[int, int, str]:
        """(position, new option, child) of a one-option change `parent` -> `child`."""
        a, b = study.space.parse(parent), study.space.parse(child)
        d = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        return d, b[d], child

    def _idea_moves(self, study, parent, first: Idea) -> list[tuple[int, int, str]]:
        """Up to `choices` one-option changes of `parent`, each a fairly sampled idea (`first` leads)
        whose child is new and in the table."""
        idx = list(study.space.parse(parent.genotype))
        moves, tried = [], set()
        for n in range(30 * self.config.choices):
            idea = first if n == 0 else self.ideas.sample(self.rng)
            if idea.id in tried or idx[idea.position] == idea.option:
                continue
            tried.add(idea.id)
            child = study.space.format(idx[: idea.position] + [idea.option] + idx[idea.position + 1 :])
            if study.seen(child) is None and study.in_domain(child):
                moves.append((idea.position, idea.option, child))
                if len(moves) == self.config.choices:
                    break
        return moves

    def _move_view(self, study, here, move, done, done_idx, overall: float) -> dict[str, Any]:
        """A change as the choice prompt shows it: what it sets, the child's cost, and how the evaluated
        models with the new and with the old option at that position did. Its `evidence`: the new
        option's mean accuracy minus the old one's (the mean of all models stands in for an option no
        model has yet): a one-option change inherits its option's record. `here`: the parent's options."""
        space, (d, j, child) = study.space, move
        old = here[d]

        def label(k):
            return str(space.options[d][k].label)  # the problem text lists what each label is

        def record(k):
            accs = [c.metrics["accuracy"] for c, idx in zip(done, done_idx) if idx[d] == k]
            return len(accs), (float(np.mean(accs)) if accs else None)

        def shrunk(n, mean):
            prior = self.config.evidence_prior
            return overall if mean is None else (n * mean + prior * overall) / (n + prior)

        (n_new, mean_new), (n_old, mean_old) = record(j), record(old)
        cost = study.problem.cost_of(child) if study.problem.cost_of else "unknown cost"
        evidence = study.problem.primary.score(shrunk(n_new, mean_new) - shrunk(n_old, mean_old))
        return {"child": child, "position": space.dims[d].name, "new": label(j), "old": label(old), "cost": cost, "n_new": n_new,
                "mean_new": mean_new, "n_old": n_old, "mean_old": mean_old, "evidence": evidence}  # fmt: skip

    def _choosing(self, study) -> bool:
        """Whether a table's idea or iterative child is chosen among one-option changes: by the LLM
        (table_answer: choice) or, without one, by the evidence (table_rule: evidence)."""
        if study.llm is None:
            return self.config.table_rule == "evidence"
        return self.config.table_answer == "choice"

    def _chosen(self, study, parent, moves, origin) -> Proposal:
        """One of `moves`: listed best evidence first (table_rule: evidence; else as sampled), the LLM
        answers the number of one (a constrained answer); without an LLM, or when its answer is
        unusable, the first is taken. The child carries the idea its change sets (idea statistics)."""
        done = study.completed()
        overall = float(np.mean([c.metrics["accuracy"] for c in done]))
        done_idx = [study.space.parse(c.genotype) for c in done]
        here = study.space.parse(parent.genotype)
        views = [self._move_view(study, here, m, done, done_idx, overall) for m in moves]
        order = list(range(len(moves)))
        ranked = self.config.table_rule == "evidence" and not self._stalled(study, done)
        if ranked:  # stable: ties keep the fair sampling's order
            order.sort(key=lambda i: -views[i]["evidence"])
        origin = {**origin, "of": len(moves), "rule": self.config.table_rule if ranked else "sampled"}
        k, source = 1, "algorithm"
        if study.llm is not None:
            k, source, origin = self._llm_choice(study, parent, [views[i] for i in order], done, overall, origin,
                                                 ranked)  # fmt: skip
        d, j, child = moves[order[k - 1]]
        return Proposal(child, parents=[parent.trial], source=source,
                        origin={**origin, "idea": self.idea_at[(d, j)].brief(), "choice": k})  # fmt: skip

    def _stalled(self, study, done) -> bool:
        """No more accurate model in the latest `stall` evaluations (config `stall`)."""
        if not self.config.stall or len(done) <= self.config.stall:
            return False
        best = max(range(len(done)), key=lambda i: (study.score(done[i]), -i))
        return len(done) - 1 - best >= self.config.stall

    def _llm_choice(self, study, parent, views, done, overall, origin, ranked: bool) -> tuple[int, str, dict]:
        """(the number the LLM answers, "llm"), or (1, "fallback") when its answer is unusable."""
        from fairnad.llm import LLMOutputError

        prompt = render("fairnad/choose_tabular.j2", problem=self.problem, parent=self._parent_view(parent, study),
                        fb=self._feedback(study, ideas=False), metric=study.problem.primary.text, n_done=len(done),
                        overall=overall, moves=views, ranked=ranked)  # fmt: skip
        schema = {"type": "object", "properties": {"rationale": {"type": "string", "maxLength": 160},
                  "choice": {"enum": list(range(1, len(views) + 1))}},
                  "required": ["rationale", "choice"], "additionalProperties": False}  # fmt: skip
        msgs = [{"role": "system", "content": render("fairnad/system.j2")}, {"role": "user", "content": prompt}]
        try:
            out = study.llm.complete(msgs, temperature=self.config.temperature, schema=schema, max_tokens=120,
                                     seed=study.seed * 7919 + len(study.candidates),
                                     purpose=f"fairnad.{origin['op']}")  # fmt: skip
            k = int((out.parsed or {}).get("choice"))
            if not 1 <= k <= len(views):
                raise ValueError(k)
            return k, "llm", origin
        except (LLMOutputError, TypeError, ValueError):
            return 1, "fallback", {**origin, "llm_answer": "unusable"}

    # -- answers ----------------------------------------------------------------------------------
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
            self.llm_misses += 1
            return Proposal(text[:200] or "(empty answer)", parents=[parent.trial], origin=origin,
                            invalid_reason=text if how.get("edit_error") else "the answer contained no code")  # fmt: skip
        self.llm_misses = 0
        return Proposal(code, parents=[parent.trial], origin=origin)

    def _idea_applied(self, study, parent, origin, idea: Idea) -> Proposal:
        """The parent with the idea's option set at its position; when that model was evaluated already
        (or is not in the table), a new neighbour of it that keeps the idea."""
        idx = list(study.space.parse(parent.genotype))
        idx[idea.position] = idea.option
        child = study.space.format(idx)
        if study.seen(child) is not None or not study.in_domain(child):
            alt = self._neighbour_with(study, child, idea)
            if alt is not None:
                child, origin = alt, {**origin, "neighbour": True}
        return Proposal(child, parents=[parent.trial], origin=origin)

    def _neighbour_with(self, study, genotype: str, idea: Idea) -> str | None:
        """A new one-option neighbour of `genotype` in the table that keeps the idea, drawn uniformly."""
        space = study.space
        alts = [g for g in space.neighbours(genotype) if study.seen(g) is None and study.in_domain(g)
                and space.parse(g)[idea.position] == idea.option]  # fmt: skip
        return alts[int(self.rng.integers(len(alts)))] if alts else None

    def _tabular_answer(self, study, prompt: str, parent, origin, idea: Idea) -> Proposal:
        """The model's child, or a fallback made without it when its answer was unusable, lacked the
        idea (the idea is set into it) or repeated an evaluated model (a new neighbour with the idea)."""
        space = study.space
        try:
            idx = list(space.parse(ask_genotype(study, prompt, system=render("genius/system.j2"),
                                                temperature=self.config.temperature,
                                                seed=study.seed * 7919 + len(study.candidates), purpose="fairnad.idea")))
        except ValueError:
            idx, origin = list(space.parse(parent.genotype)), {**origin, "llm_answer": "unusable"}
        if idx[idea.position] != idea.option:  # the idea must be in the child
            idx[idea.position] = idea.option
            origin = {**origin, "idea_enforced": True}
        child = space.format(idx)
        if study.seen(child) is not None or not study.in_domain(child):
            self.llm_misses += 1
            alt = self._neighbour_with(study, child, idea)
            if alt is not None:
                child, origin = alt, {**origin, "fallback": "neighbour"}
        else:
            self.llm_misses = 0
        replaced = any(k in origin for k in ("llm_answer", "idea_enforced", "fallback"))
        return Proposal(child, parents=[parent.trial], origin=origin, source="fallback" if replaced else "llm")

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

    # -- tell -------------------------------------------------------------------------------------
    def tell(self, study, results) -> None:
        for c in results:
            if not c.counted:
                continue
            before = [x for x in study.completed() if x.trial < c.trial]
            improved = improves_front(c, before, self.config.cost, study.problem.primary)
            op = c.origin.get("op", "?")
            for bucket in (self.type_stats.setdefault(op, _stat()),) + (
                (self.idea_stats.setdefault(c.origin["idea"]["id"], {**_stat(), "name": c.origin["idea"]["name"]}),)
                if c.origin.get("idea") else ()
            ):  # fmt: skip
                bucket["tried"] += 1
                bucket["valid"] += int(c.ok)
                bucket["improved"] += int(improved)
            if not c.ok:
                self.failures.append({
                    "op": op, "idea": (c.origin.get("idea") or {}).get("name"), "category": c.metrics.get("failure", "failed"),
                    "error": (c.error or "")[:300], "where": failure_site(c.metrics.get("traceback") or ""),
                })  # fmt: skip  (the error and where, not the failing line: see failure_site)
                budget = study.problem.max_params
                attempt = c.origin.get("attempt", 0) + 1
                if (self.open and c.metrics.get("failure") == "budget" and attempt <= 2 and budget
                        and c.metrics.get("params")):  # fmt: skip  (shrink, and once more if still too big)
                    shrunk = shrink_to_budget(c.genotype, c.metrics["params"], budget)
                    if shrunk is not None:
                        self.queue.append(Proposal(shrunk[0], parents=[c.trial], source="algorithm", origin={
                            "op": "downscale", "changes": shrunk[1], "of": c.origin.get("of", op), "attempt": attempt}))
        if results:
            study.store.set_meta(fairnad_stats={"mutations": self.type_stats, "ideas": self.idea_stats})

    # -- prompt material ----------------------------------------------------------------------------
    def _parent_view(self, parent, study) -> dict[str, Any]:
        return view(study, parent)

    def _feedback(self, study, ideas: bool = True) -> dict[str, Any]:
        cfg = self.config
        fr = (front(study.completed(), cfg.cost, self.rng, study.problem.primary)[-cfg.front_in_prompt :]
              if cfg.front_in_prompt else [])  # fmt: skip
        rows = []
        for c in fr:
            summary = study.space.describe(c.genotype) if self.open else json.dumps(study.space.labels(c.genotype))
            rows.append({"summary": summary or f"trial {c.trial}", "accuracy": c.metrics["accuracy"],
                         "cost_text": cost_text(c.metrics)})  # fmt: skip
        top = sorted(self.idea_stats.values(), key=lambda s: (-s["tried"], s["name"]))[: cfg.ideas_in_prompt] if ideas else []
        return {"front": rows, "failures": list(self.failures), "ideas": top, "cost": cfg.cost}
