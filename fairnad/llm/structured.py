"""Turning model text into schema-valid JSON: extract, repair, validate.

Servers with grammar-constrained decoding return valid JSON already; weaker paths (prompted
JSON, truncated answers, code fences, trailing prose) go through `parse_json` and `validate`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
MAX_REASON = 300  # characters of a validation reason (it goes back to the model, and into error lines)


def _close_truncated(text: str) -> str:
    """Close strings, arrays and objects left open by a truncated answer."""
    stack: list[str] = []
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    out = text + ('"' if in_str else "")
    out = re.sub(r"[,:]\s*$", "", out.rstrip())
    return out + "".join(reversed(stack))


def _candidates(text: str):
    yield text
    for m in _FENCE.finditer(text):
        yield m.group(1)
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start >= 0:
        chunk = text[start:]
        yield chunk
        for end in range(len(chunk), 0, -1):  # longest balanced prefix ending in } or ]
            if chunk[end - 1] in "}]":
                yield chunk[:end]
                break
        yield _close_truncated(chunk)


def parse_json(text: str) -> Any:
    """The first JSON value found in `text` (code fences, prose around it and truncation tolerated)."""
    for cand in _candidates(text.strip()):
        cand = re.sub(r",\s*([}\]])", r"\1", cand)  # trailing commas
        try:
            return json.loads(cand, strict=False)  # raw newlines inside strings are common
        except (json.JSONDecodeError, ValueError):
            continue
        except RecursionError:  # "[[[[..." from a model stuck in a loop
            raise ValueError("the JSON in the answer is nested too deeply") from None
    raise ValueError("no JSON value found in the answer")


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
