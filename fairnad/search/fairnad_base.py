"""What FairNAD's two halves share: its settings, and the `Steps` each kind of space implements.

The strategy (fairnad/search/fairnad.py) chooses the mutation type and the parent, keeps the statistics
and the queue; the moves themselves are a space's: `OpenSteps` (fairnad_open.py: model code the LLM
writes, argument moves of a model's build_model) and `TableSteps` (fairnad_tabular.py: one-option changes
of a table's genotypes). Both draw ideas from the same fair sampler (search/ideas.py) and rank on the same
Pareto parts (search/pareto.py), and give the LLM the same feedback (`Steps.feedback`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from fairnad.search.base import StrategyConfig
from fairnad.search.common import cost_text, view
from fairnad.search.ideas import Idea
from fairnad.search.pareto import front
from fairnad.space.candidate import Proposal

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
    cost: Literal["params", "flops"] | None = Field(
        None, description="the cost axis of FairNAD's front; the run's `cost` setting, which this may only repeat "
        "(kept so that runs that set it here resume)")
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
    adaptive: bool = Field(
        True, description="move the chances of the mutation types, and of the LLM against each LLM step's "
        "deterministic counterpart (the algorithm alone), towards those whose children improve the best or the "
        "front, per evaluation (search/credit.py: probability matching with a floor); false: the paper's fixed "
        "`probs`, every idea and iterative child the LLM's")
    credit_floor: float = Field(0.05, ge=0, le=0.5, description="adaptive: the least chance of every arm (type and "
                                "source), so one that starts badly is still tried")
    credit_prior: float = Field(4.0, ge=0, description="adaptive: children at the pooled success rate added to each "
                                "arm's record (how much evidence it takes to move a chance)")
    algorithm_share: float = Field(0.25, ge=0, le=1, description="adaptive, with an LLM: the share of each LLM step's "
                                   "starting chance given to its deterministic counterpart (open spaces: argument "
                                   "moves of the strongest front model; tables: the change with the best evidence)")
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



def stat() -> dict[str, int]:
    return {"tried": 0, "valid": 0, "improved": 0}


class Steps:
    """FairNAD's moves in one kind of space. The strategy calls, for a child of a mutation type:
    `idea(parent)`, `pareto(done, rank, crowd)` (the half picks its parent on or near the front),
    `pareto_of(parent)` (idea children where there are no ideas), `iterative(strongest)`; before any
    model has trained, `no_parent`; for each failed child, `on_failure`. What the strategy keeps (its
    settings, random generator, ideas, statistics, LLM misses) is read through `self.core`. `self.llm`
    is the LLM a step may ask: the study's, or None when the step is its deterministic counterpart (the
    arm drawn was the algorithm's, or the run has no LLM)."""

    def __init__(self, core) -> None:
        self.core = core  # the FairNAD strategy (fairnad.py, which imports this module: not named here)
        self.llm = None  # the LLM of the step being made: the study's, or None for the algorithm alone

    @property
    def config(self):
        return self.core.config

    @property
    def rng(self) -> np.random.Generator:
        return self.core.rng

    @property
    def ideas(self):
        return self.core.ideas

    def start(self, study) -> list[Proposal]:  # the starting models
        raise NotImplementedError

    def no_parent(self, study, pending: list[Proposal]) -> Proposal | None:
        raise NotImplementedError

    def idea(self, study, parent, done, rank) -> Proposal:
        raise NotImplementedError

    def pareto(self, study, done, rank, crowd) -> Proposal:
        raise NotImplementedError

    def pareto_of(self, study, parent, done, rank) -> Proposal:
        raise NotImplementedError

    def iterative(self, study, strongest, done, rank) -> Proposal:
        raise NotImplementedError

    def on_failure(self, study, cand) -> None:
        """A counted child failed (the strategy has noted it in its statistics and feedback)."""

    def describe(self, study, cand) -> str:
        """One line that tells a model apart in the feedback's front."""
        raise NotImplementedError

    # -- shared prompt material ---------------------------------------------------------------------
    def parent_view(self, parent, study) -> dict[str, Any]:
        return view(study, parent)

    def feedback(self, study, ideas: bool = True) -> dict[str, Any]:
        cfg = self.config
        fr = (front(study.completed(), study.problem.cost, self.rng, study.problem.primary)[-cfg.front_in_prompt :]
              if cfg.front_in_prompt else [])  # fmt: skip
        rows = []
        for c in fr:
            summary = self.describe(study, c)
            rows.append({"summary": summary or f"trial {c.trial}", "accuracy": c.metrics["accuracy"],
                         "cost_text": cost_text(c.metrics)})  # fmt: skip
        top = sorted(self.core.idea_stats.values(), key=lambda s: (-s["tried"], s["name"]))[: cfg.ideas_in_prompt] if ideas else []
        return {"front": rows, "failures": list(self.core.failures), "ideas": top, "cost": study.problem.cost,
                "objective": study.problem.primary}

    def refining_idea(self, used: set[str] = frozenset()) -> tuple[Idea | None, bool]:
        """What an iterative refinement builds on (the paper's agent refines high-performing ideas):
        an idea whose children improved the front, drawn uniformly; else a fairly sampled one. A bare
        "refine it" makes a small model copy the model. A child that merely trained is not an idea
        that worked: with that rule, 5 of one run's 7 iterative children (seed 0) refined with such
        an idea, 4 with squeeze-and-excitation after its one child trained to 56%; 2 of the 5 trained.
        Ideas in `used` (the parent's own line) are passed over: asked to add resolution scaling to the
        model it made, the 1.5B model wrote that model back (seed 2: 4 of 8 iterative children).
        Returns (idea, whether it has worked)."""
        ids = sorted(i for i, s in self.core.idea_stats.items() if s["improved"] and i in self.ideas.by_id and i not in used)
        if ids:
            return self.ideas.by_id[ids[int(self.rng.integers(len(ids)))]], True
        if not len(self.ideas):
            return None, False
        for _ in range(20):  # a fair draw, again while it lands on the parent's own ideas
            idea = self.ideas.sample(self.rng)
            if idea.id not in used:
                break
        return idea, False
