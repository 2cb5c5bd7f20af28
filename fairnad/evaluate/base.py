"""What every evaluator returns and the one method it implements."""

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
