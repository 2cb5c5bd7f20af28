"""Random search: distinct genotypes drawn uniformly (from the table when the space is tabular)."""

from __future__ import annotations

from fairnad.search.base import Strategy
from fairnad.space.candidate import Proposal

# The random stream every strategy draws its random starting models from on a tabular seed: random
# search, regularized evolution, FairNAD, LLMatic and EvoPrompting begin from the same models on the
# same seed (common random numbers), so a seed's difference between two strategies is their
# algorithms', not their luck at the start.
STARTS = 1


class UnseenSampler:
    """Uniform draws without replacement: a seeded permutation of the domain, or rejection
    sampling from the space when there is no finite domain. Shared by strategies that need
    a fresh random genotype."""

    def __init__(self, study, salt: int = STARTS) -> None:
        self.rng = study.rng(salt)
        self.order = None
        self.pos = 0
        if study.domain is not None:
            self.order = self.rng.permutation(len(study.domain))

    def draw(self, study) -> str | None:
        if self.order is not None:
            while self.pos < len(self.order):
                g = study.domain[self.order[self.pos]]
                self.pos += 1
                if study.seen(g) is None:
                    return g
            return None
        for _ in range(10_000):
            g = study.space.sample(self.rng)
            if study.seen(g) is None:
                return g
        return None


class RandomSearch(Strategy):
    name = "random"

    def ask(self, study):
        if not hasattr(self, "_sampler"):
            self._sampler = UnseenSampler(study)
        g = self._sampler.draw(study)
        if g is None:
            return []
        return [Proposal(g, origin={"op": "random"}, source="algorithm")]
