"""What a search is about, as named fields: the space and how it is evaluated, the objectives, and
what a problem offers its strategies (the idea space, the candidate contract, a checker, option
costs). The lifecycle builds a Problem from a run's config; a Study and its strategies read it.

A strategy asks `problem.kind` ("tabular" or "open") and reads the fields that kind fills; it never
tests what an object happens to have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from fairnad.evaluate.base import Evaluator  # the one method every evaluator implements


@runtime_checkable
class Space(Protocol):
    """A space of genotypes, as the Study and every strategy use it: a table's option strings
    (space/tabular.py) or model code (space/code.py)."""

    def is_valid(self, genotype: str) -> bool: ...

    def parse(self, genotype: str) -> Any:
        """The genotype read (a table's option indices, model code's source); ValueError saying why not."""
        ...

    def key(self, genotype: str) -> str:
        """What makes two genotypes the same (model code: the normalised source)."""
        ...

    def describe(self, genotype: str) -> str:
        """One line that tells genotypes apart in a prompt."""
        ...


@runtime_checkable
class TableSpace(Space, Protocol):
    """A finite space: positions, each with a few options (space/tabular.py). What the strategies of
    a tabular problem call besides; a problem of kind "tabular" has one. It is a protocol of its own,
    not methods of every space, because model code has no positions: an open space offering
    `mutate` or `neighbours` only to raise would move a wrong pairing of strategy and space from
    the check before a run (Strategy.spaces) into the middle of one."""

    description: Any  # the SpaceDescription: goal, choices, skeleton, block code (prompts render it)
    dims: list[Any]  # per position: its name, option set and context
    options: list[list[Any]]  # per position: its options (code, label, name)

    @property
    def ndim(self) -> int: ...

    def parse(self, genotype: str) -> tuple[int, ...]: ...

    def format(self, indices) -> str:
        """The genotype of option indices, one per position."""
        ...

    def labels(self, genotype: str) -> list[Any]: ...

    def from_labels(self, labels: list[Any]) -> str:
        """The genotype an LLM meant by one option label per position; ValueError saying why not."""
        ...

    def sample(self, rng: np.random.Generator) -> str: ...

    def mutate(self, genotype: str, rng: np.random.Generator) -> str: ...

    def crossover(self, a: str, b: str, rng: np.random.Generator) -> str: ...

    def neighbours(self, genotype: str) -> list[str]:
        """Every genotype one position away."""
        ...

    def answer_schema(self, rationale_chars: int = 300, rationale_first: bool = True) -> dict:
        """JSON schema of an LLM's answer: a rationale and one label per position."""
        ...


# a probe: genotype -> plain-JSON result {"status", "category", "error", "traceback", "params", ...}
Probe = Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class Objective:
    """One objective of the search: the key of a candidate's metrics, and which way is better."""

    name: str
    direction: Literal["max", "min"]
    unit: str = ""
    label: str = ""  # how prompts name it ("validation accuracy"); the name when empty

    def score(self, value: float) -> float:
        """`value` signed so that higher is better: strategies compare scores, so a table whose search
        column is better lower (an error) is searched the right way."""
        return value if self.direction == "max" else -value

    @property
    def text(self) -> str:
        return self.label or self.name

    @property
    def goal(self) -> str:
        """What a prompt asks for, the direction in words: "the highest accuracy (%)", "the lowest error"."""
        unit = f" ({self.unit})" if self.unit else ""
        return f"the {'highest' if self.direction == 'max' else 'lowest'} {self.text}{unit}"

    @property
    def better(self) -> str:
        """How a prompt says "better" for this objective: "higher" or "lower"."""
        return "higher" if self.direction == "max" else "lower"


ACCURACY = Objective("accuracy", "max", "%")
PARAMS = Objective("params", "min")
FLOPS = Objective("flops", "min")
COSTS = {"params": PARAMS, "flops": FLOPS}


@dataclass
class Problem:
    kind: Literal["tabular", "open"]
    space: Space  # a TableSpace when kind is "tabular"
    evaluator: Evaluator
    dataset: str
    # the first is what "best" means (accuracy); the others are the costs a front trades it against
    objectives: tuple[Objective, ...] = (ACCURACY, PARAMS)
    # the cost axis of the Pareto front: what "improved the front" and every Pareto move are judged on
    cost: Literal["params", "flops"] = "params"
    domain: list[str] | None = None  # every genotype that can be evaluated, for a finite table
    # -- open spaces: model code trained for real
    ideas: Any = None  # the attribute tree of design ideas (knowledge.tree.AttributeTree)
    contract: str = ""  # what a model file must be (prompts quote it)
    initial: list[str] = field(default_factory=list)  # starting model files
    max_params: int | None = None
    probes: dict[str, Probe] = field(default_factory=dict)  # cheap checks: "check" (build, shape), "train"
    # -- tabular spaces: a benchmark's table
    option_costs: list[list[float]] | None = None  # mean cost of the entries using each option, per position
    cost_of: Callable[[str], str] | None = None  # a genotype's cost as prompt text
    cost_range: dict[str, tuple[float, float]] = field(default_factory=dict)  # min/max params and FLOPs
    bench: Any = None  # the TabularBenchmark behind a tabular problem
    executor: Any = None  # what runs open evaluations; closed with the problem

    def __post_init__(self) -> None:
        if self.kind == "tabular" and not isinstance(self.space, TableSpace):
            raise TypeError(f"a tabular problem needs a TableSpace (positions and options), not {type(self.space).__name__}")

    @property
    def primary(self) -> Objective:
        return self.objectives[0]

    @property
    def is_open(self) -> bool:
        return self.kind == "open"

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()
