"""Speed of the tabular track, for docs/performance.md (not a test: figures, not assertions).

Measures (1) loading each built-in benchmark, (2) the search loop's own cost per evaluation
(strategy + prompt rendering + SQLite commits + lookup) with the LLM answering instantly, and
(3) the embedded model's prompt and generation speed, read from llama.cpp's own timings.

    python benchmarks/tabular_overhead.py [--evals 2000] [--llm-calls 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fairnad.evaluate.tabular import TabularEvaluator, list_benchmarks, load_benchmark
from fairnad.llm import Completion, EmbeddedServer, OpenAICompatible, RecordingLLM, Usage
from fairnad.problem import Problem
from fairnad.search.base import create_strategy
from fairnad.search.study import Study
from fairnad.store import RunStore


class InstantLLM:
    """Answers GENIUS-shaped JSON at once, so the timing is everything but the model."""

    def __init__(self, space, seed=0):
        import numpy as np

        self.space, self.rng = space, np.random.default_rng(seed)

    def complete(self, messages, **kw):
        labels = self.space.labels(self.space.sample(self.rng))
        text = json.dumps({"architecture": labels, "rationale": "instant"})
        return Completion(text, json.loads(text), Usage(100, 20), 0.0, "instant")


def load_times() -> dict[str, float]:
    out = {}
    for name in list_benchmarks():
        code = f"import time; t=time.perf_counter(); from fairnad.evaluate.tabular import load_benchmark; " \
               f"b=load_benchmark({name!r}); b.lookup(b.keys[0]); print(time.perf_counter()-t)"  # fmt: skip
        runs = [float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(3)]
        out[name] = statistics.median(runs)
    return out


def cli_run() -> dict[str, float]:
    """A whole `fairnad search` of 3 evaluations from the shell (Python start-up and imports included):
    what every command, resume and bench run pays before it works."""
    import resource

    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "fairnad", "search", "-b", "nas-bench-macro", "-s", "random", "-n", "3",
                            "--llm", "none", "--run-dir", str(Path(tmp) / f"r{i}")], check=True, capture_output=True)  # fmt: skip
            walls.append(time.perf_counter() - t)
    return {"wall_s": statistics.median(walls), "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def loop_overhead(evals: int) -> dict[str, float]:
    out = {}
    b = load_benchmark("nb201-cifar10")
    for strategy in ("random", "regevo", "genius"):
        with tempfile.TemporaryDirectory() as tmp:
            store = RunStore.create(Path(tmp) / "run", {})
            llm = RecordingLLM(InstantLLM(b.space), sink=store.add_llm_call) if strategy == "genius" else None
            problem = Problem(kind="tabular", space=b.space, evaluator=TabularEvaluator(b), dataset="CIFAR-10",
                              domain=b.keys)  # fmt: skip
            study = Study(problem=problem, store=store, budget=evals, llm=llm)
            t = time.perf_counter()
            study.optimize(create_strategy(strategy))
            dt = time.perf_counter() - t
            out[strategy] = dt / len(study.candidates) * 1e3  # ms per proposal
            store.close()
    return out


def embedded_speed(calls: int) -> dict[str, float]:
    b = load_benchmark("nas-bench-macro")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        t = time.perf_counter()
        with EmbeddedServer("smollm2-135m", log_path=log) as server:
            startup = time.perf_counter() - t
            llm = OpenAICompatible(server.base_url, server.alias, structured="json_object_schema")
            schema = b.space.answer_schema(200)
            lat = []
            for i in range(calls):
                msgs = [{"role": "user", "content": f"Propose an architecture (try {i}) as JSON."}]
                lat.append(llm.complete(msgs, temperature=1.0, schema=schema, seed=i, max_tokens=200).latency)
        text = log.read_text()
    prompt = [float(x) for x in re.findall(r"prompt eval time =.*?([\d.]+) tokens per second", text)]
    gen = [float(x) for x in re.findall(r"\n.*?\beval time =.*?([\d.]+) tokens per second", text)]
    return {"startup_s": startup, "prompt_tok_s": statistics.median(prompt), "gen_tok_s": statistics.median(gen),
            "call_latency_s": statistics.median(lat)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--evals", type=int, default=2000)
    ap.add_argument("--llm-calls", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = {"cli_run": cli_run(), "load_s": load_times(), "ms_per_proposal": loop_overhead(a.evals), "embedded": embedded_speed(a.llm_calls)}
    if a.json:
        print(json.dumps(res, indent=1))
        return
    c = res["cli_run"]
    print(f"a 3-evaluation search from the shell: {c['wall_s']:.2f} s, peak {c['peak_rss_mb']:.0f} MB\n")
    print("| benchmark | load (ms, fresh process) |\n|---|---|")
    for k, v in res["load_s"].items():
        print(f"| {k} | {v * 1e3:.0f} |")
    print("\n| strategy | loop overhead per proposal (ms, LLM excluded) |\n|---|---|")
    for k, v in res["ms_per_proposal"].items():
        print(f"| {k} | {v:.2f} |")
    e = res["embedded"]
    print(f"\nembedded SmolLM2-135M: server start {e['startup_s']:.2f} s, prompt {e['prompt_tok_s']:.0f} tok/s, "
          f"generation {e['gen_tok_s']:.0f} tok/s, median call {e['call_latency_s']:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
