"""Builds and shares live backends: one embedded server or client per distinct endpoint.

Backends start lazily, on the first call that actually needs them, so a resumed or replayed
run that is answered from recordings never starts a server. `close()` stops what was started.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from fairnad.llm.base import Completion, LLMBadRequest, LLMUnavailable, Message
from fairnad.llm import models
from fairnad.llm.embedded import EMBEDDED_TIMEOUT_S, EmbeddedServer
from fairnad.llm.openai_compat import SERVER_TIMEOUT_S, OpenAICompatible


class LazyBackend:
    """Defers building the real backend to the first `complete`."""

    def __init__(self, provider: "BackendProvider", settings: dict[str, Any]) -> None:
        self._provider = provider
        self._settings = settings

    def complete(self, messages: list[Message], **kw) -> Completion:
        return self._provider.backend(self._settings).complete(messages, **kw)

    @property
    def trainable(self) -> bool:
        """Whether the backend is a model fairnad can train (known from the settings: nothing is started)."""
        return self._settings.get("backend") == "transformers"

    def tune_prompt(self, texts: list[str], **kw):
        """Soft prompt tuning when the backend is a model fairnad can train, else None (a server or API
        is not started to find out)."""
        return self._provider.backend(self._settings).tune_prompt(texts, **kw) if self.trainable else None

    def save_prompt(self, path) -> None:
        if self.trainable:
            self._provider.backend(self._settings).save_prompt(path)

    def load_prompt(self, path) -> bool:
        """The soft prompt in `path` into the model (started now); False when the backend cannot hold one."""
        return bool(self.trainable and self._provider.backend(self._settings).load_prompt(path))


class EmbeddedBackend:
    """The embedded server and its client; a server that died (OOM killer, a stray kill) is
    started again once per call before the error reaches the run."""

    def __init__(self, server: EmbeddedServer, client_kwargs: dict[str, Any]) -> None:
        self.server = server
        self._kwargs = client_kwargs
        self._lock = threading.Lock()
        self.restarts = 0
        self.client = OpenAICompatible(server.base_url, server.alias, **client_kwargs)
        self.used = {"tokens_in": 0, "tokens_out": 0, "seconds": 0.0, "calls": 0}  # for `fairnad llms`

    def complete(self, messages: list[Message], **kw) -> Completion:
        out = self._complete(messages, **kw)
        with self._lock:
            self.used["calls"] += 1
            self.used["tokens_in"] += out.usage.tokens_in
            self.used["tokens_out"] += out.usage.tokens_out
            self.used["seconds"] += out.latency
        return out

    def record_speed(self) -> None:
        models.record_speed(self.server.alias, **self.used)

    def _complete(self, messages: list[Message], **kw) -> Completion:
        try:
            return self.client.complete(messages, **kw)
        except LLMUnavailable:
            if self.server.running:
                raise
            with self._lock:
                if not self.server.running:
                    self.server.stop()
                    self.server.start()
                    self.restarts += 1
                    self.client = OpenAICompatible(self.server.base_url, self.server.alias, **self._kwargs)
            return self.client.complete(messages, **kw)


class BackendProvider:
    """settings (a plain dict: backend, base_url, model, ...) -> a shared live backend."""

    def __init__(self, log_dir: str | Path | None = None) -> None:
        self.log_dir = Path(log_dir) if log_dir else None
        self._backends: dict[tuple, OpenAICompatible | EmbeddedBackend] = {}
        self._servers: list[EmbeddedServer] = []
        self._lock = threading.Lock()

    def lazy(self, settings: dict[str, Any]) -> LazyBackend:
        return LazyBackend(self, settings)

    def backend(self, s: dict[str, Any]) -> OpenAICompatible | EmbeddedBackend:
        # one backend per endpoint (and per replica: bench can run several embedded servers)
        key = tuple(sorted((k, str(v)) for k, v in s.items() if k not in ("max_calls", "max_tokens", "replay_from")))
        with self._lock:
            if key not in self._backends:
                self._backends[key] = self._build(s)
            return self._backends[key]

    def _build(self, s: dict[str, Any]) -> OpenAICompatible | EmbeddedBackend:
        default_timeout = EMBEDDED_TIMEOUT_S if s["backend"] == "embedded" else SERVER_TIMEOUT_S
        common = dict(timeout=s.get("timeout") or default_timeout, max_retries=s["max_retries"])
        if s["backend"] == "embedded":
            suffix = f"-{s['replica']}" if "replica" in s else ""
            log = self.log_dir / f"llm-server{suffix}.log" if self.log_dir else None
            server = EmbeddedServer(
                s.get("embedded_model"), n_ctx=s["embedded_ctx"], threads=s.get("embedded_threads"),
                cache_mb=s["embedded_cache_mb"], log_path=log, draft_tokens=s["embedded_draft"],
            ).start()
            self._servers.append(server)
            structured = "json_object_schema" if s["structured"] == "auto" else s["structured"]
            return EmbeddedBackend(server, {"structured": structured, **common})
        if s["backend"] == "transformers":
            from fairnad.llm.local_hf import LocalTransformers

            return LocalTransformers(s.get("hf_model"), threads=s.get("embedded_threads"))
        if s["backend"] == "openai":
            if not s.get("base_url"):
                raise LLMBadRequest("llm.base_url is not set: pass --llm http://HOST:PORT/v1")
            key = os.environ.get(s["api_key_env"]) if s.get("api_key_env") else None
            return OpenAICompatible(s["base_url"], s.get("model"), key, structured=s["structured"], **common)
        raise LLMBadRequest(f"llm.backend {s['backend']!r} has no live endpoint")

    def close(self) -> None:
        with self._lock:
            for backend in self._backends.values():
                if isinstance(backend, EmbeddedBackend):
                    backend.record_speed()
            for server in self._servers:
                server.stop()
            self._servers.clear()
            self._backends.clear()

    def __enter__(self) -> "BackendProvider":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
