"""Shared fixtures: a real embedded LLM server, a scripted LLM for unit logic, a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Tests run two workers on two cores: every embedded server (also those the CLI starts in a
# subprocess) and every in-process torch gets one thread. llama.cpp's threads spin at each step: a
# 2-thread server beside one busy core measured >600 s for two 150-token answers that take ~100 s with
# one thread (benchmarks/llm_speed.py beside `yes`); that is what made CI's slowest tests slow.
os.environ.setdefault("FAIRNAD_LLM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from fairnad.llm import Completion, EmbeddedServer, OpenAICompatible, Usage
from fairnad.llm.models import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parent.parent
# Plumbing tests (a run pauses, resumes, records, replays) do not depend on what the model writes, so a
# search that names no model gets SmolLM2-135M (fast). A test that claims LLM behaviour (a child trains,
# an attribute is found) names the default model, DEFAULT_MODEL (Qwen2.5-Coder-1.5B), explicitly:
# `--llm embedded:qwen2.5-coder-1.5b`, or the `architect_server` fixture.
PLUMBING_MODEL = "smollm2-135m"
os.environ.setdefault("FAIRNAD_EMBEDDED_MODEL", PLUMBING_MODEL)
ARCHITECT = DEFAULT_MODEL
SHARED = ROOT.parent / "shared"


def pytest_collection_modifyitems(items):
    """The longest tests first (a real LLM and slow, then either, then the rest), so that with
    `--maxschedchunk 1` (pyproject) the two workers take them in turn and the suite ends on short
    tests instead of one worker finishing a 10-minute test alone (63.4 -> 45.7 min: docs/performance.md,
    "The test suite")."""

    def cost(item) -> int:
        marks = {m.name for m in item.iter_markers()}
        return -2 * ("llm" in marks) - ("slow" in marks)

    items.sort(key=cost)  # stable: file order within each class, the same on every worker
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu and not cuda_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible to torch here); benchmarks/gpu_check.py runs it")
        for item in gpu:
            item.add_marker(skip)


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (asked of a child process: CUDA is not set up in the test
    process, which forks the sandboxes)."""
    probe = "import torch; print(int(torch.cuda.is_available() and torch.cuda.device_count() > 0))"
    try:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.strip() == "1"


@pytest.fixture(scope="session")
def shared_papers(tmp_path_factory) -> dict:
    """The 13 papers of ../shared/papers, parsed once for the whole run: the first worker parses them and
    pickles the documents beside both workers' temporary folders, the other reads the file (each worker
    parsed them itself before, ~170 s on a slow box, and two tests did). Empty when the folder is absent."""
    import pickle

    from filelock import FileLock

    from fairnad.ingest.pdf import parse_pdf

    folder = SHARED / "papers"
    if not folder.is_dir():
        return {}
    cache = tmp_path_factory.getbasetemp().parent / "shared-papers.pickle"  # one folder above each worker's
    with FileLock(str(cache) + ".lock"):
        if cache.is_file():
            return pickle.loads(cache.read_bytes())
        docs = {p.stem: parse_pdf(p) for p in sorted(folder.glob("*.pdf"))}
        cache.write_bytes(pickle.dumps(docs))
        return docs


@pytest.fixture(scope="session")
def embedded_server(tmp_path_factory):
    """The real SmolLM2-135M llama.cpp server on a free loopback port (one per test worker): plumbing."""
    log = tmp_path_factory.mktemp("llm") / "server.log"
    with EmbeddedServer(PLUMBING_MODEL, threads=1, log_path=log) as server:
        yield server


@pytest.fixture(scope="session")
def embedded_llm(embedded_server):
    return OpenAICompatible(embedded_server.base_url, embedded_server.alias, structured="json_object_schema", timeout=120)


@pytest.fixture(scope="module")
def architect_server(tmp_path_factory):
    """The default embedded model (Qwen2.5-Coder-1.5B) on a free loopback port: for tests that claim
    what the model does. One thread, as every server in tests (see the top of this file). Per module, not
    per session: a 1.5B server holds ~4 GB after its prompts, which an idle server kept all session."""
    log = tmp_path_factory.mktemp("llm") / "architect.log"
    with EmbeddedServer(ARCHITECT, log_path=log) as server:
        yield server


@pytest.fixture(scope="module")
def architect_llm(architect_server):
    return OpenAICompatible(architect_server.base_url, architect_server.alias, structured="json_object_schema",
                            timeout=600)  # fmt: skip


class ScriptedLLM:
    """Answers from a fixed list: makes one unit's logic deterministic. Never the only test of a feature."""

    def __init__(self, answers: list):
        self.answers = list(answers)
        self.requests: list[list[dict]] = []

    def complete(self, messages, *, temperature=0.0, schema=None, max_tokens=None, seed=None, purpose="", stop=None):
        self.requests.append(messages)
        if not self.answers:
            raise AssertionError("ScriptedLLM ran out of answers")
        a = self.answers.pop(0)
        text = a if isinstance(a, str) else json.dumps(a)
        parsed = None if isinstance(a, str) else a
        return Completion(text=text, parsed=parsed, usage=Usage(10, 5), latency=0.0, model="scripted")


class NamingLLM:
    """A scripted model for a knowledge build's naming step (knowledge/extract.py): answers each numbered
    phrase of a batch by `fn(phrase)`. Makes one unit's logic deterministic; never the only test of it."""

    def __init__(self, fn):
        self.fn, self.prompts = fn, []

    def complete(self, messages, *, temperature=0.0, schema=None, max_tokens=None, seed=None, purpose=""):
        prompt = messages[-1]["content"]
        self.prompts.append(prompt)
        items = []
        for line in prompt.splitlines():
            if line.startswith("[") and "]" in line:
                n = int(line[1 : line.index("]")])
                phrase = line[line.index('"') + 1 : line.index('":')]
                items.append({"n": n, **self.fn(phrase)})
        value = {"ideas": items}
        return Completion(json.dumps(value), value, Usage(50, 20), 0.0, "scripted")


@pytest.fixture
def run_cli(tmp_path):
    """Run `python -m fairnad ...` as a user would, in a fresh working directory."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None):
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "fairnad", *args],
            cwd=cwd or tmp_path, capture_output=True, text=True, timeout=timeout, env=full_env,
        )  # fmt: skip

    return run


def record_reliability(section: str, facts: dict) -> None:
    """Add figures to $FAIRNAD_RELIABILITY_OUT (JSON), when set: benchmarks/reliability.py collects
    what the reliability tests tried (fuzzed inputs, storage faults) for docs/reliability.md."""
    out = os.environ.get("FAIRNAD_RELIABILITY_OUT")
    if not out or not facts:
        return
    path = Path(out)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.setdefault(section, {}).update(dict(sorted(facts.items())))
    path.write_text(json.dumps(data, indent=1) + "\n")
