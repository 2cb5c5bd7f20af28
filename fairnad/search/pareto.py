"""NSGA-II ranking and parent choice, with pymoo's RankAndCrowding (non-dominated sorting and
crowding distance) doing the ranking. Objectives are minimised: (-accuracy, cost)."""

from __future__ import annotations

import numpy as np
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding

from fairnad.pareto import as_objectives, nondominated
from fairnad.problem import ACCURACY, Objective
from fairnad.space.candidate import Candidate


def objectives(cands: list[Candidate], cost: str = "params", primary: Objective = ACCURACY) -> np.ndarray:
    """(-accuracy, cost) per candidate (the problem's first objective against a cost); a missing cost
    counts as the worst (fairnad.pareto)."""
    return as_objectives([(primary.score(c.metrics[primary.name]), c.metrics.get(cost)) for c in cands])


def rank_and_crowding(F: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """NSGA-II rank (0 = the Pareto front) and crowding distance of every row of F."""
    n = len(F)
    if n == 0:
        return np.zeros(0, int), np.zeros(0)
    pop = Population.new(F=np.asarray(F, float), index=np.arange(n))
    problem = Problem(n_var=1, n_obj=F.shape[1])
    survivors = RankAndCrowding().do(problem, pop, n_survive=n, random_state=rng)
    rank, crowd = np.zeros(n, int), np.zeros(n)
    for ind in survivors:
        i = int(ind.get("index"))
        rank[i], crowd[i] = int(ind.get("rank")), float(ind.get("crowding"))
    return rank, crowd


def tournament(rank: np.ndarray, crowd: np.ndarray, rng: np.random.Generator, n: int = 1) -> list[int]:
    """NSGA-II binary tournament: the lower rank wins, then the larger crowding distance, then a coin."""
    out = []
    for _ in range(n):
        if len(rank) == 1:
            out.append(0)
            continue
        a, b = rng.choice(len(rank), size=2, replace=False)
        if rank[a] != rank[b]:
            out.append(int(a if rank[a] < rank[b] else b))
        elif crowd[a] != crowd[b]:
            out.append(int(a if crowd[a] > crowd[b] else b))
        else:
            out.append(int(a if rng.random() < 0.5 else b))
    return out


def front(cands: list[Candidate], cost: str, rng: np.random.Generator | None = None,
          primary: Objective = ACCURACY) -> list[Candidate]:  # fmt: skip
    """The completed candidates on the Pareto front, by ascending cost."""
    on = nondominated(objectives(cands, cost, primary)) if cands else []
    return sorted((cands[i] for i in on), key=lambda c: c.metrics.get(cost) or 0)
