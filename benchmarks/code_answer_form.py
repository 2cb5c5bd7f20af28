"""Which code-answer form lets the embedded model write children that train: SEARCH/REPLACE edits
against the parent, or the whole file? (docs/performance.md, "Code answers")

The same FairNAD idea prompts (same parents, same ideas, same seeds) are asked in both forms of the
real embedded server; every child is trained in the sandbox for a few epochs on MNIST-1D.

    python benchmarks/code_answer_form.py [--model qwen2.5-coder-1.5b] [--n 6] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import time
from types import SimpleNamespace

import numpy as np

from fairnad.evaluate.code import EvalRequest, run_request
from fairnad.knowledge.tree import AttributeTree
from fairnad.llm import OpenAICompatible
from fairnad.llm.embedded import EmbeddedServer
from fairnad.prompts import render
from fairnad.search.common import ask_code
from fairnad.search.ideas import IdeaSpace
from fairnad.space.code import scale
from fairnad.space.reference import reference
from llm_speed import idea_prompt  # (benchmarks/: the prompt every embedded-server benchmark asks)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="embedded model name or .gguf (default: the default model)")
    ap.add_argument("--n", type=int, default=6, help="prompts per form")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--forms", default="definitions,edits,file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repairs", type=int, default=1, help="send a child that fails its build check back (FairNAD's default)")
    ap.add_argument("--out", default=None, help="JSONL of every child (code, error) for reading")
    args = ap.parse_args()

    ref = reference("mnist1d-cnn").source()
    rng = np.random.default_rng(0)
    parents = [ref] + [scale(ref, k, rng)[0] for k in ("up", "tune")]
    ideas = IdeaSpace.from_tree(AttributeTree.load("knowledge/template.json"))
    picks = [(parents[i % len(parents)], ideas.sample(rng)) for i in range(args.n)]
    rows = []

    def check(code: str) -> str | None:  # what FairNAD's repair step asks (a build and shape probe)
        r = run_request(EvalRequest(source=code, dataset="mnist1d", checks_only=True), "auto").report()
        return None if r["status"] == "complete" else f"{r['category']}: {r['error']}"

    with EmbeddedServer(args.model, threads=args.threads) as server:
        llm = OpenAICompatible(server.base_url, server.alias, timeout=900)
        study = SimpleNamespace(llm=llm)
        for form in args.forms.split(","):
            for i, (parent, idea) in enumerate(picks):
                prompt = idea_prompt(form, parent_code=parent, idea=idea)
                t0 = time.time()
                tok = [0]
                real = llm.complete

                def counting(*a, **k):
                    out = real(*a, **k)
                    tok[0] += out.usage.tokens_out
                    return out

                study.llm = SimpleNamespace(complete=counting)
                code, text, how = ask_code(study, prompt, system=render("fairnad/system.j2"), temperature=0.7,
                                           max_tokens=1500, seed=1000 + i, purpose="bench", parent=parent,
                                           check=check, repairs=args.repairs)  # fmt: skip
                llm_s = time.time() - t0
                row = {"form": form, "idea": idea.name, "answer": how.get("answer"), "reasked": bool(how.get("reasked")), "repaired": how.get("repaired", 0),
                       "imports_added": bool(how.get("imports_added")), "llm_s": round(llm_s, 1), "tokens_out": tok[0],
                       "same_as_parent": code is not None and code.strip() == parent.strip()}  # fmt: skip
                if code is None:
                    row.update(status="no code", category=(how.get("edit_error") or "no code")[:80])
                else:
                    r = run_request(EvalRequest(source=code, dataset="mnist1d", epochs=args.epochs, seed=0), "auto").report()
                    row.update(status=r["status"], category=r.get("category"), acc=r["metrics"].get("val_acc"),
                               error=(r.get("error") or "")[:200], code=code)  # fmt: skip
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "code"}), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    print(f"\n{args.model or 'default model'}, repairs {args.repairs}, {args.epochs} epochs")
    print("form          asked  code  trained  same-as-parent  reasked  repaired  imports-added  mean tokens out  mean LLM s")
    for form in args.forms.split(","):
        rs = [r for r in rows if r["form"] == form]
        print(f"{form:12} {len(rs):6}  {sum(r['status'] != 'no code' for r in rs):4}  "
              f"{sum(r['status'] == 'complete' and not r['same_as_parent'] for r in rs):7}  "
              f"{sum(r['same_as_parent'] for r in rs):14}  {sum(r['reasked'] for r in rs):7}  "
              f"{sum(bool(r['repaired']) for r in rs):8}  "
              f"{sum(r['imports_added'] for r in rs):13}  {np.mean([r['tokens_out'] for r in rs]):15.0f}  "
              f"{np.mean([r['llm_s'] for r in rs]):10.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
