"""Does the embedded model choose well among FairNAD's one-option changes on a table? (docs/performance.md,
"The 1.5B model as chooser")

FairNAD runs on a table with a stand-in that always takes the first change (the evidence rule, as
`--llm none` does) collect the choice prompts exactly as the model would see them, with the true
accuracy of every listed child from the table. Then the real embedded server answers each prompt.
Reported: how often each chooser (the model, the evidence rule, uniform) takes the best child, the
mean accuracy of the children it takes, and where the model's answers fall in the list.

    python benchmarks/table_choice.py [--benchmark nas-bench-macro] [--seeds 8] [--per-run 5]
                                      [--model qwen2.5-coder-1.5b] [--rule evidence|sampled]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from fairnad.config import SearchConfig
from fairnad.lifecycle import make_problem
from fairnad.llm import OpenAICompatible, RecordingLLM
from fairnad.llm.base import Completion, Usage
from fairnad.llm.embedded import EmbeddedServer
from fairnad.search import fairnad as fairnad_strategy
from fairnad.search.base import create_strategy
from fairnad.search.study import Study
from fairnad.store import RunStore


class TakeFirst:
    """Answers every choice with 1 and keeps the prompt, with the listed children's true accuracies."""

    def __init__(self, sink: list, listed: dict) -> None:
        self.sink, self.listed = sink, listed

    def complete(self, messages, *, schema=None, **kw) -> Completion:
        self.sink.append({"messages": messages, "schema": schema, **self.listed})
        a = {"rationale": "-", "choice": 1}
        return Completion(text=json.dumps(a), parsed=a, usage=Usage(1, 1), latency=0.0, model="take-first")


def collect(benchmark: str, seeds: int, per_run: int, rule: str, budget: int) -> list[dict]:
    listed: dict = {}
    original = fairnad_strategy.FairNAD._llm_choice

    def spy(self, study, parent, views, *rest):  # the listed children's accuracies, in the order shown
        listed["accs"] = [float(study.problem.bench.lookup(v["child"])["accuracy"]) for v in views]
        return original(self, study, parent, views, *rest)

    fairnad_strategy.FairNAD._llm_choice = spy
    prompts: list[dict] = []
    try:
        for seed in range(seeds):
            got: list[dict] = []
            problem = make_problem(SearchConfig(benchmark=benchmark))
            store = RunStore.create(Path(tempfile.mkdtemp()) / "run", {"benchmark": benchmark})
            study = Study(problem=problem, store=store, budget=budget, seed=seed,
                          llm=RecordingLLM(TakeFirst(got, listed), sink=store.add_llm_call))  # fmt: skip
            study.optimize(create_strategy("fairnad", {"table_rule": rule}))
            pick = np.random.default_rng(seed).choice(len(got), size=min(per_run, len(got)), replace=False)
            prompts += [got[int(i)] for i in sorted(pick)]
    finally:
        fairnad_strategy.FairNAD._llm_choice = original
    return prompts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--benchmark", default="nas-bench-macro")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--per-run", type=int, default=5, help="prompts kept from each run, drawn uniformly")
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--rule", default="evidence", choices=["evidence", "sampled"], help="the order changes are listed in")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--out", default="runs/table-choice.json")
    args = ap.parse_args()
    prompts = collect(args.benchmark, args.seeds, args.per_run, args.rule, args.budget)
    t0 = time.time()
    with EmbeddedServer(args.model) as server:
        llm = OpenAICompatible(server.base_url, server.alias, structured="json_object_schema", timeout=900)
        for i, p in enumerate(prompts):
            out = llm.complete(p["messages"], schema=p["schema"], temperature=args.temperature, max_tokens=120, seed=i)
            p["model"] = int((out.parsed or {}).get("choice") or 0)
            print(f"{i + 1}/{len(prompts)}: chose {p['model']} of {len(p['accs'])} ({time.time() - t0:.0f} s)", flush=True)
    ok = [p for p in prompts if 1 <= p["model"] <= len(p["accs"])]
    best = [int(np.argmax(p["accs"])) + 1 for p in ok]

    def figures(pick) -> dict:
        return {"takes_best": float(np.mean([pick(p) == b for p, b in zip(ok, best)])),
                "mean_accuracy": float(np.mean([p["accs"][pick(p) - 1] for p in ok]))}  # fmt: skip

    result = {
        "benchmark": args.benchmark, "rule": args.rule, "model": args.model, "prompts": len(prompts),
        "answered": len(ok), "seconds_per_prompt": (time.time() - t0) / max(1, len(prompts)),
        "model_choice": figures(lambda p: p["model"]), "first_listed": figures(lambda p: 1),
        "uniform": {"takes_best": float(np.mean([1 / len(p["accs"]) for p in ok])),
                    "mean_accuracy": float(np.mean([np.mean(p["accs"]) for p in ok]))},
        "best_listed_mean_accuracy": float(np.mean([max(p["accs"]) for p in ok])),
        "model_positions": np.bincount([p["model"] for p in ok], minlength=6)[1:].tolist(),
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({**result, "prompts_answered": [
        {"accs": p["accs"], "model": p["model"]} for p in prompts]}, indent=1))  # fmt: skip
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
