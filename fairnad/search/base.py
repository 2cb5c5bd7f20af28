"""The strategy interface and registry: one file per strategy, `ask` proposes, `tell` learns.

A strategy holds only its own state, seeded from the study; everything it reads about the world
(space, history, LLM) comes from the study. Register with `@register` and build with
`create_strategy(name, params, study_seed)`, the way timm builds models.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from fairnad.errors import ConfigError, describe_validation_error
from fairnad.space.candidate import Candidate, Proposal

if TYPE_CHECKING:
    from fairnad.search.study import Study


class StrategyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Strategy(ABC):
    name: ClassVar[str]
    Config: ClassVar[type[StrategyConfig]] = StrategyConfig
    uses_llm: ClassVar[bool] = False
    spaces: ClassVar[tuple[str, ...]] = ("tabular",)  # which kinds of space it can search

    def __init__(self, config: StrategyConfig) -> None:
        self.config = config

    @abstractmethod
    def ask(self, study: "Study") -> list[Proposal]:
        """Genotypes to evaluate next (at least one)."""

    def tell(self, study: "Study", results: list[Candidate]) -> None:
        """Learn from the stored outcome of each proposal, in order (including refused ones)."""


REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    REGISTRY[cls.name] = cls
    return cls


def list_strategies() -> list[str]:
    _load_builtin()
    return sorted(REGISTRY)


def strategy_class(name: str) -> type[Strategy]:
    _load_builtin()
    if name not in REGISTRY:
        raise ConfigError(f"unknown strategy {name!r}; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def create_strategy(name: str, params: dict[str, Any] | None = None) -> Strategy:
    cls = strategy_class(name)
    try:
        cfg = cls.Config.model_validate(params or {})
    except ValidationError as err:
        raise ConfigError(describe_validation_error(f"strategies.{name}", err)) from None
    return cls(cfg)


def _load_builtin() -> None:
    from fairnad.search import evoprompting, fairnad, genius, llmatic, random_search, regevo  # noqa: F401, I001
