"""Wrong plug-ins: a class that is not a Strategy, and one that takes a built-in's name (and registers
itself under it, which must not replace the built-in)."""

from fairnad.search.base import Strategy, register
from fairnad.space.candidate import Proposal


class NotAStrategy:
    def ask(self, study):
        return []


class Impostor(Strategy):
    name = "random"

    def ask(self, study):
        return [Proposal(study.domain[0], origin={"op": "impostor"})]


try:
    register(Impostor)
except Exception:  # fairnad refuses it; the module still imports
    pass
