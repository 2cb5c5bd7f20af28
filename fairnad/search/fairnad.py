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

from collections import deque
from typing import Any

import numpy as np

from fairnad.search.base import Strategy
from fairnad.search.credit import Credit
from fairnad.search.fairnad_base import (  # noqa: F401  (the settings and defaults, named from here too)
    DUPLICATE, MUTATIONS, OPEN_PROBS, OPEN_TOURNAMENT, TABLE_PROBS, TABLE_TOURNAMENT, FairNADConfig, Steps, stat,
)
from fairnad.search.fairnad_open import OpenSteps
from fairnad.search.fairnad_tabular import TableSteps
from fairnad.search.pareto import objectives, rank_and_crowding, tournament
from fairnad.space.candidate import Proposal
from fairnad.space.code import failure_site


class FairNAD(Strategy):
    """The strategy: chooses each child's mutation type and parent, keeps the per-type and per-idea
    statistics (run store meta `fairnad_stats`) and the failures the prompts show; the moves are the
    space's (`steps`: OpenSteps or TableSteps)."""

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
        self.steps: Steps | None = None

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
        self.rng = study.rng(5)
        problem = study.problem
        self._choose_ops(problem.is_open)
        self.tournament = self.config.tournament or (OPEN_TOURNAMENT if problem.is_open else TABLE_TOURNAMENT)
        self.budget = problem.max_params
        self.steps = OpenSteps(self, study) if problem.is_open else TableSteps(self, study)
        self.init = deque(self.steps.start(study))
        self.init_left = self.config.init_population
        # adaptive where there is a choice between the LLM and the algorithm: with --llm none, the types keep
        # their fixed chances (adapting among them alone gave 0.02-0.2 points lower best accuracy on the six
        # tables, 10 seeds, 50 and 100 evaluations, for a higher hypervolume: docs/performance.md)
        self.credit = self._credit(study) if self.config.adaptive and study.llm is not None else None
        self.chances: list[dict[str, Any]] = []  # how the credit moved the chances, after each child told

    def _credit(self, study) -> Credit:
        """The arms: each mutation type in use, an LLM step split between the LLM and its deterministic
        counterpart (`algorithm_share`). A Pareto move is the algorithm's (in open spaces it asks the LLM
        only for a model whose arguments cannot scale)."""
        share = self.config.algorithm_share
        base: dict[tuple[str, str], float] = {}
        for op, p in zip(self.ops, self.op_p):
            if op == "pareto":
                base[(op, "algorithm")] = float(p)
            else:
                base[(op, "llm")] = float(p) * (1 - share)
                base[(op, "algorithm")] = float(p) * share
        return Credit(base, floor=self.config.credit_floor, prior=self.config.credit_prior)

    # -- ask --------------------------------------------------------------------------------------
    def ask(self, study) -> list[Proposal]:
        if self.steps is None:
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
            return self.steps.no_parent(study, pending)
        arm = None
        if self.credit is not None:  # adaptive: the arm (type and source) its credit draws
            arm, chance = self.credit.draw(self.rng)
            op = arm.op
        else:  # the paper's fixed chances; every LLM step is the LLM's
            op = self.ops[int(self.rng.choice(len(self.ops), p=self.op_p))]
        if self.llm_misses >= 3 and "pareto" in self.ops:
            op, self.llm_misses = "pareto", 0  # the LLM keeps failing: take a step that needs none
            arm = next((a for a in self.credit.arms if a.op == "pareto"), None) if arm is not None else None
            chance = None
        by_llm = arm is None or arm.source == "llm" or op == "pareto"
        self.steps.llm = study.llm if by_llm else None
        p = self._child(study, done, op)
        if arm is not None:
            p.origin = {**p.origin, "arm": arm.name, **({"chance": round(chance, 4)} if chance is not None else {})}
        return p

    def _child(self, study, done, op: str) -> Proposal:
        rank, crowd = rank_and_crowding(objectives(done, study.problem.cost, study.problem.primary), self.rng)
        if op == "pareto":  # Pareto-aware: a parent on or near the front (a table's: beside its largest gap)
            return self.steps.pareto(study, done, rank, crowd)
        parent = self._parent(study, done, rank, crowd)  # (drawn for every type: recorded runs replay this stream)
        if op == "idea" and len(self.ideas):
            return self.steps.idea(study, parent, done, rank)
        if op == "iterative":
            strong = [c for c, r in zip(done, rank) if r == 0]
            return self.steps.iterative(study, max(strong, key=study.score), done, rank)
        return self.steps.pareto_of(study, parent, done, rank)

    def _parent(self, study, done, rank, crowd):
        """The model the next child is made from (config `parent`)."""
        if self.config.parent == "nsga2":
            return done[tournament(rank, crowd, self.rng)[0]]
        pool = done[-self.config.population :]
        if self.budget:  # over the budget only when nothing else is there
            pool = [c for c in pool if (c.metrics.get("params") or 0) <= self.budget] or pool
        picks = self.rng.choice(len(pool), size=min(self.tournament, len(pool)), replace=False)
        return max((pool[int(i)] for i in picks), key=lambda c: (study.score(c), -(c.metrics.get(study.problem.cost) or 0)))

    # -- tell -------------------------------------------------------------------------------------
    def tell(self, study, results) -> None:
        for c in results:
            if not c.counted:
                continue
            improved = bool(c.improved_front)  # the Study's verdict, stored with the child
            op = c.origin.get("op", "?")
            for bucket in (self.type_stats.setdefault(op, stat()),) + (
                (self.idea_stats.setdefault(c.origin["idea"]["id"], {**stat(), "name": c.origin["idea"]["name"]}),)
                if c.origin.get("idea") else ()
            ):  # fmt: skip
                bucket["tried"] += 1
                bucket["valid"] += int(c.ok)
                bucket["improved"] += int(improved)
            if self.credit is not None and c.origin.get("arm"):
                self.credit.tell(c.origin["arm"], bool(c.improved_best or c.improved_front))
                self.chances.append({"evaluations": study.evaluations, **{a: s["chance"]
                                     for a, s in self.credit.state().items()}})  # fmt: skip
            if not c.ok:
                self.failures.append({
                    "op": op, "idea": (c.origin.get("idea") or {}).get("name"), "category": c.metrics.get("failure", "failed"),
                    "error": (c.error or "")[:300], "where": failure_site(c.metrics.get("traceback") or ""),
                })  # fmt: skip  (the error and where, not the failing line: see failure_site)
                self.steps.on_failure(study, c)
        if results:
            credit = {"credit": self.credit.state(), "chances": self.chances} if self.credit is not None else {}
            study.store.set_meta(fairnad_stats={"mutations": self.type_stats, "ideas": self.idea_stats, **credit})
