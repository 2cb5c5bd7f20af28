"""Credit between FairNAD's arms: which mutation type, made by whom (the LLM or the algorithm alone),
gets the next child.

Adaptive operator selection by probability matching with a floor (Thierens 2005): an arm's chance
follows how often its children improved the best or the Pareto front (the Study's stored verdicts)
per evaluation, shrunk towards the pooled rate by `prior` pseudo-children, and weighted by its
starting chance; every arm keeps at least `floor`, so one that starts badly is still tried. With no
evidence the chances are the starting ones. Everything here follows from the children told to it in
trial order, so a resumed or replayed run, which tells the same children, draws the same arms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Arm:
    op: str  # the mutation type: idea, pareto, iterative
    source: str  # who makes its children: "llm", or "algorithm" (the step's deterministic counterpart)
    base: float  # its starting chance
    children: int = 0  # counted children (evaluated, trained or failed)
    improved: int = 0  # of those, the ones that improved the best or the front

    @property
    def name(self) -> str:
        return f"{self.op}/{self.source}"


class Credit:
    def __init__(self, base: dict[tuple[str, str], float], floor: float = 0.05, prior: float = 4.0) -> None:
        total = sum(base.values())
        if total <= 0 or not base:
            raise ValueError("no arm has a chance")
        self.arms = [Arm(op, source, p / total) for (op, source), p in base.items() if p > 0]
        self.floor = min(floor, 1.0 / len(self.arms))
        self.prior = prior
        self._by_name = {a.name: a for a in self.arms}

    def chances(self) -> np.ndarray:
        """Each arm's chance now: its starting chance times its success rate (shrunk towards the pooled
        rate), normalised, then mixed with the floor."""
        n = sum(a.children for a in self.arms)
        pooled = (sum(a.improved for a in self.arms) + 1) / (n + 2)  # Laplace: never 0 or 1
        rate = np.array([(a.improved + self.prior * pooled) / (a.children + self.prior) for a in self.arms])
        w = np.array([a.base for a in self.arms]) * rate
        p = w / w.sum()
        return self.floor + (1 - self.floor * len(self.arms)) * p

    def draw(self, rng: np.random.Generator) -> tuple[Arm, float]:
        p = self.chances()
        i = int(rng.choice(len(self.arms), p=p))
        return self.arms[i], float(p[i])

    def tell(self, arm: str, improved: bool) -> None:
        a = self._by_name.get(arm)
        if a is not None:
            a.children += 1
            a.improved += int(improved)

    def state(self) -> dict[str, dict]:
        """Per arm: children, improved, starting and current chance (stored in the run, shown by the report)."""
        return {a.name: {"children": a.children, "improved": a.improved, "start": round(a.base, 4),
                         "chance": round(float(p), 4)} for a, p in zip(self.arms, self.chances())}  # fmt: skip
