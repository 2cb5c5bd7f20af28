"""The ideas a FairNAD mutation applies, and fair sampling over them.

Fair sampling: a category is drawn uniformly among the non-empty ones, then an idea uniformly in
it, so a category that papers mention rarely is tried as often as a fashionable one. In open
spaces the ideas are the attribute tree's attributes (with descriptions and source quotes); in
tabular spaces they are the space's own options, one category per position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fairnad.knowledge.tree import AttributeTree
from fairnad.space.tabular import TabularSpace


@dataclass
class Idea:
    id: str
    name: str
    category: str
    category_name: str
    description: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)
    position: int | None = None  # tabular: which position and option this idea sets
    option: int | None = None

    def brief(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "category": self.category}


class IdeaSpace:
    def __init__(self, categories: dict[str, list[Idea]]) -> None:
        self.categories = {k: v for k, v in categories.items() if v}
        self.by_id = {i.id: i for ideas in self.categories.values() for i in ideas}

    def __len__(self) -> int:
        return len(self.by_id)

    def sample(self, rng: np.random.Generator) -> Idea:
        keys = sorted(self.categories)
        cat = keys[int(rng.integers(len(keys)))]
        ideas = self.categories[cat]
        return ideas[int(rng.integers(len(ideas)))]

    @classmethod
    def from_tree(cls, tree: AttributeTree, include_over_specific: bool = False, checked: bool = True) -> "IdeaSpace":
        """The tree's ideas as fair sampling draws them (AttributeTree.sampled)."""
        cats: dict[str, list[Idea]] = {}
        names = {c["path"]: c["name"] for c in tree.categories()}
        for a in (a for attrs in tree.sampled(include_over_specific, checked).values() for a in attrs):
            cats.setdefault(a["category"], []).append(Idea(
                id=a["key"], name=a["name"], category=a["category"], category_name=names.get(a["category"], a["category"]),
                description=a.get("description") or "",
                sources=[{**{k: s.get(k) for k in ("title", "paper", "page")}, "quote": s.get("evidence") or s.get("quote")}
                         for s in a["sources"][:2]],  # the whole evidence sentence, not only its span
            ))  # fmt: skip
        return cls(cats)

    @classmethod
    def from_tabular(cls, space: TabularSpace) -> "IdeaSpace":
        cats: dict[str, list[Idea]] = {}
        for i, (dim, opts) in enumerate(zip(space.dims, space.options)):
            cats[dim.name] = [
                Idea(id=f"{dim.name}={o.code}", name=f"{o.name} at {dim.name}", category=dim.name,
                     category_name=dim.name, description=o.description or dim.context, position=i, option=j)
                for j, o in enumerate(opts)
            ]  # fmt: skip
        return cls(cats)
