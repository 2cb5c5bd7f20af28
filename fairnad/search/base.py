"""The strategy interface and how strategies are found: one file per strategy, `ask` proposes,
`tell` learns.

A strategy holds only its own state, seeded from the study; everything it reads about the world
(space, history, LLM) comes from the study. Build one with `create_strategy(name, params)`.

Every strategy is an entry point in the group `fairnad.strategies`, `NAME = module:Class`
(docs/strategies.md): the built-ins are fairnad's own entry points (pyproject.toml), plug-ins are
any other installed distribution's. A strategy is imported only when it is asked for by name or
when all strategies are listed. A plug-in that cannot be imported, is not a Strategy, or takes a
built-in's name is reported as broken (`fairnad strategies`) and never breaks the others; a
built-in that does not import is a bug in fairnad and raises.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import import_module, metadata
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from fairnad.errors import ConfigError, describe_validation_error, one_line
from fairnad.space.candidate import Candidate, Proposal

if TYPE_CHECKING:
    from fairnad.search.study import Study

GROUP = "fairnad.strategies"
KNOWN_SPACES = ("tabular", "open")


class StrategyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Strategy(ABC):
    name: ClassVar[str]
    Config: ClassVar[type[StrategyConfig]] = StrategyConfig
    uses_llm: ClassVar[bool] = False
    # the kinds of space where, with --llm none, an LLM strategy runs each LLM step's deterministic counterpart
    runs_without_llm: ClassVar[tuple[str, ...]] = ()
    spaces: ClassVar[tuple[str, ...]] = ("tabular",)  # which kinds of space it can search

    def __init__(self, config: StrategyConfig) -> None:
        self.config = config

    @abstractmethod
    def ask(self, study: "Study") -> list[Proposal]:
        """Genotypes to evaluate next (at least one)."""

    def tell(self, study: "Study", results: list[Candidate]) -> None:
        """Learn from the stored outcome of each proposal, in order (including refused ones)."""


@dataclass
class StrategyInfo:
    """One strategy as `fairnad strategies` shows it: where it comes from and whether it loads."""

    name: str
    target: str  # module:Class
    distribution: str | None = None  # None for a built-in (an entry point of fairnad itself)
    version: str | None = None
    cls: type[Strategy] | None = None
    error: str | None = None  # why a plug-in is broken (one line)

    @property
    def builtin(self) -> bool:
        return self.distribution is None

    @property
    def source(self) -> str:
        return "built-in" if self.builtin else f"{self.distribution} {self.version or ''}".strip()

    @property
    def ok(self) -> bool:
        return self.cls is not None and self.error is None

    def describe(self) -> dict[str, Any]:
        """A JSON-ready row: name, source, uses_llm, spaces, description, settings (or the error)."""
        row: dict[str, Any] = {
            "name": self.name, "status": "ok" if self.ok else "broken", "source": self.source,
            "builtin": self.builtin, "distribution": self.distribution, "version": self.version,
            "entry_point": self.target, "error": self.error,
        }  # fmt: skip
        if self.ok:
            cls = self.cls
            row.update(uses_llm=bool(cls.uses_llm), spaces=list(cls.spaces), description=describe_class(cls),
                       settings=describe_settings(cls.Config))  # fmt: skip
        else:
            row.update(uses_llm=None, spaces=[], description="", settings=[])
        return row


def list_strategies() -> list[str]:
    """Names of every strategy that can run: built-in and installed (broken plug-ins left out)."""
    return sorted(i.name for i in strategy_infos() if i.ok)


def strategy_infos() -> list[StrategyInfo]:
    """Every strategy of the entry-point group, each imported (and checked) once; broken plug-ins
    carry their reason. Built-ins first, then plug-ins, by name."""
    return sorted((_load(i) for i in _entries()), key=lambda i: (not i.builtin, i.name, i.source))


def strategy_class(name: str) -> type[Strategy]:
    found = sorted((i for i in _entries() if i.name == name), key=lambda i: not i.builtin)  # a built-in wins
    if not found:
        raise ConfigError(f"unknown strategy {name!r}; available: {', '.join(list_strategies())} "
                          "(`fairnad strategies` lists them, with broken plug-ins)")  # fmt: skip
    info = _load(found[0])
    if not info.ok:
        raise ConfigError(
            f"strategy {name!r} from package {info.source} (entry point {name} = {info.target} in group {GROUP}) "
            f"is broken: {info.error}; fix or reinstall that package, or remove it (pip uninstall {info.distribution})"
        )
    return info.cls


def create_strategy(name: str, params: dict[str, Any] | None = None) -> Strategy:
    cls = strategy_class(name)
    try:
        cfg = cls.Config.model_validate(params or {})
    except ValidationError as err:
        raise ConfigError(describe_validation_error(f"strategies.{name}", err)) from None
    return cls(cfg)


# -- descriptions ----------------------------------------------------------------------------
def describe_class(cls: type) -> str:
    """The first paragraph of the class docstring, else of its module's, as one line."""
    doc = cls.__dict__.get("__doc__") or getattr(inspect.getmodule(cls), "__doc__", None) or ""
    para = inspect.cleandoc(doc).split("\n\n")[0]
    return one_line(" ".join(para.split()), 300)


def describe_settings(config: type[BaseModel]) -> list[dict[str, Any]]:
    """The strategy's settings (`strategies.NAME.FIELD`): name, type, default, description."""
    out = []
    for fname, f in config.model_fields.items():
        required = f.is_required()
        default = None if required else f.get_default(call_default_factory=True)
        ann = f.annotation
        typ = ann.__name__ if isinstance(ann, type) else str(ann).replace("typing.", "")
        out.append({"name": fname, "type": typ, "required": required, "default": default,
                    "description": f.description or ""})  # fmt: skip
    return out


# -- loading ---------------------------------------------------------------------------------
_ENTRIES: dict[tuple[str, ...], list[StrategyInfo]] = {}  # sys.path -> the group's entry points, not imported
_LOADED: dict[tuple[str, str, str | None], StrategyInfo] = {}  # imported and checked, once per process


def _entries() -> list[StrategyInfo]:
    """The group's entry points: fairnad's own are the built-ins. A plug-in that takes a built-in's
    name, or a name a second distribution declares too, is broken. Read once per sys.path (a folder
    of plug-ins put on it is seen)."""
    key = tuple(sys.path)
    if key not in _ENTRIES:
        eps = [(ep, ep.dist.name if ep.dist is not None else None) for ep in metadata.entry_points(group=GROUP)]
        out = [StrategyInfo(ep.name, ep.value) for ep, dist in eps if _is_fairnad(dist)]
        if not out:
            raise ConfigError(f"no built-in strategies: fairnad declares its own as entry points of the group {GROUP}, "
                              "and this Python environment has none; install fairnad (`pip install -e .` in a "
                              "checkout)")  # fmt: skip
        builtin = {i.name for i in out}
        seen: dict[str, StrategyInfo] = {}
        for ep, dist in eps:
            if _is_fairnad(dist):
                continue
            info = StrategyInfo(ep.name, ep.value, distribution=dist or "(unknown package)",
                                version=ep.dist.version if ep.dist is not None else None)  # fmt: skip
            if ep.name in builtin:
                info.error = f"name clash with the built-in strategy {ep.name!r}; rename the entry point"
            elif ep.name in seen:
                info.error = f"name also declared by {seen[ep.name].source}; rename one of the entry points"
            else:
                seen[ep.name] = info
            out.append(info)
        _ENTRIES[key] = out
    return _ENTRIES[key]


def _is_fairnad(dist: str | None) -> bool:
    return dist is not None and dist.lower().replace("_", "-") == "fairnad"


def _load(info: StrategyInfo) -> StrategyInfo:
    """`info` imported and checked (once per process): with its class, or, for a plug-in, with the
    reason it cannot serve. A built-in that fails is a bug in fairnad and raises."""
    if info.error is not None:
        return info
    key = (info.name, info.target, info.distribution)
    if key not in _LOADED:
        loaded = dataclasses.replace(info)
        try:
            cls = _import_target(info.target)
            problem = _check_class(info.name, cls)
        except (Exception, SystemExit) as err:  # a plug-in's import must never take fairnad down
            if info.builtin:
                raise
            cls, problem = None, f"cannot import {info.target}: {type(err).__name__}: {_first_line(err)}"
        if problem is not None and info.builtin:
            raise TypeError(f"built-in strategy {info.name} ({info.target}): {problem}")
        if problem is None:
            if not isinstance(getattr(cls, "name", None), str):
                cls.name = info.name  # the entry point names it
            loaded.cls = cls
        else:
            loaded.error = problem
        _LOADED[key] = loaded
    return _LOADED[key]


def _import_target(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj = import_module(module.strip())
    for part in attr.strip().split(".") if attr.strip() else []:
        obj = getattr(obj, part)
    return obj


def _check_class(ep_name: str, cls: Any) -> str | None:
    """Why `cls` cannot serve as the strategy `ep_name`, or None."""
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        return f"{one_line(repr(cls), 80)} is not a subclass of fairnad.search.base.Strategy"
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        return f"{cls.__qualname__} does not implement {missing}"
    name = getattr(cls, "name", None)
    if isinstance(name, str) and name != ep_name:
        return f"{cls.__qualname__}.name is {name!r} but its entry point is named {ep_name!r}; make them equal"
    if not (inspect.isclass(cls.Config) and issubclass(cls.Config, BaseModel)):
        return f"{cls.__qualname__}.Config is not a pydantic model (subclass StrategyConfig)"
    spaces = cls.spaces
    if isinstance(spaces, str) or not spaces or any(s not in KNOWN_SPACES for s in spaces):
        return f"{cls.__qualname__}.spaces is {spaces!r}; expected a tuple of {', '.join(KNOWN_SPACES)}"
    without = cls.runs_without_llm
    if isinstance(without, (str, bool)) or any(s not in spaces for s in without or ()):
        return (f"{cls.__qualname__}.runs_without_llm is {without!r}; expected a tuple of the spaces it searches "
                "without an LLM (of its own spaces), or ()")  # fmt: skip
    return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return one_line(text[0] if text else "", 200)
