"""The structural template: levels -> categories, each with a description and examples (YAML).

A malformed template is refused with its file, line and reason: the pydantic error's field path
is mapped back to the YAML node it came from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fairnad.errors import ConfigError, one_line
from fairnad.files import check_yaml_values, yaml_problem, yaml_value_error

SLUG = r"^[a-z0-9][a-z0-9-]*$"


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=SLUG)
    name: str = Field(min_length=2)
    description: str = Field(min_length=8)
    examples: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    # words that file a paper's idea here when its name holds them (consolidate.category_by_terms);
    # a template without them files every idea under its closest example
    terms: list[Annotated[str, Field(min_length=1)]] = []


class Level(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=SLUG)
    name: str = Field(min_length=2)
    description: str = ""
    categories: list[Category] = Field(min_length=1)


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(pattern=SLUG)
    description: str = ""
    levels: list[Level] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "Template":
        seen: set[str] = set()
        for lv in self.levels:
            for c in lv.categories:
                if c.id in seen:
                    raise ValueError(f"category id {c.id!r} is used twice; ids must be unique across levels")
                seen.add(c.id)
        if len({lv.id for lv in self.levels}) != len(self.levels):
            raise ValueError("level ids must be unique")
        return self

    def categories(self) -> list[tuple[Level, Category]]:
        return [(lv, c) for lv in self.levels for c in lv.categories]

    def category(self, path: str) -> tuple[Level, Category]:
        for lv, c in self.categories():
            if path in (c.id, f"{lv.id}/{c.id}"):
                return lv, c
        raise KeyError(path)


def _node_at(node, loc: tuple):
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            nxt = node.value[key]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
    return node


def _duplicate_key(node) -> tuple[str, int] | None:
    """The first key written twice in one mapping (YAML would keep only the last), with its line."""
    todo = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, yaml.MappingNode):
            seen = set()
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        return k.value, k.start_mark.line + 1
                    seen.add(k.value)
                todo.append(v)
        elif isinstance(n, yaml.SequenceNode):
            todo.extend(n.value)
    return None


def load_template(path: str | Path) -> Template:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: template not found") from None
    except (UnicodeDecodeError, IsADirectoryError):
        raise ConfigError(f"{path}: not a YAML text file") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({yaml_problem(err)})") from None
    except (ValueError, OverflowError, RecursionError) as err:
        raise yaml_value_error(path, err) from None
    check_yaml_values(data, path)
    dup = _duplicate_key(node)
    if dup:
        raise ConfigError(f"{path}:{dup[1]}: {one_line(dup[0], 80)}: written twice in one mapping; keep one")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a template is a mapping with name, description and levels")
    try:
        return Template.model_validate(data)
    except ValidationError as err:
        e = err.errors()[0]
        loc = tuple(e.get("loc", ()))
        target = _node_at(node, loc)
        line = target.start_mark.line + 1 if target is not None else 1
        field = ".".join(one_line(p, 80) for p in loc) or "(top level)"
        msg = one_line(re.sub(r"^Value error, ", "", e.get("msg", "invalid")), 300)
        raise ConfigError(f"{path}:{line}: {field}: {msg}") from None
