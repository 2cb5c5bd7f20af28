"""What a candidate is, whatever the space: a genotype with its lineage, origin, status and metrics.

Provenance: who made a proposal, said by the strategy when it creates it, stored as origin["source"].
One vocabulary for every strategy; the op beside it names the step of that strategy (regevo's
algorithmic "mutation" and LLMatic's "llm_mutation" are told apart by both):
  "llm"        the model's own proposal: its answer is the child. Deterministic fixes that keep the
               model's design do not change that (standard imports added back, layers' input sizes
               inferred from the data, the model repairing its own child after a failed check); the
               origin records them (`imports_added`, `inferred_sizes`, `repaired`). A refused answer
               (no code, not in the space, a repeat) is still the model's proposal, refused.
  "algorithm"  a deterministic or random operator of the strategy, no LLM answer in it: random search,
               regularized evolution's one-position mutation, FairNAD's Pareto scaling through a
               model's own arguments or the table's options, the downscale of an over-budget child.
  "fallback"   an LLM step whose answer could not be used as it was (unusable, a repeat of an evaluated
               model, or without the idea it had to apply), so a deterministic step made the child in
               its place; the origin says which (`fallback`, `llm_answer`, `idea_enforced`).
  "init"       a starting model: a reference model or a scaled copy of one, or a random table entry
               evaluated before a strategy's first step.
An LLM-made proposal also lists the stored LLM calls that made it (origin["llm_calls"]: the Study
records them for a strategy's single proposal, FairNAD per child of a batch); a fallback lists the
calls whose answers it replaced when they were asked in the same step (GENIUS's fallback, after
answers that were refused as proposals of their own, lists none). Only "llm" counts as the model's
own (store.summary.made_by_llm, the bench's LLM share). Runs stored before `source` existed are
classified by made_by_llm's legacy rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Lifecycle: running -> complete | failed. Proposals refused before evaluation are stored too,
# as invalid (not in the space) or duplicate (already evaluated); they do not use the budget.
STATUSES = ("running", "complete", "failed", "invalid", "duplicate")
SOURCES = ("llm", "algorithm", "fallback", "init")  # see the module docstring


@dataclass
class Proposal:
    """What a strategy asks to be evaluated. `source` (one of SOURCES) says who made it; it is kept in
    the origin (origin["source"]), which is what the store records. Given in either place, it is checked."""

    genotype: str
    parents: list[int] = field(default_factory=list)
    origin: dict[str, Any] = field(default_factory=dict)
    invalid_reason: str | None = None  # set when the strategy already knows it cannot be evaluated
    source: str | None = None

    def __post_init__(self) -> None:
        given = self.origin.get("source")
        if self.source is None:
            self.source = given
        elif given is not None and given != self.source:
            raise ValueError(f"a proposal's source is {self.source!r} but its origin says {given!r}")
        if self.source is not None:
            if self.source not in SOURCES:
                raise ValueError(f"unknown proposal source {self.source!r}; use one of {', '.join(SOURCES)}")
            self.origin = {**self.origin, "source": self.source}


@dataclass
class Candidate:
    id: int
    trial: int
    genotype: str
    parents: list[int] = field(default_factory=list)
    origin: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    counted: bool = False
    created: float = 0.0
    finished: float | None = None
    # the Study's verdict when it finished (fairnad.pareto.Verdicts): better than every model before it,
    # and joined the Pareto front of score and the run's cost axis. None: a run stored before verdicts were
    improved_best: bool | None = None
    improved_front: bool | None = None

    @property
    def ok(self) -> bool:
        return self.status == "complete"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
