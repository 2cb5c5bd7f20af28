"""Prompt templates (jinja2) live in templates/prompts/ so users can edit them without code.

Lookup order: $FAIRNAD_TEMPLATES, then the copy inside an installed wheel (fairnad/_templates),
then the source checkout's templates/ folder.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import jinja2

from fairnad.errors import ConfigError

_PKG = Path(__file__).resolve().parent


def templates_dir() -> Path:
    env = os.environ.get("FAIRNAD_TEMPLATES")
    if env:
        return Path(env)
    for cand in (_PKG / "_templates", _PKG.parent / "templates"):
        if cand.is_dir():
            return cand
    raise ConfigError("no templates folder found; set FAIRNAD_TEMPLATES to the folder holding prompts/")


def measure(value: float, objective) -> str:
    """A value of the search's objective as a prompt says it, with its unit and name: "93.10% accuracy",
    "6.92 error" (the Objective also says which way is better: `objective.goal`, `objective.better`)."""
    unit = objective.unit if objective.unit in ("", "%") else f" {objective.unit}"
    return f"{value:.2f}{unit} {objective.text}"


@lru_cache(maxsize=8)
def _env(root: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # prompts are plain text for a model, not HTML
    )
    env.filters["measure"] = measure
    return env


def render(name: str, **context) -> str:
    """Render templates/prompts/<name> (e.g. 'genius/problem.j2')."""
    root = templates_dir() / "prompts"
    try:
        return _env(str(root)).get_template(name).render(**context).strip()
    except jinja2.TemplateNotFound:
        raise ConfigError(f"prompt template {root / name} not found") from None
    except jinja2.TemplateError as err:
        line = getattr(err, "lineno", None)
        where = f" line {line}" if line else ""
        raise ConfigError(f"{root / name}{where}: {err}") from None
