"""An embedded model (fairnad/llm/models.py: Qwen2.5-Coder-1.5B by default, or any GGUF file) served by
llama-cpp-python's OpenAI-compatible server on 127.0.0.1, started and stopped by fairnad.

The default therefore takes exactly the HTTP path a user's own server takes. The server dies
with its parent (PR_SET_PDEATHSIG) so a `kill -9` of fairnad leaves no orphan behind.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from fairnad.llm.base import LLMUnavailable

from fairnad.llm import models


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# the server's defaults, which the run config (`llm.embedded_*`) takes as its own: a server built
# directly (tests, benchmarks) runs as a user's run does. No drafting by default: drafting needs every
# prompt token's logits kept, and without them whole-file code answers came 23% faster in half the
# memory (1.5B, 2 threads, 6 answers of ~600 tokens: 209 -> 160 s, 8.2 -> 4.4 GB; benchmarks/llm_memory.py)
DEFAULT_CTX, DEFAULT_CACHE_MB, DEFAULT_DRAFT = 8192, 256, 0
# seconds per request to the embedded model unless llm.timeout says otherwise: it runs on the CPU, where
# a 2,000-token prompt and a 600-token answer of the 1.5B model take ~3 min on one idle core and several
# times that beside other work (120 s, a server's default, timed out the tabular agent four times over
# in CI; the benchmarks of docs/performance.md ran with 900)
EMBEDDED_TIMEOUT_S = 900.0


class EmbeddedServer:
    """A llama-cpp-python server process on a free loopback port. Use as a context manager."""

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        n_ctx: int = DEFAULT_CTX,
        threads: int | None = None,
        cache_mb: int = DEFAULT_CACHE_MB,
        startup_timeout: float = 120.0,
        log_path: str | Path | None = None,
        draft_tokens: int = DEFAULT_DRAFT,
        logits_all: bool = False,
    ) -> None:
        # a catalogue name (default: models.DEFAULT_MODEL) or a .gguf path; checked before anything starts
        self.model_path = models.resolve(str(model) if model else None)
        self.alias = models.name_for(self.model_path)  # the model name the server answers to
        self.n_ctx = n_ctx
        # llama.cpp keeps one context: prompts that alternate (an idea prompt, then an agent's) would
        # evaluate their shared text afresh each time. The RAM cache keeps recent prompt states and
        # resumes from the longest matching one: a 1,300-token prompt alternating with another took
        # 24 s a call without it and 3 s with it (2 cores, Qwen2.5-Coder-1.5B).
        self.cache_mb = cache_mb
        # llama.cpp's threads spin while they wait: more threads than free cores (or two servers sharing
        # cores) slows everything down badly, and small models gain little past 4 threads.
        self.threads = threads or int(os.environ.get("FAIRNAD_LLM_THREADS", 0)) or max(1, min(4, os.cpu_count() or 1))
        # prompt-lookup decoding: up to N tokens proposed from the text so far (the prompt holds the parent
        # a code answer mostly copies) and checked in one batch; 0 turns it off
        self.draft_tokens = draft_tokens
        # llama-cpp-python's server keeps every prompt token's logits by default (logits_all): a row of
        # vocabulary floats per token (0.6 MB for Qwen), copied again into each cached prompt state.
        # Drafting needs them (and turns them on); without it they cost memory and prompt speed: 1.5B,
        # drafting off, 4 calls: 5.7 -> 3.7 GB peak, 166 -> 114 s (benchmarks/llm_memory.py). The memory
        # check counts them.
        self.logits_all = draft_tokens > 0 or logits_all
        models.check_memory(self.model_path, n_ctx, cache_mb, self.logits_all)
        self.startup_timeout = startup_timeout
        self.log_path = Path(log_path) if log_path else Path(tempfile.gettempdir()) / f"fairnad-llm-{os.getpid()}.log"
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("embedded server not started")
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "EmbeddedServer":
        with self._lock:
            if self._proc is not None:
                return self
            if importlib.util.find_spec("llama_cpp") is None:
                raise LLMUnavailable(
                    "llama-cpp-python is not installed: run scripts/setup.sh (or "
                    "`pip install 'llama-cpp-python[server]'`), or point --llm at your own server"
                )
            for _ in range(3):  # a port taken between probe and bind: try another
                self.port = free_port()
                cmd = [
                    sys.executable, "-m", "llama_cpp.server",
                    "--model", str(self.model_path),
                    "--model_alias", self.alias,
                    "--host", "127.0.0.1", "--port", str(self.port),
                    "--n_ctx", str(self.n_ctx),
                    "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads),
                ]  # fmt: skip
                if self.draft_tokens > 0:
                    cmd += ["--draft_model", "prompt-lookup-decoding", "--draft_model_num_pred_tokens", str(self.draft_tokens)]
                cmd += ["--logits_all", str(self.logits_all).lower()]
                if self.cache_mb > 0:
                    cmd += ["--cache", "true", "--cache_type", "ram", "--cache_size", str(self.cache_mb * 2**20)]
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                log = open(self.log_path, "ab")
                env = {**os.environ, "PYTHONUNBUFFERED": "1"}
                self._proc = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent, env=env,
                )  # fmt: skip
                log.close()
                if self._wait_ready():
                    return self
                self._kill()
            raise LLMUnavailable(
                f"the embedded LLM server did not start within {self.startup_timeout:.0f}s; "
                f"see {self.log_path}: {self._log_tail()}"
            )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        url = f"{self.base_url}/models"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                if b"address already in use" in self.log_path.read_bytes()[-4000:].lower():
                    return False
                raise LLMUnavailable(
                    f"the embedded LLM server exited with code {self._proc.returncode}; "
                    f"see {self.log_path}: {self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.1)  # polling a child process's readiness, not a test delay
        return False

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
            return lines[-1][:300] if lines else "(empty log)"
        except OSError:
            return "(no log)"

    def _kill(self) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGTERM)
            self._proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait()
        self._proc = None

    def stop(self) -> None:
        with self._lock:
            self._kill()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> "EmbeddedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
