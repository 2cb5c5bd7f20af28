"""Does the LLM add, or step aside? FairNAD with the default embedded model (adaptive credit) beside the
same seeds without it (`--llm none`), through the CLI a user runs, one run at a time. Resumable: a run
that is finished is read again, one that was killed is resumed, so the grid can be spread over sessions.

    python benchmarks/llm_credit.py [--only open|tables|knowledge|all] [--match TEXT] [--out runs/llm-credit] [--list]

The grid (issue 34):
  open MNIST-1D, 30 evaluations, 5 epochs, seeds 0-2: FairNAD adaptive with the 1.5B, and --llm none;
      fixed probabilities (adaptive=false) on seeds 0-1;
  relabelled NAS-Bench-Macro and NB201-CIFAR-100, 50 evaluations, seeds 0-2: FairNAD adaptive with the
      1.5B, and --llm none; LLMatic with the 1.5B and its algorithm-alone counterpart on NAS-Bench-Macro.
and issue 35's search: open MNIST-1D as above with `--knowledge papers13` (the tree built from the
  papers), seeds 0-2, with the 1.5B and with --llm none, beside the adaptive and --llm none rows above
  (made before papers13 was the default: the template's examples).
Per row: best search (validation) and reported accuracy, mean ± std over the seeds; hypervolume of the
accuracy/params front; the LLM-written share of the final front; LLM seconds; wall minutes.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LLM = "embedded:qwen2.5-coder-1.5b"
OPEN = ["--space", "open", "--dataset", "mnist1d", "-n", "30", "--epochs", "5"]
TABLES = {"nas-bench-macro@relabel1": "macro", "nb201-cifar100@relabel1": "nb201c100"}


def grid(only: str) -> list[tuple[str, str, list[str]]]:
    """(row, run name, CLI arguments after `search`)."""
    jobs = []
    if only in ("open", "all"):
        for seed in (0, 1, 2):
            jobs.append(("open fairnad 1.5B adaptive", f"open-adaptive-s{seed}", [*OPEN, "-s", "fairnad", "--seed", str(seed), "--llm", LLM]))
            jobs.append(("open fairnad --llm none", f"open-none-s{seed}", [*OPEN, "-s", "fairnad", "--seed", str(seed), "--llm", "none"]))
        for seed in (0, 1):
            jobs.append(("open fairnad 1.5B fixed", f"open-fixed-s{seed}", [*OPEN, "-s", "fairnad", "--seed", str(seed), "--llm", LLM,
                                                                           "--set", "strategies.fairnad.adaptive=false"]))
    if only in ("knowledge", "all"):
        for seed in (0, 1, 2):
            jobs.append(("open fairnad 1.5B papers13", f"open-papers13-s{seed}", [*OPEN, "-s", "fairnad", "--seed", str(seed), "--llm", LLM,
                                                                                "--knowledge", "papers13"]))
            jobs.append(("open fairnad --llm none papers13", f"open-none-papers13-s{seed}", [*OPEN, "-s", "fairnad", "--seed", str(seed),
                                                                                          "--llm", "none", "--knowledge", "papers13"]))
    if only in ("tables", "all"):
        for table, short in TABLES.items():
            for seed in (0, 1, 2):
                base = ["-b", table, "-n", "50", "--seed", str(seed)]
                jobs.append((f"{short} fairnad 1.5B adaptive", f"{short}-fairnad-adaptive-s{seed}", [*base, "-s", "fairnad", "--llm", LLM]))
                jobs.append((f"{short} fairnad --llm none", f"{short}-fairnad-none-s{seed}", [*base, "-s", "fairnad", "--llm", "none"]))
                if short == "macro":
                    jobs.append((f"{short} llmatic 1.5B", f"{short}-llmatic-s{seed}", [*base, "-s", "llmatic", "--llm", LLM]))
                    jobs.append((f"{short} llmatic --llm none", f"{short}-llmatic-none-s{seed}", [*base, "-s", "llmatic", "--llm", "none"]))
    return jobs  # fmt: skip


def status(run: Path) -> str | None:
    if not (run / "run.db").exists():
        return None
    with sqlite3.connect(f"file:{run / 'run.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'status'").fetchone()
    return json.loads(row[0]) if row else None


def run_one(run: Path, args: list[str]) -> dict:
    """Search, or resume what a killed bench left; the wall seconds of every session add up."""
    wall_file = run.parent / f".{run.name}.wall"
    # a run folder removed or moved away since leaves its seconds behind: a fresh search starts from 0
    spent = float(wall_file.read_text()) if wall_file.exists() and (run / "run.db").exists() else 0.0
    if status(run) != "finished":
        cmd = ["resume", str(run)] if (run / "run.db").exists() else ["search", *args, "--run-dir", str(run)]
        t0 = time.time()
        p = subprocess.run([sys.executable, "-m", "fairnad", *cmd, "--json"], capture_output=True, text=True)
        spent += time.time() - t0
        wall_file.write_text(str(spent))
        if p.returncode != 0:
            raise SystemExit(f"{run}: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
    p = subprocess.run([sys.executable, "-m", "fairnad", "runs", "show", str(run), "--json"], capture_output=True,
                       text=True, check=True)  # fmt: skip
    s = json.loads(p.stdout)
    s["wall_s"] = spent
    s.update(front_facts(run))
    return s


def front_facts(run: Path) -> dict:
    """Hypervolume of the accuracy/params front (accuracy over [0, 100] %, params over [0, the largest seen]),
    and the share of the final front that the LLM wrote."""
    from fairnad.pareto import as_objectives, nondominated
    from fairnad.store import RunStore
    from fairnad.store.summary import made_by_llm

    with RunStore.open(run, readonly=True) as store:
        done = [c for c in store.candidates() if c.ok and c.metrics.get("params")]
        llm_calls = store.llm_totals()["calls"]
    F = as_objectives([(c.metrics["accuracy"], c.metrics["params"]) for c in done])
    on = nondominated(F)
    pmax = max(c.metrics["params"] for c in done)
    pts = sorted((c.metrics["params"] / pmax, c.metrics["accuracy"] / 100) for c in (done[i] for i in on))
    hv, best = 0.0, 0.0
    for (p, a), nxt in zip(pts, [q for q, _ in pts[1:]] + [1.0]):  # staircase area, cheapest first
        best = max(best, a)
        hv += (nxt - p) * best
    front = [done[i] for i in on]
    by_llm = sum(llm_calls > 0 and made_by_llm(c.origin) for c in front)
    return {"hypervolume": hv, "front": len(front), "front_by_llm": by_llm}


def mean_std(xs: list[float], digits: int = 2) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    m = f"{statistics.mean(xs):.{digits}f}"
    return f"{m} ± {statistics.stdev(xs):.{digits}f}" if len(xs) > 1 else m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["open", "tables", "knowledge", "all"], default="all")
    ap.add_argument("--out", default="runs/llm-credit")
    ap.add_argument("--match", default="", help="only the runs whose name holds this text (spread the grid)")
    ap.add_argument("--list", action="store_true", help="what is done, without running anything")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {}
    for row, name, args in grid(a.only):
        if a.match not in name:
            continue
        run = out / name
        if a.list:
            print(f"{name:32} {status(run) or 'not started'}")
            continue
        s = run_one(run, args)
        rows.setdefault(row, []).append(s)
        print(f"{name}: best {s['best']['search_accuracy']:.2f} (reported {s['best']['accuracy']:.2f}), "
              f"LLM {s['llm']['calls']} calls {s['llm']['seconds'] / 60:.1f} min, wall {s['wall_s'] / 60:.1f} min", flush=True)
    if a.list:
        return
    lines = ["| row | seeds | best search acc | best reported acc | hypervolume | front by the LLM | LLM min | wall min |",
             "|---|---|---|---|---|---|---|---|"]
    for row, ss in rows.items():
        lines.append(f"| {row} | {len(ss)} | {mean_std([s['best']['search_accuracy'] for s in ss])} | "
                     f"{mean_std([s['best']['accuracy'] for s in ss])} | {mean_std([s['hypervolume'] for s in ss], 3)} | "
                     f"{sum(s['front_by_llm'] for s in ss)} of {sum(s['front'] for s in ss)} | "
                     f"{mean_std([s['llm']['seconds'] / 60 for s in ss])} | {mean_std([s['wall_s'] / 60 for s in ss])} |")
    part = "" if a.only == "all" and not a.match else f"-{a.only}{'-' + a.match if a.match else ''}"
    (out / f"summary{part}.json").write_text(json.dumps(rows, indent=1, default=str))  # a part never overwrites the grid's
    print("\n".join(lines))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
