"""Memory and speed of the embedded server under each setting that decides them (docs/performance.md).

Two prompts take turns as a FairNAD run's do (its idea prompt and its agent's: the same problem text
under another system message), three times each, answered at temperature 0.7 with a new seed each
call. Per setting: the server's peak and final resident memory, the prompt tokens it evaluated (a
prompt resumed from a cached state evaluates only its new part), prompt and generation speed from the
server's own log, and the wall time of the calls.

    python benchmarks/llm_memory.py [--model qwen2.5-coder-1.5b] [--threads 2] \
        [--settings "draft=4" "draft=0" "draft=0 logits_all=true"]
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from fairnad.llm import OpenAICompatible
from fairnad.llm.embedded import EmbeddedServer
from llm_speed import idea_prompt  # (benchmarks/: the same prompt as the speed figures)


def memory_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0])
    return out


def the_prompts() -> list[list[dict]]:
    text = idea_prompt(form="file")
    return [[{"role": "system", "content": who}, {"role": "user", "content": text}]
            for who in ("You improve neural networks one idea at a time.", "You are an agent that refines models.")]


def parse_setting(text: str) -> dict:
    out = {}
    for part in text.split():
        key, _, value = part.partition("=")
        out[key] = value.lower() == "true" if value.lower() in ("true", "false") else int(value)
    return {"draft_tokens" if k == "draft" else k: v for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--settings", nargs="+", default=["draft=4", "draft=0", "draft=0 logits_all=true"])
    args = ap.parse_args()
    prompts = the_prompts()
    print("| setting | peak RSS GB | final RSS GB | prompt tokens asked / evaluated | prompt tok/s | out tok/s | "
          "tokens out | wall s (calls) |")
    print("|---|---|---|---|---|---|---|---|")
    for setting in args.settings:
        kw = parse_setting(setting)
        with EmbeddedServer(args.model, threads=args.threads, **kw) as server:
            llm = OpenAICompatible(server.base_url, server.alias, timeout=1800)
            asked = out = 0
            walls = []
            for i in range(2 * args.rounds):
                t = time.time()
                c = llm.complete(prompts[i % 2], temperature=0.7, max_tokens=args.max_tokens, seed=i)
                walls.append(time.time() - t)
                asked += c.usage.tokens_in
                out += c.usage.tokens_out
            mem = memory_kb(server._proc.pid)
            log = server.log_path.read_text(errors="replace")
        # llama.cpp's timings: "prompt eval time = X ms / N tokens (... , T tokens per second)"
        pe = re.findall(r"prompt eval time =\s*[\d.]+ ms /\s*(\d+) tokens.*?([\d.]+) tokens per second", log)[-2 * args.rounds:]
        ev = re.findall(r"\n\S*\s*eval time =\s*[\d.]+ ms /\s*(\d+) runs.*?([\d.]+) tokens per second", log)[-2 * args.rounds:]
        evaluated = sum(int(n) for n, _ in pe)
        p_tps = sum(float(s) for _, s in pe) / len(pe) if pe else float("nan")
        e_tps = sum(float(s) for _, s in ev) / len(ev) if ev else float("nan")
        print(f"| {setting} | {mem['VmHWM'] / 2**20:.2f} | {mem['VmRSS'] / 2**20:.2f} | {asked} / {evaluated} | "
              f"{p_tps:.0f} | {e_tps:.1f} | {out} | {sum(walls):.0f} ({', '.join(f'{w:.0f}' for w in walls)}) |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
