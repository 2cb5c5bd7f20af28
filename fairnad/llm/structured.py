"""Turning model text into schema-valid JSON: extract, repair, validate.

Servers with grammar-constrained decoding return valid JSON already; weaker paths (prompted
JSON, truncated answers, code fences, trailing prose) go through `parse_json` and `validate`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import json_repair
import jsonschema

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
MAX_REASON = 300  # characters of a validation reason (it goes back to the model, and into error lines)


_DECODER = json.JSONDecoder(strict=False)  # raw newlines inside strings are common


def _candidates(text: str):
    """Where a JSON value may start: the whole answer, each code fence, the first brace or bracket."""
    yield text
    for m in _FENCE.finditer(text):
        yield m.group(1).strip()
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start >= 0:
        yield text[start:]


def parse_json(text: str) -> Any:
    """The first JSON value found in `text`: as it stands (prose after it ignored), else repaired by
    json-repair (truncation, trailing commas, unquoted or single-quoted parts, code fences, prose)."""
    text = text.strip()
    try:
        for cand in _candidates(text):
            try:
                value, end = _DECODER.raw_decode(cand)
            except ValueError:
                continue
            if isinstance(value, (dict, list)) or end == len(cand):  # not the "1" of "1. I pick {...}"
                return value
        start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
        if start < 0:
            raise ValueError("no JSON value found in the answer")
        fenced = [m.group(1) for m in _FENCE.finditer(text) if "{" in m.group(1) or "[" in m.group(1)]
        chunk = (fenced[0] if fenced else text[start:]).strip()
        value = json_repair.loads(chunk)
    except RecursionError:  # "[[[[..." from a model stuck in a loop
        raise ValueError("the JSON in the answer is nested too deeply") from None
    if chunk.startswith("{") and isinstance(value, list) and value and isinstance(value[0], dict):
        value = value[0]  # several objects one after another: the first is the answer
    if value == "" or (not isinstance(value, (dict, list))):
        raise ValueError("no JSON value found in the answer")
    return value


def validate(value: Any, schema: dict) -> str | None:
    """None if `value` matches `schema`, else a one-line reason a model can act on."""
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "the answer"
        msg = " ".join(err.message.split())  # the message quotes the value: keep the reason one short line
        return f"{where}: {msg if len(msg) <= MAX_REASON else msg[: MAX_REASON - 3] + '...'}"
    except RecursionError:
        return "the answer is nested too deeply"
    return None


def check_answer(text: str, schema: dict) -> tuple[Any, str]:
    """(the parsed value, "") when `text` holds a schema-valid JSON value, else (value or None, the reason)."""
    try:
        value = parse_json(text)
    except ValueError as err:
        return None, str(err)
    return value, validate(value, schema) or ""


def schema_instructions(schema: dict) -> str:
    """Text appended to the prompt when the server cannot enforce the schema itself."""
    return (
        "Reply with one JSON object only, no prose and no code fences, matching this JSON schema:\n"
        + json.dumps(schema, indent=1)
    )
