"""What a candidate is, whatever the space: a genotype with its lineage, origin, status and metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Lifecycle: running -> complete | failed. Proposals refused before evaluation are stored too,
# as invalid (not in the space) or duplicate (already evaluated); they do not use the budget.
STATUSES = ("running", "complete", "failed", "invalid", "duplicate")


@dataclass
class Proposal:
    """What a strategy asks to be evaluated."""

    genotype: str
    parents: list[int] = field(default_factory=list)
    origin: dict[str, Any] = field(default_factory=dict)
    invalid_reason: str | None = None  # set when the strategy already knows it cannot be evaluated


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

    @property
    def ok(self) -> bool:
        return self.status == "complete"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
