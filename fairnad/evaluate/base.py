"""What every evaluator returns and the methods it implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from fairnad.space.candidate import Candidate


@dataclass
class Result:
    status: str  # "complete" or "failed" (or "invalid" when the genotype is not in the space/table)
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    category: str | None = None  # failure category, e.g. "not_in_table", "timeout"
    seconds: float = 0.0


class Evaluator(Protocol):
    def evaluate(self, candidate: Candidate, fidelity: str | None = None) -> Result: ...

    def evaluate_many(self, candidates: list[Candidate], fidelity: str | None = None) -> list[Result]:
        """Several candidates at once: in parallel where the evaluator can, in order."""
        ...

    def observe(self, candidate: Candidate) -> None:
        """A candidate evaluated in an earlier session, which a resumed run replays without evaluating."""
        ...
