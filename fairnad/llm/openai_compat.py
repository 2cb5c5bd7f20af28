"""Client for any OpenAI-compatible chat endpoint: OpenAI, vLLM, Ollama, llama.cpp, DashScope...

Retries with backoff on 429, 5xx and connection errors come from the `openai` SDK. Structured
output asks the server for `response_format: json_schema` first; a server that refuses it is
asked for `json_object`, then plain prompted JSON, and every answer is validated (and repaired,
then re-asked with the reason) here, so callers always get schema-valid `parsed` or an error.
"""

from __future__ import annotations

import threading
import time

from fairnad.llm.base import (
    Completion,
    LLMBadRequest,
    LLMOutputError,
    LLMUnavailable,
    Message,
    Usage,
)
from fairnad.llm.structured import check_answer, schema_instructions

# In the order `auto` tries them. `json_object_schema` is llama-cpp-python's dialect
# ({"type": "json_object", "schema": ...}), grammar-constrained like `json_schema`.
STRUCTURED_MODES = ("json_schema", "json_object_schema", "json_object", "prompt")
SERVER_TIMEOUT_S = 120.0  # seconds per request to a server (llm.timeout)


class OpenAICompatible:
    """One endpoint + model. Thread-safe: searches running in parallel share one instance."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = SERVER_TIMEOUT_S,
        max_retries: int = 4,
        structured: str = "auto",
        schema_retries: int = 2,
        default_max_tokens: int = 512,
    ) -> None:
        if structured != "auto" and structured not in STRUCTURED_MODES:
            raise ValueError(f"llm.structured must be auto or one of {STRUCTURED_MODES}, not {structured!r}")
        import openai  # here, not at the top: the SDK takes ~0.5 s to import, and most commands never call a model

        self.base_url = base_url.rstrip("/")
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=max_retries
        )
        self.max_retries = max_retries
        self._model = model
        self._modes = list(STRUCTURED_MODES) if structured == "auto" else [structured]
        self.schema_retries = schema_retries
        self.default_max_tokens = default_max_tokens
        self._lock = threading.Lock()

    # -- endpoint discovery -------------------------------------------------------------------
    @property
    def model(self) -> str:
        """The configured model, or the first one the server lists (llama.cpp, vLLM serve one)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    models = self._call(lambda: self._client.models.list())
                    ids = [m.id for m in models.data]
                    if not ids:
                        raise LLMBadRequest(f"{self.base_url} serves no models; pass one with --model")
                    self._model = ids[0]
        return self._model

    # -- the interface --------------------------------------------------------------------------
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
    ) -> Completion:
        usage = Usage()
        start = time.perf_counter()
        msgs = list(messages)
        attempts = 0
        reason = ""
        while True:
            attempts += 1
            mode = self._modes[0] if schema is not None else None
            try:
                resp = self._chat(msgs, temperature, schema, mode, max_tokens, seed, stop)
            except LLMBadRequest as err:
                if mode is not None and len(self._modes) > 1 and _about_format(str(err)):
                    with self._lock:  # the server cannot do this mode: remember and fall back
                        if self._modes and self._modes[0] == mode:
                            self._modes.pop(0)
                    attempts -= 1
                    continue
                raise
            choice = resp.choices[0]
            text = choice.message.content or ""
            if resp.usage is not None:
                usage.tokens_in += resp.usage.prompt_tokens or 0
                usage.tokens_out += resp.usage.completion_tokens or 0
            done = Completion(
                text=text,
                usage=usage,
                latency=time.perf_counter() - start,
                model=resp.model or self.model,
                finish_reason=choice.finish_reason,
                attempts=attempts,
            )
            if schema is None:
                return done
            value, reason = check_answer(text, schema)
            if not reason:
                done.parsed = value
                return done
            if attempts > self.schema_retries:
                raise LLMOutputError(
                    f"{self.model} at {self.base_url} gave no schema-valid JSON after {attempts} tries "
                    f"({reason}); last answer began: {text[:120]!r}"
                )
            msgs = msgs + [
                {"role": "assistant", "content": text},
                {
                    "role": "user",
                    "content": f"That answer is not valid ({reason}). Reply again with the JSON object only.",
                },
            ]

    # -- transport ------------------------------------------------------------------------------
    def _chat(self, msgs, temperature, schema, mode, max_tokens, seed, stop=None):
        kwargs: dict = {
            "model": self.model,
            "messages": msgs,
            "temperature": temperature,
            "max_tokens": max_tokens or self.default_max_tokens,
        }
        if seed is not None:
            kwargs["seed"] = seed
        if stop:
            kwargs["stop"] = list(stop)
        if mode == "json_schema":
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema},
            }
        elif mode == "json_object_schema":
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        elif mode in ("json_object", "prompt"):
            if mode == "json_object":
                kwargs["response_format"] = {"type": "json_object"}
            last = dict(msgs[-1])
            last["content"] = f"{last['content']}\n\n{schema_instructions(schema)}"
            kwargs["messages"] = msgs[:-1] + [last]
        return self._call(lambda: _has_choices(self._client.chat.completions.create(**kwargs)))

    def _call(self, fn):
        """One request. The SDK retries failed connections, timeouts, 429 and 5xx; an answer cut off
        mid-body, or a 200 whose body is not a completion (not JSON, no choices), is retried here."""
        import openai

        for attempt in range(self.max_retries + 1):
            try:
                return fn()
            except openai.APIConnectionError as err:
                # (by name: the SDK's HTTP library is httpx or, in newer SDKs, its fork httpx2)
                if type(err.__cause__).__name__ != "RemoteProtocolError" or attempt == self.max_retries:
                    raise self._translate(err) from err
                time.sleep(min(8.0, 0.5 * 2**attempt))
            except openai.APIError as err:
                raise self._translate(err) from err
            except (ValueError, TypeError) as err:  # json.JSONDecodeError is a ValueError
                if attempt == self.max_retries:
                    raise LLMUnavailable(
                        f"{self.base_url} answered with something that is not a completion after {self.max_retries} "
                        f"retries ({type(err).__name__}: {str(err)[:100]}); check the server or proxy"
                    ) from None
                time.sleep(min(8.0, 0.5 * 2**attempt))

    def _translate(self, err: openai.APIError) -> Exception:
        """One line for the user that names the URL and what to do."""
        import openai

        url, n = self.base_url, self.max_retries
        if isinstance(err, openai.APITimeoutError):
            return LLMUnavailable(f"{url} did not answer within the timeout after {n} retries; raise llm.timeout")
        if isinstance(err, openai.APIConnectionError):
            return LLMUnavailable(
                f"no answer from {url} after {n} retries ({err.__cause__ or err}); is the server running? "
                "Set --llm URL or use --llm embedded"
            )
        if isinstance(err, openai.APIStatusError) and "response_format" in str(err):
            # some servers answer 500, not 400, to a response_format they do not know
            return LLMBadRequest(f"{url} refused the response_format: {_short(err)}")
        if isinstance(err, openai.RateLimitError):
            # the SDK retried: earlier attempts may have failed otherwise (timeouts), only the last is known
            return LLMUnavailable(f"{url} gave up after {n} retries; the last answer was HTTP 429 (rate limited)")
        if isinstance(err, openai.InternalServerError):
            return LLMUnavailable(f"{url} gave up after {n} retries; the last answer was HTTP {err.status_code}")
        if isinstance(err, openai.AuthenticationError):
            return LLMBadRequest(f"{url} refused the API key (HTTP 401); set it in the variable llm.api_key_env names")
        if isinstance(err, openai.NotFoundError):
            return LLMBadRequest(
                f"{url} answered 404 for model {self._model!r}: check the base URL (it usually ends in /v1) and --model"
            )
        if isinstance(err, openai.APIStatusError):
            return LLMBadRequest(f"{url} refused the request (HTTP {err.status_code}): {_short(err)}")
        return LLMUnavailable(f"{url}: {_short(err)}")


def _has_choices(resp):
    if not getattr(resp, "choices", None):
        raise ValueError("the response has no choices")
    return resp


def _about_format(message: str) -> bool:
    m = message.lower()
    return "response_format" in m or "json_schema" in m or "schema" in m


def _short(err: Exception) -> str:
    return " ".join(str(err).split())[:300]
