"""Regularized evolution (Real et al., AAAI 2019): tournament selection, one-position mutation,
and aging (the oldest member leaves the population, not the worst)."""

from __future__ import annotations

from collections import deque

from pydantic import Field

from fairnad.search.base import Strategy, StrategyConfig
from fairnad.search.random_search import UnseenSampler
from fairnad.space.candidate import Proposal


class RegEvoConfig(StrategyConfig):
    population: int = Field(10, ge=2, description="members kept; the first ones are random")
    sample: int = Field(3, ge=1, description="tournament size")
    mutation_tries: int = Field(100, ge=1, description="mutations tried before falling back to a random genotype")


class RegularizedEvolution(Strategy):
    name = "regevo"
    Config = RegEvoConfig

    def __init__(self, config: RegEvoConfig) -> None:
        super().__init__(config)
        self.population: deque = deque()
        self._sampler = None
        self._rng = None

    def ask(self, study):
        if self._sampler is None:
            self._sampler = UnseenSampler(study)
            self._rng = study.rng(2)
        cfg = self.config
        if len(self.population) >= cfg.population:
            size = min(cfg.sample, len(self.population))
            picks = self._rng.choice(len(self.population), size=size, replace=False)
            parent = max((self.population[i] for i in picks), key=study.score)
            for _ in range(cfg.mutation_tries):
                child = study.space.mutate(parent.genotype, self._rng)
                if study.is_new(child):
                    return [Proposal(child, parents=[parent.trial], origin={"op": "mutation"}, source="algorithm")]
        g = self._sampler.draw(study)
        # the first members are the starting population; later random draws stand in for a mutation
        # that found nothing new in `mutation_tries`
        source = "init" if len(self.population) < cfg.population else "algorithm"
        return [Proposal(g, origin={"op": "random"}, source=source)] if g is not None else []

    def tell(self, study, results):
        for c in results:
            if c.ok:
                self.population.append(c)
                if len(self.population) > self.config.population:
                    self.population.popleft()
