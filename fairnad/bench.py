"""`fairnad bench`: strategies x benchmarks x seeds, one run folder each, and the comparison table.

Each run goes to the largest budget once; the result at a smaller budget is the best-so-far
after that many evaluations (no strategy here looks at its total budget, so the prefix of a
long run is exactly the short run). Finished runs are reused and unfinished ones resumed when
the same command is run again with the same --out.
"""

from __future__ import annotations

import csv
import json
import math
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairnad.config import SearchConfig
from fairnad.errors import FairnadError
from fairnad.evaluate.tabular import load_benchmark
from fairnad.llm import LLMError
from fairnad.llm.provider import BackendProvider
from fairnad.lifecycle import RunHandle, create_run, execute, open_run
from fairnad.store.summary import summarize
from fairnad.search.base import strategy_class
from fairnad.store import is_run_dir


@dataclass
class Job:
    benchmark: str
    strategy: str
    seed: int
    run_dir: Path
    replica: int = 0


def plan(base: SearchConfig, benchmarks: list[str], strategies: list[str], seeds: list[int], out: Path) -> list[Job]:
    for s in strategies:
        strategy_class(s)  # unknown names fail before anything runs
    for b in benchmarks:
        load_benchmark(b)
    return [
        Job(b, s, seed, out / b / s / f"seed{seed}") for b in benchmarks for s in strategies for seed in seeds
    ]


def run_grid(
    base: SearchConfig,
    jobs: list[Job],
    budget: int,
    *,
    workers: int = 1,
    llm_servers: int = 1,
    on_progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every job to `budget` (resuming or reusing what exists); one summary per job."""
    results: list[dict[str, Any]] = [None] * len(jobs)  # type: ignore[list-item]
    lock = threading.Lock()
    llm_jobs = [j for j in jobs if strategy_class(j.strategy).uses_llm]
    for i, j in enumerate(llm_jobs):
        j.replica = i % max(1, llm_servers)
    # An embedded server answers one request at a time and caches one conversation's prompt:
    # runs that share it take turns (whole runs, not calls), so the cache follows each conversation.
    embedded = base.llm.backend == "embedded"
    gates = [threading.Lock() for _ in range(max(1, llm_servers))]
    with BackendProvider(jobs[0].run_dir.parents[2] if jobs else None) as provider:
        if llm_jobs and base.llm.backend == "embedded":
            # Start embedded servers from this (main) thread: they die with the thread that made them.
            for r in range(min(llm_servers, len(llm_jobs))):
                provider.backend(_llm_settings(base, r, llm_servers))

        def one(i: int, job: Job) -> None:
            last = [0]

            def progress(study, cand) -> None:
                if on_progress is not None and study.evaluations != last[0]:
                    with lock:
                        on_progress(study.evaluations - last[0])
                    last[0] = study.evaluations

            try:
                handle = _open_job(base, job, budget)
            except (FairnadError, LLMError) as err:
                results[i] = _failed(job, err)
                return
            try:
                done = sum(c.counted for c in handle.store.candidates())
                if done >= budget:
                    s = summarize(handle.store, handle.bench)
                else:
                    last[0] = done
                    if on_progress is not None and done:
                        with lock:
                            on_progress(done)
                    sub = _Replica(provider, _llm_settings(base, job.replica, llm_servers))
                    if embedded and strategy_class(job.strategy).uses_llm:
                        with gates[job.replica]:
                            s = execute(handle, sub, progress)
                    else:
                        s = execute(handle, sub, progress)
                results[i] = {**s, "job": job}
            except (FairnadError, LLMError) as err:
                results[i] = _failed(job, err)
            except Exception as err:  # a bug in one run must not lose the others
                results[i] = _failed(job, err, traceback.format_exc())
            finally:
                handle.store.close()

        order = sorted(range(len(jobs)), key=lambda i: strategy_class(jobs[i].strategy).uses_llm)  # quick ones first
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(one, i, jobs[i]) for i in order]
            for f in as_completed(futures):
                f.result()
    return results


def _llm_settings(base: SearchConfig, replica: int, servers: int) -> dict[str, Any]:
    s = base.llm.model_dump()
    if base.llm.backend == "embedded" and servers > 1:
        s["replica"] = replica
        import os

        s["embedded_threads"] = base.llm.embedded_threads or max(1, (os.cpu_count() or 1) // servers)
    return s


class _Replica:
    """Routes a run's LLM calls to one of several identical live backends."""

    def __init__(self, provider: BackendProvider, settings: dict[str, Any]) -> None:
        self.provider = provider
        self.settings = settings

    def lazy(self, _settings: dict[str, Any]):
        return self.provider.lazy(self.settings)


def _open_job(base: SearchConfig, job: Job, budget: int) -> RunHandle:
    if is_run_dir(job.run_dir):
        return open_run(job.run_dir, budget)
    cfg = base.model_copy(deep=True)
    cfg.benchmark, cfg.strategy, cfg.seed, cfg.budget = job.benchmark, job.strategy, job.seed, budget
    cfg.benchmark_file = cfg.space_file = None
    return create_run(cfg, job.run_dir)


def _failed(job: Job, err: Exception, tb: str | None = None) -> dict[str, Any]:
    return {"job": job, "error": f"{type(err).__name__}: {err}", "traceback": tb}


# -- the table ---------------------------------------------------------------------------------
def table(results: list[dict[str, Any]], budgets: list[int]) -> list[dict[str, Any]]:
    """Mean and std of the best reported accuracy and its rank, per benchmark x strategy x budget,
    with the exact random-search expectation of each benchmark and budget beside them."""
    rows = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["job"].benchmark, r["job"].strategy), []).append(r)
    benches = list(dict.fromkeys(r["job"].benchmark for r in results))
    for b in benches:
        bench = load_benchmark(b)
        for k in budgets:
            exp = bench.random_search_expectation(k)
            rows.append({
                "benchmark": b, "strategy": "random (exact expectation)", "budget": k, "runs": None,
                "acc_mean": exp["mean"], "acc_std": exp["std"], "rank_mean": exp.get("rank_mean"), "rank_std": None,
                "rank_median": exp.get("rank_median"), "failed": 0, "probes": None, "llm_calls": None,
                "llm_tokens": None,
            })  # fmt: skip
            for (gb, strat), rs in groups.items():
                if gb != b:
                    continue
                ok = [r for r in rs if "error" not in r and len(r["trajectory"]) >= k]
                accs = [r["trajectory"][k - 1]["accuracy"] for r in ok if r["trajectory"][k - 1]["accuracy"] is not None]
                ranks = [r["trajectory"][k - 1]["rank"] for r in ok if r["trajectory"][k - 1]["rank"] is not None]
                calls = [r["llm"]["calls"] for r in ok]
                llm_made = [r.get("llm_made", 0) / max(1, r["evaluations"]) for r in ok]
                toks = [r["llm"]["tokens_in"] + r["llm"]["tokens_out"] for r in ok]
                probes = [r.get("probes", 0) for r in ok]
                rows.append({
                    "benchmark": b, "strategy": strat, "budget": k, "runs": len(accs),
                    "acc_mean": _mean(accs), "acc_std": _std(accs), "rank_mean": _mean(ranks), "rank_std": _std(ranks),
                    "rank_median": _median(ranks), "failed": len(rs) - len(ok), "probes": _mean(probes) if ok else None,
                    "llm_calls": _mean(calls) if any(calls) else None, "llm_tokens": _mean(toks) if any(toks) else None,
                    "llm_share": _mean(llm_made) if any(calls) else None,
                })  # fmt: skip
    return rows


def _mean(xs):
    return sum(xs) / len(xs) if xs else None


def _std(xs):
    if len(xs) < 2:
        return 0.0 if xs else None
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _median(xs):
    if not xs:
        return None
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def write_tables(rows: list[dict[str, Any]], out: Path, title: str) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    cols = ["benchmark", "strategy", "budget", "runs", "acc_mean", "acc_std", "rank_mean", "rank_std", "rank_median",
            "failed", "probes", "llm_calls", "llm_tokens", "llm_share"]  # fmt: skip
    with open(out / "bench.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows({c: r.get(c) for c in cols} for r in rows)
    lines = [f"# {title}", "", "Best reported accuracy (%) and its rank (1 = best in the table), mean ± std over seeds.",
             "The last column is the share of evaluated candidates the LLM itself proposed (the rest: starting models, "
             "algorithmic steps, and fallbacks that replaced an unusable or repeated answer).",
             ""]  # fmt: skip
    budgets = sorted({r["budget"] for r in rows})
    head = "| benchmark | strategy | " + " | ".join(f"acc @{k} | rank @{k}" for k in budgets)
    lines += [head + " | probes/run | LLM calls/run | evals proposed by the LLM |", "|" + "---|" * (2 + 2 * len(budgets) + 3)]
    keyed: dict[tuple[str, str], dict[int, dict]] = {}
    for r in rows:
        keyed.setdefault((r["benchmark"], r["strategy"]), {})[r["budget"]] = r
    for (b, s), per in keyed.items():
        cells = []
        for k in budgets:
            r = per.get(k)
            if r is None or r["acc_mean"] is None:
                cells += ["-", "-"]
                continue
            cells.append(f"{r['acc_mean']:.3f} ± {r['acc_std']:.3f}")
            rs = f" ± {r['rank_std']:.0f}" if r.get("rank_std") is not None else ""
            cells.append(f"{r['rank_mean']:.0f}{rs}" if r["rank_mean"] is not None else "-")
        anyr = next(iter(per.values()))
        calls = f"{anyr['llm_calls']:.0f}" if anyr.get("llm_calls") else "-"
        probes = f"{anyr['probes']:.0f}" if anyr.get("probes") is not None else "-"
        share = f"{100 * anyr['llm_share']:.0f}%" if anyr.get("llm_share") is not None else "-"
        fail = f" ({anyr['failed']} failed)" if anyr.get("failed") else ""
        lines.append(f"| {b} | {s}{fail} | " + " | ".join(cells) + f" | {probes} | {calls} | {share} |")
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    (out / "bench.json").write_text(json.dumps(rows, indent=1))
    return {"markdown": str(out / "bench.md"), "csv": str(out / "bench.csv"), "json": str(out / "bench.json")}


# -- the page ----------------------------------------------------------------------------------
EXPECTATION_POINTS = 60  # budgets at which the random-search expectation curve is computed


def curves(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """benchmark -> strategy -> best-so-far mean and std over seeds after each evaluation."""
    runs: dict[str, dict[str, list[list]]] = {}
    for r in results:
        if "error" in r:
            continue
        runs.setdefault(r["job"].benchmark, {}).setdefault(r["job"].strategy, []).append(
            [p["accuracy"] for p in r["trajectory"]]
        )
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for b, per in runs.items():
        for s, trajs in per.items():
            xs, mean, std = [], [], []
            for k in range(1, max(map(len, trajs), default=0) + 1):
                vals = [t[k - 1] for t in trajs if len(t) >= k and t[k - 1] is not None]
                if vals:
                    xs.append(k)
                    mean.append(_mean(vals))
                    std.append(_std(vals))
            out.setdefault(b, {})[s] = {"x": xs, "mean": mean, "std": std, "seeds": len(trajs)}
    return out


def expectation_curve(benchmark: str, budget: int) -> dict[str, list]:
    """The exact random-search expectation of the best reported accuracy at budgets 1..budget."""
    bench = load_benchmark(benchmark)
    step = max(1, budget // EXPECTATION_POINTS)
    ks = sorted({*range(1, budget + 1, step), budget})
    return {"x": ks, "mean": [bench.random_search_expectation(k, ranks=False)["mean"] for k in ks]}


def write_page(results: list[dict[str, Any]], rows: list[dict[str, Any]], out: Path, title: str) -> str:
    """bench.html: mean ± std bands across seeds per strategy, beside the random-search expectation."""
    from fairnad.report.html import bench_page, render

    cs = curves(results)
    budget = max((len(r["trajectory"]) for r in results if "error" not in r), default=0)
    exp = {b: expectation_curve(b, budget) for b in cs} if budget else {}
    return str(render(out / "bench.html", bench_page(title, cs, exp, rows)))
