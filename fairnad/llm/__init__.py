"""The language-model layer: one `complete()` interface over every backend (imports nothing of ours)."""

from fairnad.llm.base import (
    LLM,
    Completion,
    LLMBadRequest,
    LLMBudgetExceeded,
    LLMError,
    LLMOutputError,
    LLMUnavailable,
    Message,
    ReplayExhausted,
    ReplayMismatch,
    Usage,
)
from fairnad.llm.embedded import EmbeddedServer
from fairnad.llm.openai_compat import OpenAICompatible
from fairnad.llm.recorder import RecordingLLM, ReplayBackend

__all__ = [
    "LLM", "Completion", "EmbeddedServer", "LLMBadRequest", "LLMBudgetExceeded", "LLMError",
    "LLMOutputError", "LLMUnavailable", "Message", "OpenAICompatible", "RecordingLLM",
    "ReplayBackend", "ReplayExhausted", "ReplayMismatch", "Usage",
]  # fmt: skip
