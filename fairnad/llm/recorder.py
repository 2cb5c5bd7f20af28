"""Recording, capping and replaying LLM calls.

`RecordingLLM` sits between a caller and any backend: it answers first from a prefix of calls
recorded earlier (so a resumed run re-walks its own history without a server), then from the
live backend; it hands every call to `sink` (the run store) and enforces per-run caps.
`ReplayBackend` answers from another run's recorded calls: a run re-executed without a server.

A call whose answer failed its schema (LLMOutputError) is part of the record like any answer: the
caller took it as a refused proposal and went on, so a replay raises the same error in its place.
Errors that paused the run (the server down, a cap, a bad request, a replay that ran out) are not:
a resumed run asks those again. Soft prompt tunings (EvoPrompting on a model fairnad can train) are
recorded too, with the tuned prompt as a file in the run folder: a replay takes the recorded tuning
instead of training, and a live backend gets the prompt in force before it answers again.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fairnad.llm.base import (
    LLM,
    Completion,
    LLMBudgetExceeded,
    LLMError,
    LLMOutputError,
    LLMUnavailable,
    Message,
    ReplayExhausted,
    ReplayMismatch,
    Usage,
    request_key,
    tuning_key,
)

CallRecord = dict[str, Any]
"""One call as stored: seq, key, purpose, messages, params, text, parsed, model, tokens, latency, error,
error_class (the exception's class name; None for calls recorded before it was stored)."""

TuningRecord = dict[str, Any]
"""One soft prompt tuning as stored: n, key, purpose, file (relative to the run folder), and what the
backend reported (texts, steps, loss_before, loss_after, trainable_parameters)."""

# The model answered and its answer was unusable: the caller consumes these (a refused proposal), so
# they are replayed in their place. Every other LLMError paused the run and is asked again on resume.
ANSWER_ERRORS: dict[str, type[LLMError]] = {"LLMOutputError": LLMOutputError}
SOFT_PROMPTS = "soft_prompts"  # the folder, in a run folder, of its tuned soft prompts


def answer_error(rec: CallRecord) -> type[LLMError] | None:
    """The error class a replay of `rec` raises: its answer failed (ANSWER_ERRORS); else None."""
    if not rec.get("error"):
        return None
    name = rec.get("error_class") or str(rec["error"]).split(":", 1)[0]  # (older records: the text's prefix)
    return ANSWER_ERRORS.get(name)


def replayable(records: Sequence[CallRecord]) -> list[CallRecord]:
    """The calls a replay answers, in order: every answer, failed ones included; not the calls whose
    error paused the run (they are asked again). A failed answer recorded before `error_class` was stored
    whose request was asked again next (a resume of that time re-asked it) counts once, as the re-ask."""
    out = []
    for i, rec in enumerate(records):
        if rec.get("error"):
            if answer_error(rec) is None:
                continue
            if rec.get("error_class") is None:
                later = next((r for r in records[i + 1 :] if not r.get("error") or answer_error(r)), None)
                if later is not None and later["key"] == rec["key"]:
                    continue
        out.append(rec)
    return out


def _raise_recorded(rec: CallRecord) -> None:
    """Raise the error `rec` recorded, with its message, when it has one."""
    cls = answer_error(rec)
    if cls is not None:
        raise cls(str(rec["error"]).split(": ", 1)[-1])


def _tuning_row(rec: TuningRecord) -> TuningRecord:
    return {k: v for k, v in rec.items() if k not in ("time", "kind")}


def _copy_file(src: Path, dst: Path) -> None:
    """Copy whole or not at all (a kill mid-copy leaves no half file under the final name); a disk that
    refuses pauses the run, as a backend that cannot write its prompt does."""
    part = dst.with_name(dst.name + ".part")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, part)
        os.replace(part, dst)
    except OSError as err:
        raise LLMUnavailable(f"{dst}: cannot write the soft prompt ({err.strerror or err})") from None


class RecordingLLM:
    def __init__(
        self,
        live: LLM | None,
        *,
        sink: Callable[[CallRecord], None] | None = None,
        recorded: Sequence[CallRecord] = (),
        max_calls: int | None = None,
        max_tokens: int | None = None,
        source: str = "the recorded run",
        cache: Sequence[CallRecord] = (),
        tunings: Sequence[TuningRecord] = (),
        tuning_sink: Callable[[TuningRecord], Any] | None = None,
        folder: str | Path | None = None,
        note: str = "",
    ) -> None:
        self.live = live
        # answers by request key, in any order (knowledge builds: the same prompt is never asked twice)
        self._cache = {r["key"]: r for r in cache if not r.get("error")}
        self.cache_hits = 0
        self.sink = sink
        self._recorded = replayable(recorded)
        self._pos = 0
        self.note = note  # said after a mismatch with the record (e.g. which version recorded it)
        # soft prompt tunings: replayed in order like calls; the prompt in force goes to the live backend
        # (from its file in `folder`) before the backend answers or trains again
        self._tunings = [t for t in tunings if t.get("key")]
        self._tune_pos = 0
        self.tuning_sink = tuning_sink
        self.folder = Path(folder) if folder is not None else None
        self._prompt: TuningRecord | None = None  # the soft prompt in force
        self._prompt_live = True  # the live backend holds it (or there is none)
        self._tunings_recorded = len(self._tunings)
        self.prompts_loaded: list[str] = []
        self.max_calls = max_calls
        self.max_tokens = max_tokens
        self.source = source
        self.calls = 0
        self.usage = Usage()
        self.latency = 0.0
        self._lock = threading.Lock()
        for r in self._recorded:  # replayed calls count towards the caps, as they did originally
            self.calls += 1
            self.usage.tokens_in += r.get("tokens_in") or 0
            self.usage.tokens_out += r.get("tokens_out") or 0
            self.latency += r.get("latency") or 0.0
        self._replayed_calls = self.calls
        self.trail: list[int | None] = []  # seq of every answered call, in order (None: the sink gave none)

    def mark(self) -> int:
        """A position in the trail: `since(mark)` lists the calls answered after it."""
        return len(self.trail)

    def since(self, mark: int) -> list[int]:
        """The stored seq of each call answered since `mark`: what made a proposal."""
        return [s for s in self.trail[mark:] if s is not None]

    @property
    def replaying(self) -> bool:
        return self._pos < len(self._recorded)

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
        key = request_key(messages, temperature, schema, max_tokens, seed, stop)
        with self._lock:
            if self._pos < len(self._recorded):
                rec = self._recorded[self._pos]
                if rec["key"] != key:
                    raise ReplayMismatch(
                        f"call {self._pos + 1} differs from call {rec.get('seq', self._pos + 1)} of {self.source} "
                        f"({purpose or 'unnamed'} vs {rec.get('purpose') or 'unnamed'}): the run's config, "
                        f"code or data changed since it was recorded{self.note}"
                    )
                self._pos += 1
                _raise_recorded(rec)  # a failed answer fails again (not in the trail: it made no proposal)
                self.trail.append(rec.get("seq"))
                return _completion(rec)
            hit = self._cache.get(key)
            if hit is not None:
                self.cache_hits += 1
                seq = None
                if self.sink is not None:
                    seq = self.sink({**hit, "tokens_in": 0, "tokens_out": 0, "latency": 0.0, "replayed_from": "cache",
                                     "created": time.time()})  # fmt: skip
                self.trail.append(seq)
                return _completion(hit)
            if self.live is None:
                if self._cache:
                    raise ReplayExhausted(
                        f"{self.source} recorded no answer to this {purpose or 'request'}; replay can only re-ask "
                        "what was asked before"
                    )
                if not self._recorded:
                    raise ReplayExhausted(f"{self.source} recorded no LLM calls, so there is nothing to replay; run "
                                          "with --llm embedded or a server address instead")  # fmt: skip
                raise ReplayExhausted(f"{self.source} has no live backend behind its {len(self._recorded)} calls, "
                                      "and this call was not among them; run with --llm embedded or a server address")  # fmt: skip
            if self.max_calls is not None and self.calls >= self.max_calls:
                raise LLMBudgetExceeded(f"the run reached its cap of {self.max_calls} LLM calls (llm.max_calls)")
            if self.max_tokens is not None and self.usage.total >= self.max_tokens:
                raise LLMBudgetExceeded(f"the run reached its cap of {self.max_tokens} LLM tokens (llm.max_tokens)")
            self._sync_prompt()
        started = time.time()
        error = None
        try:
            extra = {"stop": stop} if stop else {}
            out = self.live.complete(
                messages, temperature=temperature, schema=schema, max_tokens=max_tokens, seed=seed, purpose=purpose,
                **extra,
            )  # fmt: skip
        except LLMError as err:
            error = err
            out = Completion(text="")
        with self._lock:
            self.calls += 1
            self.usage.tokens_in += out.usage.tokens_in
            self.usage.tokens_out += out.usage.tokens_out
            self.latency += out.latency
            record: CallRecord = {
                "key": key,
                "purpose": purpose,
                "messages": messages,
                "params": {"temperature": temperature, "schema": schema, "max_tokens": max_tokens, "seed": seed,
                           **({"stop": stop} if stop else {})},
                "text": out.text,
                "parsed": out.parsed,
                "model": out.model,
                "tokens_in": out.usage.tokens_in,
                "tokens_out": out.usage.tokens_out,
                "latency": out.latency,
                "finish_reason": out.finish_reason,
                "attempts": out.attempts,
                "error": f"{type(error).__name__}: {error}" if error else None,
                "error_class": type(error).__name__ if error else None,
                "created": started,
                "replayed_from": getattr(self.live, "source", None),
            }
            seq = self.sink(record) if self.sink is not None else None
            if error is None:
                self.trail.append(seq)
        if error is not None:
            raise error
        return out

    # -- soft prompt tuning -------------------------------------------------------------------
    def tune_prompt(self, texts: list[str], *, purpose: str = "", **kw) -> TuningRecord | None:
        """Soft prompt tuning on `texts` (`kw`: the backend's settings, e.g. steps, seed): the recorded
        tuning when the run made it before (nothing is trained), else the live backend's when it can
        be trained, stored with the tuned prompt as a file (`tuning_sink`, `folder`); None when the
        backend cannot be trained (a server or API)."""
        key = tuning_key(texts, kw)
        with self._lock:
            if self._tune_pos < len(self._tunings):
                rec = self._tunings[self._tune_pos]
                if rec["key"] != key:
                    n = self._tune_pos + 1
                    raise ReplayMismatch(
                        f"soft prompt tuning {n} differs from tuning {rec.get('n', n)} of {self.source}: the run's "
                        f"config, code or data changed since it was recorded{self.note}"
                    )
                self._tune_pos += 1
                self._prompt, self._prompt_live = rec, False
                return _tuning_row(rec)
            fn = getattr(self.live, "tune_prompt", None)
            if fn is None:
                return None
            self._sync_prompt()  # training goes on from the prompt in force
            row = fn(texts, **kw)
            if row is None:
                return None
            n = self._tune_pos + 1
            record: TuningRecord = {**row, "n": n, "key": key, "purpose": purpose, "file": None}
            save = getattr(self.live, "save_prompt", None)
            if self.folder is not None and save is not None:
                record["file"] = f"{SOFT_PROMPTS}/{n:03d}.safetensors"
                save(self.folder / record["file"])
            self._tunings.append(record)
            self._tune_pos += 1
            self._prompt, self._prompt_live = record, True
            if self.tuning_sink is not None:
                self.tuning_sink(record)
        return record

    def _sync_prompt(self) -> None:
        """Before the live backend answers or trains: the soft prompt in force, when it was replayed
        from the record, is loaded into it from its file (held lock)."""
        rec = self._prompt
        if rec is None or self._prompt_live:
            return
        load = getattr(self.live, "load_prompt", None)
        if load is not None and rec.get("file"):
            path = (self.folder or Path(".")) / rec["file"]
            if not path.is_file():
                raise ReplayExhausted(f"{path}: the soft prompt of tuning {rec.get('n')} that {self.source} recorded "
                                      "is missing; the run cannot go on with the model it tuned")  # fmt: skip
            if load(path):
                self.prompts_loaded.append(rec["file"])
        self._prompt_live = True

    def stats(self) -> dict[str, Any]:
        out = {
            "calls": self.calls,
            "tokens_in": self.usage.tokens_in,
            "tokens_out": self.usage.tokens_out,
            "seconds": round(self.latency, 3),
            "replayed": self._replayed_calls,
            "cached": self.cache_hits,
        }
        if self._tunings:
            out["tunings"] = len(self._tunings)
            out["tunings_replayed"] = min(self._tune_pos, self._tunings_recorded)
        if self.prompts_loaded:
            out["prompts_loaded"] = list(self.prompts_loaded)
        return out


def _completion(rec: CallRecord) -> Completion:
    return Completion(
        text=rec["text"],
        parsed=rec.get("parsed"),
        usage=Usage(rec.get("tokens_in") or 0, rec.get("tokens_out") or 0),
        latency=rec.get("latency") or 0.0,
        model=rec.get("model") or "",
        finish_reason=rec.get("finish_reason"),
    )


class ReplayBackend:
    """A backend that answers, in order, the calls another run recorded (no server needed).

    Each request must hash to the recorded one: a replay that asks something else stops with
    a clear error instead of silently diverging. A failed answer fails again (ANSWER_ERRORS). The
    run's soft prompt tunings (`tunings`, their files in `folder`) are answered the same way, and
    `save_prompt` copies the recorded prompt into the replaying run's folder."""

    def __init__(self, recorded: Sequence[CallRecord], source: str, start: int = 0, *,
                 tunings: Sequence[TuningRecord] = (), tuning_start: int = 0,
                 folder: str | Path | None = None) -> None:  # fmt: skip
        self._calls = replayable(recorded)
        self._pos = start
        self.source = source
        self._lock = threading.Lock()
        self._tunings = [t for t in tunings if t.get("key")]
        self._tune_pos = tuning_start
        self._tuned: TuningRecord | None = None
        self.folder = Path(folder) if folder is not None else Path(source)

    def complete(self, messages, *, temperature=0.0, schema=None, max_tokens=None, seed=None, purpose="", stop=None):
        key = request_key(messages, temperature, schema, max_tokens, seed, stop)
        with self._lock:
            if self._pos >= len(self._calls):
                raise ReplayExhausted(
                    f"{self.source} recorded {len(self._calls)} LLM calls and this run asks for more; "
                    "replay can only re-execute what was recorded"
                )
            rec = self._calls[self._pos]
            if rec["key"] != key:
                raise ReplayExhausted(
                    f"call {self._pos + 1} ({purpose or 'unnamed'}) differs from the one {self.source} recorded; "
                    "the config, code or data changed since it was recorded"
                )
            self._pos += 1
        _raise_recorded(rec)
        return _completion(rec)

    def tune_prompt(self, texts: list[str], **kw) -> TuningRecord | None:
        if not self._tunings:
            return None  # the recorded run tuned nothing (its backend could not be trained)
        key = tuning_key(texts, kw)
        with self._lock:
            if self._tune_pos >= len(self._tunings):
                raise ReplayExhausted(
                    f"{self.source} recorded {len(self._tunings)} soft prompt tunings and this run asks for more; "
                    "replay can only re-execute what was recorded"
                )
            rec = self._tunings[self._tune_pos]
            if rec["key"] != key:
                raise ReplayExhausted(
                    f"soft prompt tuning {self._tune_pos + 1} differs from the one {self.source} recorded; "
                    "the config, code or data changed since it was recorded"
                )
            self._tune_pos += 1
            self._tuned = rec
        return {k: v for k, v in _tuning_row(rec).items() if k not in ("n", "key", "purpose", "file")}

    def save_prompt(self, path: str | Path) -> None:
        """The soft prompt of the tuning just replayed, copied to `path`."""
        rec = self._tuned
        src = self.folder / rec["file"] if rec is not None and rec.get("file") else None
        if src is None or not src.is_file():
            raise ReplayExhausted(f"{src or self.source}: the recorded soft prompt is missing; replay needs the "
                                  "run folder as it was recorded")  # fmt: skip
        _copy_file(src, Path(path))
