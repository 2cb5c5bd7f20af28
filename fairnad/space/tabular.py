"""Tabular search spaces: a fixed number of positions, each with a finite set of options.

A space is described in YAML (see docs/benchmark-format.md): what is being chosen, the options
with their code and meaning, the network skeleton and block code. Prompts are generated from
that description, so no strategy hard-codes a benchmark.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Option(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, description="characters that stand for this option in a genotype")
    label: int | float | str = Field(description="what the LLM reads and answers, e.g. 2 or 128")
    name: str = Field(description="what the option is, e.g. 'InvertedResidual(k=3, e=3)'")
    description: str = ""


class Dimension(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    choices: str = Field(description="key of the option set in `choices`")
    context: str = Field("", description="what is fixed at this position, e.g. channels and stride")


class SpaceDescription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    title: str = ""
    goal: str = Field(description="what the user wants chosen, as a phrase: 'the operation of each layer'")
    answer_noun: str = Field("option labels", description="what one answer item is: 'operation IDs'")
    choices: dict[str, list[Option]]
    dimensions: list[Dimension] = Field(min_length=1)
    architecture: str = Field("", description="the network skeleton, as shown to the LLM")
    code: str = Field("", description="implementation of the blocks, as shown to the LLM")
    notes: str = Field("", description="extra rules, e.g. how a cell's nodes are computed")
    separator: str = Field("", description="between option codes in a genotype; '' needs 1-char codes")

    @model_validator(mode="after")
    def _check(self) -> "SpaceDescription":
        for key, opts in self.choices.items():
            if not opts:
                raise ValueError(f"choices.{key} is empty")
            codes = [o.code for o in opts]
            if len(set(codes)) != len(codes):
                raise ValueError(f"choices.{key}: option codes repeat: {codes}")
            labels = [o.label for o in opts]
            if len(set(map(str, labels))) != len(labels):
                raise ValueError(f"choices.{key}: option labels repeat: {labels}")
            if not self.separator and any(len(c) != 1 for c in codes):
                raise ValueError(f"choices.{key}: codes longer than one character need a `separator`")
        for i, d in enumerate(self.dimensions):
            if d.choices not in self.choices:
                raise ValueError(
                    f"dimensions[{i}] ({d.name}): choices {d.choices!r} is not one of {sorted(self.choices)}"
                )
        return self


class TabularSpace:
    """Genotype strings <-> option indices, random sampling, mutation and the LLM answer schema."""

    def __init__(self, description: SpaceDescription) -> None:
        self.description = description
        self.dims = description.dimensions
        self.options = [description.choices[d.choices] for d in self.dims]
        self._code_index = [{o.code: j for j, o in enumerate(opts)} for opts in self.options]
        self._label_index = [{str(o.label): j for j, o in enumerate(opts)} for opts in self.options]
        self.sep = description.separator

    @property
    def name(self) -> str:
        return self.description.name

    @property
    def ndim(self) -> int:
        return len(self.dims)

    @cached_property
    def size(self) -> int:
        return math.prod(len(o) for o in self.options)

    # -- genotype <-> indices / labels ----------------------------------------------------------
    def parse(self, genotype: str) -> tuple[int, ...]:
        """Option indices of `genotype`; ValueError naming the first bad position."""
        parts = genotype.split(self.sep) if self.sep else list(genotype)
        if len(parts) != self.ndim:
            raise ValueError(f"genotype {genotype!r} has {len(parts)} positions, the space has {self.ndim}")
        idx = []
        for i, p in enumerate(parts):
            j = self._code_index[i].get(p)
            if j is None:
                valid = ", ".join(o.code for o in self.options[i])
                raise ValueError(f"genotype {genotype!r}: {self.dims[i].name} has no option {p!r} (valid: {valid})")
            idx.append(j)
        return tuple(idx)

    def format(self, indices) -> str:
        return self.sep.join(self.options[i][j].code for i, j in enumerate(indices))

    def is_valid(self, genotype: str) -> bool:
        try:
            self.parse(genotype)
        except ValueError:
            return False
        return True

    def key(self, genotype: str) -> str:
        """A table's genotype is its own key (model code is compared normalised)."""
        return genotype

    def from_labels(self, labels: list[Any]) -> str:
        """The genotype an LLM meant by a list of option labels; ValueError with the reason."""
        if not isinstance(labels, list) or len(labels) != self.ndim:
            n = len(labels) if isinstance(labels, list) else "no"
            raise ValueError(f"expected a list of {self.ndim} {self.description.answer_noun}, got {n} items")
        idx = []
        for i, lab in enumerate(labels):
            key = str(int(lab)) if isinstance(lab, float) and float(lab).is_integer() else str(lab).strip()
            j = self._label_index[i].get(key)
            if j is None:
                valid = ", ".join(str(o.label) for o in self.options[i])
                raise ValueError(f"{self.dims[i].name}: {lab!r} is not one of {valid}")
            idx.append(j)
        return self.format(idx)

    def labels(self, genotype: str) -> list[Any]:
        return [self.options[i][j].label for i, j in enumerate(self.parse(genotype))]

    def describe(self, genotype: str) -> str:
        return ", ".join(f"{self.dims[i].name}={self.options[i][j].name}" for i, j in enumerate(self.parse(genotype)))

    # -- sampling and variation -----------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> str:
        return self.format([int(rng.integers(len(o))) for o in self.options])

    def mutate(self, genotype: str, rng: np.random.Generator) -> str:
        """Change one position to a different option (uniformly over positions with >1 option)."""
        idx = list(self.parse(genotype))
        movable = [i for i, o in enumerate(self.options) if len(o) > 1]
        i = int(rng.choice(movable))
        choices = [j for j in range(len(self.options[i])) if j != idx[i]]
        idx[i] = int(rng.choice(choices))
        return self.format(idx)

    def crossover(self, a: str, b: str, rng: np.random.Generator) -> str:
        """Uniform crossover: each position's option from `a` or `b` with equal chance."""
        ia, ib = self.parse(a), self.parse(b)
        return self.format([x if rng.random() < 0.5 else y for x, y in zip(ia, ib)])

    def neighbours(self, genotype: str) -> list[str]:
        idx = list(self.parse(genotype))
        out = []
        for i, opts in enumerate(self.options):
            for j in range(len(opts)):
                if j != idx[i]:
                    out.append(self.format(idx[:i] + [j] + idx[i + 1 :]))
        return out

    # -- the LLM's answer -----------------------------------------------------------------------
    def answer_schema(self, rationale_chars: int = 300, rationale_first: bool = True) -> dict:
        """JSON schema of an answer: one label per position (grammar-enforced where the server can).
        A constrained decoder writes the properties in this order: with the rationale first, the
        model reasons before it commits to the architecture."""
        items = [{"enum": [o.label for o in opts]} for opts in self.options]
        arch = {"type": "array", "prefixItems": items, "items": False, "minItems": self.ndim, "maxItems": self.ndim}
        why = {"type": "string", "maxLength": rationale_chars}
        order = ["rationale", "architecture"] if rationale_first else ["architecture", "rationale"]
        return {
            "type": "object",
            "properties": {k: {"architecture": arch, "rationale": why}[k] for k in order},
            "required": order,
            "additionalProperties": False,
        }
