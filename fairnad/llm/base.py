"""The one interface every language-model backend implements.

`complete(messages, temperature=..., schema=...)` returns a `Completion` whose `parsed` holds the
JSON object when a schema was given (already validated). This package imports nothing else of
fairnad's, so it can be reused or replaced on its own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}


class LLMError(Exception):
    """Base of all LLM-layer errors. `str()` is a one-line message meant for the user."""


class LLMUnavailable(LLMError):
    """The endpoint did not answer (refused, timed out, 5xx) after all retries."""


class LLMBadRequest(LLMError):
    """The endpoint refused the request (4xx other than 429): wrong model, key, or parameters."""


class LLMBudgetExceeded(LLMError):
    """A per-run cap on calls or tokens was reached."""


class LLMOutputError(LLMError):
    """The model's answer could not be turned into JSON matching the schema, even after repair and retries."""


class ReplayExhausted(LLMError):
    """A replay backend was asked for more calls than were recorded, or for a different request."""


class ReplayMismatch(ReplayExhausted):
    """A resumed run asked something else than its own record at the same position: its config, code or
    data changed since it was recorded (a resume cannot go past it; see RecordingLLM)."""


@dataclass
class Usage:
    tokens_in: int = 0
    tokens_out: int = 0

    @property
    def total(self) -> int:
        return self.tokens_in + self.tokens_out


@dataclass
class Completion:
    text: str
    parsed: Any = None
    usage: Usage = field(default_factory=Usage)
    latency: float = 0.0
    model: str = ""
    finish_reason: str | None = None
    attempts: int = 1


class LLM(Protocol):
    """What strategies and the knowledge pipeline call."""

    def complete(
        self,
        messages: list[Message],
        *,
        temperature: float = 0.0,
        schema: dict | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        purpose: str = "",
        stop: list[str] | None = None,
    ) -> Completion: ...


def request_key(
    messages: list[Message], temperature: float, schema: dict | None, max_tokens: int | None, seed: int | None,
    stop: list[str] | None = None,
) -> str:  # fmt: skip
    """A stable hash of everything that determines an answer; replay checks it call by call."""
    d = {"m": messages, "t": round(float(temperature), 6), "s": schema, "n": max_tokens, "seed": seed}
    if stop:
        d["stop"] = list(stop)
    blob = json.dumps(d, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def tuning_key(texts: list[str], params: dict[str, Any]) -> str:
    """A stable hash of a soft prompt tuning request (its texts and settings); replay checks it."""
    blob = json.dumps({"texts": list(texts), "p": params}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]
