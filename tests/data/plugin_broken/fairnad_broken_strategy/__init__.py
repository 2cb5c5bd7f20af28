"""Wrong plug-ins: a class that is not a Strategy, and one that takes a built-in's name (declared
under it, which must not replace the built-in, and under another name, which its own name contradicts)."""

from fairnad.search.base import Strategy
from fairnad.space.candidate import Proposal


class NotAStrategy:
    def ask(self, study):
        return []


class Impostor(Strategy):
    name = "random"

    def ask(self, study):
        return [Proposal(study.domain[0], origin={"op": "impostor"})]
