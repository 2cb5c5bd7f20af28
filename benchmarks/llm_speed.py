"""Tokens per second of each embedded model on this machine (docs/performance.md, `fairnad llms`).

One server at a time (llama.cpp's threads spin: two servers on two cores slow each other ~10x). Each
model answers the same code prompt (a FairNAD idea mutation of the MNIST-1D reference CNN) a few
times; the figures are prompt and generation speed from the server's usage and the wall time of
each call. The last figure per model is also what `fairnad llms` shows.

    python benchmarks/llm_speed.py [--models qwen2.5-coder-1.5b,qwen2.5-coder-0.5b,smollm2-135m] [--threads 2] [--draft N]
"""

from __future__ import annotations

import argparse
import time

from fairnad.evaluate.datasets import dataset_spec
from fairnad.llm import OpenAICompatible, models
from fairnad.llm.embedded import EmbeddedServer
from fairnad.prompts import render
from fairnad.search.ideas import Idea
from fairnad.space.reference import reference


def idea_prompt(form: str = "definitions", parent_code: str | None = None, idea: Idea | None = None) -> str:
    """FairNAD's idea prompt on MNIST-1D, by default for the reference CNN and squeeze-and-excitation: a
    typical code request (~750 tokens), the same in every benchmark of the embedded server."""
    spec = dataset_spec("mnist1d")
    contract = render("contract.j2", dataset="mnist1d", input_shape=list(spec.input_shape), num_classes=spec.num_classes,
                      max_params=1_500_000)  # fmt: skip
    code = parent_code or reference("mnist1d-cnn").source()
    parent = {"code": code, "accuracy": 95.0, "cost_text": "0.037M parameters", "curve": "", "shapes": ""}
    idea = idea or Idea("se", "squeeze-and-excitation", "attention", "Attention mechanisms")
    return render("fairnad/idea_open.j2", contract=contract, parent=parent, idea=idea, form=form,
                  fb={"front": [], "failures": [], "ideas": [], "cost": "params"})  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(models.CATALOGUE))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=300)
    ap.add_argument("--draft", type=int, default=None, help="prompt-lookup drafting, tokens (default: llm.embedded_draft; 0 off)")
    args = ap.parse_args()
    prompt = idea_prompt()
    print("| model | threads | server start s | prompt tokens | prompt tok/s | out tok/s | all tok/s (in + out per s) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        t0 = time.time()
        draft = {} if args.draft is None else {"draft_tokens": args.draft}
        with EmbeddedServer(name, threads=args.threads, **draft) as server:
            start = time.time() - t0
            llm = OpenAICompatible(server.base_url, server.alias, timeout=900)
            llm.complete([{"role": "user", "content": "Say hi."}], max_tokens=4)  # pages the weights in
            tin = tout = 0
            secs = 0.0
            for i in range(args.calls):
                # a new seed each call and a fresh prompt prefix: no prompt-cache hit flatters the figure
                out = llm.complete([{"role": "user", "content": f"Request {i}.\n{prompt}"}], temperature=0.7,
                                   max_tokens=args.max_tokens, seed=i)  # fmt: skip
                tin += out.usage.tokens_in
                tout += out.usage.tokens_out
                secs += out.latency
            log = server.log_path.read_text(errors="replace")
        pe = [ln for ln in log.splitlines() if "prompt eval time" in ln][-args.calls:]
        ev = [ln for ln in log.splitlines() if " eval time" in ln and "prompt" not in ln][-args.calls:]
        p_tps = sum(float(ln.split("(")[1].split()[-4]) for ln in pe) / max(1, len(pe)) if pe else float("nan")
        e_tps = sum(float(ln.split("(")[1].split()[-4]) for ln in ev) / max(1, len(ev)) if ev else float("nan")
        models.record_speed(name, tin, tout, secs, args.calls)
        print(f"| {name} | {args.threads} | {start:.1f} | {tin // args.calls} | {p_tps:.0f} | {e_tps:.1f} | "
              f"{(tin + tout) / secs:.1f} |", flush=True)


if __name__ == "__main__":
    main()
