"""Pareto dominance of models on (accuracy, cost): one rule for the search, the run summaries and the
report, so a child "improves the front" in the same cases wherever it is counted. `Verdicts` applies it
as each model finishes: the Study stores what it decides, and everything else reads that.

Objectives are minimised as pymoo has them, (-accuracy, cost); pymoo's Dominator decides dominance.
A point equal to one already on the front adds nothing: it does not improve the front. A missing
cost counts as the worst cost seen (a model whose size is unknown wins nothing by it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from pymoo.util.dominator import Dominator
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting


def as_objectives(points: Sequence[tuple[float, float | None]]) -> np.ndarray:
    """(score, cost) pairs as rows of minimised objectives (-score, cost). A score is higher-is-better
    (`Objective.score`: an error rate comes negated)."""
    if not len(points):
        return np.zeros((0, 2))
    acc = np.array([p[0] for p in points], float)
    cost = np.array([np.nan if p[1] is None else p[1] for p in points], float)
    if np.isnan(cost).all():
        cost = np.zeros(len(points))
    cost = np.where(np.isnan(cost), np.nanmax(cost) * 10 + 1, cost)
    return np.column_stack([-acc, cost])


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether objective row `a` dominates `b` (no worse in both, better in one)."""
    return Dominator.get_relation(np.asarray(a, float), np.asarray(b, float)) == 1


def improves(point: np.ndarray, others: Iterable[np.ndarray]) -> bool:
    """Whether `point` would join the front of `others`: nothing dominates it and nothing equals it."""
    p = np.asarray(point, float)
    return not any(dominates(q, p) or np.array_equal(q, p) for q in others)


def nondominated(F: np.ndarray) -> np.ndarray:
    """Indices of the rows of F on the Pareto front (equal rows all stay)."""
    F = np.asarray(F, float)
    if len(F) == 0:
        return np.zeros(0, int)
    return np.asarray(NonDominatedSorting().do(F, only_non_dominated_front=True), int)


class Verdicts:
    """Whether each finished model improved the best and the Pareto front, decided in trial order: the
    first model improves both (there was none before it); a later one improves the best when its score
    (higher is better, `Objective.score`) beats every earlier one, and the front when nothing finished
    before it dominates or equals its (score, cost). A missing cost counts as worse than any known one.
    The Study decides a run's verdicts with one of these and stores them with the candidates; readers of
    runs stored before verdicts were (fairnad < 0.2) rebuild them with one too."""

    def __init__(self) -> None:
        self.best: float | None = None
        self.front: list[np.ndarray] = []  # the non-dominated points so far, as minimised objectives

    def judge(self, score: float | None, cost: float | None) -> tuple[bool, bool]:
        """(improved the best, improved the front) of the next model; a model without a score (it
        failed, or was never evaluated) improves neither."""
        if score is None:
            return False, False
        best = self.best is None or score > self.best
        if best:
            self.best = score
        p = np.array([-float(score), float("inf") if cost is None else float(cost)])
        front = improves(p, self.front)
        if front:
            self.front = [q for q in self.front if not dominates(p, q)] + [p]
        return best, front
