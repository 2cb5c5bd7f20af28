"""Do the embedded model's children train? Open MNIST-1D FairNAD runs, one per seed, through the CLI a
user runs, then per mutation type: proposed / trained / improved the Pareto front, failure categories,
whether the best model is an LLM-written child, and wall time. (docs/performance.md, issue targets)

    python benchmarks/llm_children.py --seeds 0,1,2 --budget 30 --epochs 5 [--llm embedded] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--llm", default="embedded:qwen2.5-coder-1.5b")
    ap.add_argument("--out", default="runs/llm-children")
    ap.add_argument("--set", action="append", default=[], help="extra --set KEY=VALUE for every run")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        run = out / f"mnist1d-fairnad-s{seed}"
        t0 = time.time()
        cmd = [sys.executable, "-m", "fairnad", "search", "--space", "open", "--dataset", "mnist1d", "-s", "fairnad",
               "-n", str(args.budget), "--epochs", str(args.epochs), "--seed", str(seed), "--llm", args.llm,
               "--run-dir", str(run), "--json"] + [x for kv in args.set for x in ("--set", kv)]  # fmt: skip
        if (run / "run.db").exists():  # finish what a killed bench left
            cmd = [sys.executable, "-m", "fairnad", "resume", str(run), "--json"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stderr[-2000:], file=sys.stderr)
            sys.exit(p.returncode)
        s = json.loads(p.stdout)
        with sqlite3.connect(run / "run.db") as db:
            fails = Counter(
                f"{op}: {cat}" for op, cat in db.execute(
                    "select json_extract(origin, '$.op'), coalesce(json_extract(metrics, '$.failure'), status) "
                    "from candidates where status != 'complete'")
            )  # fmt: skip
            # every answer the model gave for its children: how many failed their sandbox check
            answers = Counter()
            for op, attempts, failed in db.execute(
                    "select json_extract(origin, '$.op'), json_extract(origin, '$.attempts'), "
                    "json_array_length(coalesce(json_extract(origin, '$.check_failures'), '[]')) from candidates "
                    "where json_extract(origin, '$.source') = 'llm'"):  # fmt: skip
                answers[op, "answers"] += attempts or 1
                answers[op, "failed check"] += failed or 0
        s["failures"] = dict(fails)
        s["answers"] = {f"{op} {k}": n for (op, k), n in sorted(answers.items())}
        s["wall_s"] = round(time.time() - t0, 1)
        results.append(s)
        print(f"seed {seed}: {s['wall_s'] / 60:.1f} min, best {s['best']['search_accuracy']:.1f}% val "
              f"({s['best']['origin']}, {'LLM' if s['best']['by_llm'] else 'not LLM'})", flush=True)
        for r in s["children"]:
            print(f"   {r['origin']:22} {'LLM' if r['by_llm'] else '   '}  proposed {r['proposed']:3}  trained "
                  f"{r['trained']:3} (sizes inferred {r.get('sizes_inferred', 0)})  improved front {r['improved_front']:3}  best {r['improved_best']:3}")
        print(f"   failures: {dict(fails)}", flush=True)
        print(f"   answers: {s['answers']}", flush=True)
    llm = [r for s in results for r in s["children"] if r["by_llm"]]
    proposed, trained, front, inferred = (sum(r.get(k, 0) for r in llm)
                                          for k in ("proposed", "trained", "improved_front", "sizes_inferred"))
    walls = ", ".join(f"{s['wall_s'] / 60:.1f}" for s in results)
    print(f"\nLLM-written children over {len(results)} seeds: {trained}/{proposed} trained "
          f"({100 * trained / max(1, proposed):.0f}%; {inferred} of them with input sizes inferred), {front}/{trained} of those improved the front "
          f"({100 * front / max(1, trained):.0f}%); best model LLM-written in "
          f"{sum(s['best']['by_llm'] for s in results)}/{len(results)} seeds; wall "
          f"{walls} min")
    (out / "summary.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
