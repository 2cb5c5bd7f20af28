"""Greedy neighbour search: random models first, then the best model's unseen one-position neighbours."""

from pydantic import Field

from fairnad.search.base import Strategy, StrategyConfig
from fairnad.space.candidate import Proposal


class GreedyNeighbourConfig(StrategyConfig):
    start: int = Field(3, ge=1, description="random models evaluated before climbing")


class GreedyNeighbour(Strategy):
    """Hill climbing on a table: the most accurate model's unseen one-position neighbours, best model first."""

    name = "greedy-neighbour"
    Config = GreedyNeighbourConfig
    spaces = ("tabular",)

    def ask(self, study):
        done = sorted(study.completed(), key=lambda c: -c.metrics["accuracy"])
        if len(study.candidates) >= self.config.start:
            for parent in done:  # the best model that still has an unseen neighbour
                for g in study.space.neighbours(parent.genotype):
                    if study.seen(g) is None and study.in_domain(g):
                        return [Proposal(g, parents=[parent.trial], origin={"op": "neighbour", "source": "algorithm"})]
        rng = study.rng(len(study.candidates))
        for _ in range(10_000):
            g = study.space.sample(rng)
            if study.seen(g) is None and study.in_domain(g):
                return [Proposal(g, origin={"op": "random", "source": "algorithm"})]
        return []
