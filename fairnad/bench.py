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
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from fairnad.config import SearchConfig, set_dotted
from fairnad.errors import ConfigError, FairnadError
from fairnad.evaluate.relabel import relabelled_name, split_name, write_relabelled
from fairnad.evaluate.tabular import add_user_benchmark, list_benchmarks, load_benchmark, user_benchmark_files
from fairnad.llm import LLMError
from fairnad.llm.provider import BackendProvider
from fairnad.lifecycle import RunHandle, check_llm_none, create_run, execute, open_run
from fairnad.search.base import create_strategy
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
    label: str = ""  # the row it is counted in: the strategy, or an ablation of it ("fairnad -idea")
    settings: dict[str, Any] = field(default_factory=dict)  # dotted overrides of the bench's config
    files: tuple[str, str] | None = None  # a user's table: (table, space file) the run reads

    def __post_init__(self) -> None:
        self.label = self.label or self.strategy

    def asks_llm(self, base: SearchConfig) -> bool:
        backend = self.settings.get("llm.backend", base.llm.backend)
        return strategy_class(self.strategy).uses_llm and backend != "none"


def ablations(base: SearchConfig) -> list[tuple[str, dict[str, Any]]]:
    """FairNAD with each mutation type off, and without its LLM (each LLM step replaced by its
    deterministic counterpart): (row label, settings). With --llm none already, the LLM-less run is
    FairNAD itself."""
    from fairnad.search.fairnad import MUTATIONS

    rows = [(f"fairnad -{m}", {"strategies.fairnad.disable": [m]}) for m in MUTATIONS]
    if base.llm.backend != "none":
        rows.append(("fairnad --llm none", {"llm.backend": "none"}))
    return rows


def run_bench(
    base: SearchConfig,
    benchmarks: list[str] | None,
    strategies: list[str],
    seeds: list[int],
    budgets: list[int],
    out: Path | None = None,
    *,
    own_table: tuple[Path, Path] | None = None,
    relabel: int | None = None,
    ablate: bool = False,
    max_params: int | None = None,
    workers: int = 1,
    llm_servers: int = 1,
    on_start: Callable[[int, int, Path], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """`fairnad bench`: every strategy (and with `ablate` FairNAD's ablations) on every benchmark
    (None: the built-in ones; `own_table` (table, space file) added under its space's name; with
    `relabel` each beside its relabelled copy) for every seed, to the largest of `budgets`, into
    `out` (default runs/bench-<time>; a rerun resumes it); then the tables and the page.
    `on_start(runs, budget, out)` hears the plan, `on_progress(n)` each n evaluations done.
    Returns {"out_dir", "files", "rows", "failures"}."""
    budgets = sorted(budgets)
    own = [add_user_benchmark(*own_table)] if own_table else []
    names = list_benchmarks() if benchmarks is None else list(benchmarks)
    names += [n for n in own if n not in names]
    if relabel is not None:
        names = [n for b in names for n in (b, relabelled_name(b, relabel))]
    check_bench_strategies(base, strategies)  # unknown names and --llm none without a counterpart: before any run
    out = out or Path(base.runs_dir) / f"bench-{datetime.now():%Y%m%d-%H%M%S}"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file, not a folder; give a new or an existing bench folder")
    jobs = plan(base, names, strategies, seeds, out, ablations(base) if ablate else [])
    if on_start is not None:
        on_start(len(jobs), budgets[-1], out)
    results = run_grid(base, jobs, budgets[-1], workers=workers, llm_servers=llm_servers, on_progress=on_progress)
    rows = table(results, budgets, max_params)
    title = (f"fairnad bench: {', '.join(strategies)}{' and FairNAD ablations' if ablate else ''} on {len(names)} "
             f"benchmarks, {len(seeds)} seeds")  # fmt: skip
    files = write_tables(rows, out, title, max_params)
    files["html"] = write_page(results, rows, out, title)
    failures = [{"run_dir": str(r["job"].run_dir), "error": r["error"]} for r in results if "error" in r]
    return {"out_dir": str(out), "files": files, "rows": rows, "failures": failures}


def check_bench_strategies(base: SearchConfig, strategies: list[str]) -> None:
    """Refuse a grid whose every run would fail alike: an unknown strategy, bad settings, or
    --llm none for a strategy that has no run without its LLM."""
    for name in strategies:
        check_llm_none(base, create_strategy(name, base.strategies.get(name)))


def plan(base: SearchConfig, benchmarks: list[str], strategies: list[str], seeds: list[int], out: Path,
         variants: list[tuple[str, dict[str, Any]]] = ()) -> list[Job]:  # fmt: skip
    """One job per benchmark x strategy (and variant of FairNAD) x seed; folders named after the row."""
    for s in strategies:
        strategy_class(s)  # unknown names fail before anything runs
    for b in benchmarks:
        load_benchmark(b)
    files = {b: _table_files(b, out) for b in benchmarks}
    rows = [(s, s, {}) for s in strategies] + [(label, "fairnad", sets) for label, sets in variants]
    return [
        Job(b, s, seed, out / b / _folder(label) / f"seed{seed}", label=label, settings=sets, files=files[b])
        for b in benchmarks for label, s, sets in rows for seed in seeds
    ]  # fmt: skip


def _table_files(benchmark: str, out: Path) -> tuple[str, str] | None:
    """The files a run of a user's table reads (its relabelled copy is written under `out`, so a
    resumed run finds it); None for a built-in benchmark, which runs load by name."""
    base, seed = split_name(benchmark)
    files = user_benchmark_files(base)
    if files is None or seed is None:
        return files
    table, space = write_relabelled(load_benchmark(benchmark), out / benchmark / "_table")
    return str(table.resolve()), str(space.resolve())


def _folder(label: str) -> str:
    return label.replace(" --", "_").replace(" -", "_no-").replace(" ", "_")


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
    llm_jobs = [j for j in jobs if j.asks_llm(base)]
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

        def advance(n: int) -> None:
            if on_progress is not None and n:
                with lock:
                    on_progress(n)

        def one(i: int, job: Job) -> None:
            last = [0]

            def progress(study, cand) -> None:
                if study.evaluations != last[0]:
                    advance(study.evaluations - last[0])
                    last[0] = study.evaluations

            try:
                handle = _open_job(base, job, budget)
            except (FairnadError, LLMError) as err:
                results[i] = _failed(job, err)
                return
            try:
                done = sum(c.counted for c in handle.store.candidates())
                if done >= budget or (handle.bench is not None and done >= len(handle.bench)):  # (the whole table)
                    s = summarize(handle.store, handle.bench)
                    advance(budget)
                else:
                    last[0] = done
                    advance(done)
                    sub = _Replica(provider, _llm_settings(base, job.replica, llm_servers))
                    if embedded and job.asks_llm(base):
                        with gates[job.replica]:
                            s = execute(handle, sub, progress)
                    else:
                        s = execute(handle, sub, progress)
                    if s["evaluations"] < budget:  # the table ran out first
                        advance(budget - last[0])
                results[i] = {**s, "job": job, "points": _points(handle.store)}
            except (FairnadError, LLMError) as err:
                results[i] = _failed(job, err)
            except Exception as err:  # a bug in one run must not lose the others
                results[i] = _failed(job, err, traceback.format_exc())
            finally:
                handle.store.close()

        order = sorted(range(len(jobs)), key=lambda i: jobs[i].asks_llm(base))  # quick ones first
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
    cfg = _with_settings(base, job.settings)
    cfg.benchmark, cfg.strategy, cfg.seed, cfg.budget = job.benchmark, job.strategy, job.seed, budget
    cfg.benchmark_file, cfg.space_file = job.files or (None, None)
    return create_run(cfg, job.run_dir)


def _with_settings(base: SearchConfig, settings: dict[str, Any]) -> SearchConfig:
    """The bench's config with a job's dotted settings on top (an ablation's switches)."""
    data = base.model_dump(mode="json")
    for key, value in settings.items():
        set_dotted(data, key, value)
    return SearchConfig.model_validate(data)


def _points(store) -> list[tuple[float | None, float | None, float | None]]:
    """(reported accuracy, params, searched accuracy) of each counted evaluation in order; Nones for a
    failure. A strategy sees the searched one (e.g. NB201's validation accuracy); tables report the other."""
    out = []
    for c in store.candidates():
        if c.counted:
            m = c.metrics
            out.append((m.get("test_accuracy", m.get("accuracy")), m.get("params"), m.get("accuracy"))
                       if c.ok else (None, None, None))  # fmt: skip
    return out


def _failed(job: Job, err: Exception, tb: str | None = None) -> dict[str, Any]:
    return {"job": job, "error": f"{type(err).__name__}: {err}", "traceback": tb}


# -- the table ---------------------------------------------------------------------------------
RANDOM_SIMULATIONS = 1000  # random search's hypervolume and best-under-a-budget, by simulation


class Objectives:
    """What a row reports beside best accuracy, computed the same way for runs and for random search:
    the best accuracy among models within a parameter budget, and the hypervolume of the
    accuracy/params front (both axes scaled to the table's range; reference point: the least accurate
    and the largest model of the table; 1.0 would be a single model that is the most accurate and the
    smallest). Points are (reported accuracy, params, searched accuracy): within the budget the model
    with the best searched accuracy is chosen and its reported accuracy counts, as for best accuracy."""

    def __init__(self, bench, max_params: int | None) -> None:
        self.max_params = max_params
        self.sign = bench.sign  # -1 for a table whose metric is better lower: scored signed, reported as is
        self.acc = np.asarray(bench.columns[bench.report_column], float)
        self.searched = np.asarray(bench.columns[bench.search_column(None)], float)
        col = bench.spec.metrics.params
        self.params = np.asarray(bench.columns[col], float) if col else None
        if self.params is not None:
            self.lo = np.array([np.nanmin(self.sign * self.acc), np.nanmin(self.params)])
            self.hi = np.array([np.nanmax(self.sign * self.acc), np.nanmax(self.params)])

    def under_budget(self, points) -> float | None:
        ok = [(self.sign * (pt[2] if len(pt) > 2 else pt[0]), self.sign * pt[0]) for pt in points
              if pt[0] is not None and pt[1] is not None and pt[1] <= self.max_params]  # fmt: skip
        return self.sign * max(ok)[1] if ok else None

    def hypervolume(self, points) -> float | None:
        from pymoo.indicators.hv import HV

        if self.params is None:
            return None
        P = np.array([pt[:2] for pt in points if pt[0] is not None and pt[1] is not None], float)
        if not len(P):
            return 0.0
        span = np.maximum(self.hi - self.lo, 1e-12)
        F = np.column_stack([(self.hi[0] - self.sign * P[:, 0]) / span[0], (P[:, 1] - self.lo[1]) / span[1]])
        return float(HV(ref_point=np.array([1.0, 1.0]))(np.minimum(F, 1.0)))

    def random(self, k: int, seed: int = 0) -> dict[str, tuple[float | None, float | None]]:
        """Mean and std over RANDOM_SIMULATIONS random searches of k distinct entries."""
        rng = np.random.default_rng(seed)
        n = len(self.acc)
        hv, ub = [], []
        for _ in range(RANDOM_SIMULATIONS):
            idx = rng.choice(n, size=min(k, n), replace=False)
            pts = [(self.acc[i], None if self.params is None else self.params[i], self.searched[i]) for i in idx]
            if self.params is not None:
                hv.append(self.hypervolume(pts))
            if self.max_params is not None:
                ub.append(self.under_budget(pts))
        ub = [x for x in ub if x is not None]
        return {"hv": (_mean(hv), _std(hv)) if hv else (None, None),
                "under_budget": (_mean(ub), _std(ub)) if ub else (None, None)}  # fmt: skip


def table(results: list[dict[str, Any]], budgets: list[int], max_params: int | None = None) -> list[dict[str, Any]]:
    """Per benchmark x strategy (or ablation) x budget, mean and std over seeds: the best reported
    accuracy and its rank, the best accuracy within `max_params`, the hypervolume of the
    accuracy/params front, and what the budget was spent on (evaluations, probes, LLM calls and
    tokens, the share of evaluations the LLM proposed); random search's exact expectation (accuracy,
    rank) and simulated figures (hypervolume, under the budget) beside them."""
    rows = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["job"].benchmark, r["job"].label), []).append(r)
    benches = list(dict.fromkeys(r["job"].benchmark for r in results))
    for b in benches:
        bench = load_benchmark(b)
        obj = Objectives(bench, max_params)
        for k in budgets:
            exp = bench.random_search_expectation(k)
            sim = obj.random(k)
            rows.append({
                "benchmark": b, "strategy": "random (exact expectation)", "budget": k, "runs": None,
                "acc_mean": exp["mean"], "acc_std": exp["std"], "rank_mean": exp.get("rank_mean"), "rank_std": None,
                "rank_median": exp.get("rank_median"), "budget_acc_mean": sim["under_budget"][0],
                "budget_acc_std": sim["under_budget"][1], "hv_mean": sim["hv"][0], "hv_std": sim["hv"][1],
                "failed": 0, "evaluations": k, "probes": None, "llm_calls": None, "llm_tokens": None,
            })  # fmt: skip
            for (gb, label), rs in groups.items():
                if gb != b:
                    continue
                # a run that evaluated the whole table has its final figures at every larger budget
                ok = [r for r in rs if "error" not in r and r["trajectory"]
                      and (len(r["trajectory"]) >= k or r.get("space_exhausted"))]  # fmt: skip
                at = [r["trajectory"][min(k, len(r["trajectory"])) - 1] for r in ok]
                accs = [t["accuracy"] for t in at if t["accuracy"] is not None]
                ranks = [t["rank"] for t in at if t["rank"] is not None]
                pts = [r.get("points", [])[:k] for r in ok]
                hvs = [h for h in (obj.hypervolume(p) for p in pts) if h is not None]
                ubs = [u for u in (obj.under_budget(p) for p in pts) if u is not None] if max_params else []
                calls = [r["llm"]["calls"] for r in ok]
                llm_made = [r.get("llm_made", 0) / max(1, r["evaluations"]) for r in ok]
                toks = [r["llm"]["tokens_in"] + r["llm"]["tokens_out"] for r in ok]
                probes = [r.get("probes", 0) for r in ok]
                rows.append({
                    "benchmark": b, "strategy": label, "budget": k, "runs": len(accs),
                    "acc_mean": _mean(accs), "acc_std": _std(accs), "rank_mean": _mean(ranks), "rank_std": _std(ranks),
                    "rank_median": _median(ranks), "budget_acc_mean": _mean(ubs), "budget_acc_std": _std(ubs),
                    "hv_mean": _mean(hvs), "hv_std": _std(hvs), "failed": len(rs) - len(ok),
                    "evaluations": _mean([r["evaluations"] for r in ok]), "probes": _mean(probes) if ok else None,
                    "llm_calls": _mean(calls) if ok else None, "llm_tokens": _mean(toks) if ok else None,
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


def write_tables(rows: list[dict[str, Any]], out: Path, title: str, max_params: int | None = None) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    cols = ["benchmark", "strategy", "budget", "runs", "acc_mean", "acc_std", "rank_mean", "rank_std", "rank_median",
            "budget_acc_mean", "budget_acc_std", "hv_mean", "hv_std", "failed", "evaluations", "probes", "llm_calls",
            "llm_tokens", "llm_share"]  # fmt: skip
    with open(out / "bench.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows({c: r.get(c) for c in cols} for r in rows)
    seeds = sorted({r["runs"] for r in rows if r.get("runs")})
    lines = [f"# {title}", "",
             f"Mean ± std over seeds ({'/'.join(map(str, seeds)) or '-'} per row). acc: best reported accuracy (%) "
             "and its mean rank (#, 1 = best in the table). HV: hypervolume of the accuracy/params front (both axes "
             "scaled to the table's range; 1 = one model both the most accurate and the smallest)."
             + (f" ≤{max_params:,}: best accuracy among models with at most {max_params:,} parameters." if max_params else "")
             + " Random search: its exact expectation (accuracy, rank) and 1,000 simulated searches (HV, budget)."
             " What each run spent: evaluations, probes (cheap checks), LLM calls and tokens, and the share of "
             "evaluations the LLM itself proposed.", ""]  # fmt: skip
    budgets = sorted({r["budget"] for r in rows})
    heads = [f"acc @{k}" for k in budgets] + [f"HV @{k}" for k in budgets]
    heads += [f"≤{_short(max_params)} @{k}" for k in budgets] if max_params else []
    heads += ["evals", "probes/run", "LLM calls/run", "LLM tokens/run", "LLM share"]
    lines += ["| benchmark | strategy | " + " | ".join(heads) + " |", "|" + "---|" * (2 + len(heads))]
    keyed: dict[tuple[str, str], dict[int, dict]] = {}
    for r in rows:
        keyed.setdefault((r["benchmark"], r["strategy"]), {})[r["budget"]] = r
    for (b, s), per in keyed.items():
        cells = []
        for k in budgets:
            r = per.get(k)
            if r is None or r["acc_mean"] is None:
                cells.append("-")
                continue
            rank = f" (#{r['rank_mean']:.0f})" if r.get("rank_mean") is not None else ""
            cells.append(f"{r['acc_mean']:.2f} ± {r['acc_std'] or 0:.2f}{rank}")
        for key in ("hv",) + (("budget_acc",) if max_params else ()):
            for k in budgets:
                r = per.get(k) or {}
                m, sd = r.get(f"{key}_mean"), r.get(f"{key}_std")
                cells.append("-" if m is None else (f"{m:.3f} ± {sd or 0:.3f}" if key == "hv" else f"{m:.2f} ± {sd or 0:.2f}"))
        last = per[max(per)]
        fmt = lambda v, f: "-" if v is None else f.format(v)  # noqa: E731
        cells += [fmt(last.get("evaluations"), "{:.0f}"), fmt(last.get("probes"), "{:.0f}"),
                  fmt(last.get("llm_calls") or None, "{:.0f}"), fmt(last.get("llm_tokens") or None, "{:,.0f}"),
                  fmt(None if last.get("llm_share") is None else 100 * last["llm_share"], "{:.0f}%")]  # fmt: skip
        fail = f" ({last['failed']} failed)" if last.get("failed") else ""
        lines.append(f"| {b} | {s}{fail} | " + " | ".join(cells) + " |")
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    (out / "bench.json").write_text(json.dumps(rows, indent=1))
    return {"markdown": str(out / "bench.md"), "csv": str(out / "bench.csv"), "json": str(out / "bench.json")}


def _short(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1e6 else f"{n / 1e3:g}k" if n >= 1e3 else str(n)


# -- the page ----------------------------------------------------------------------------------
EXPECTATION_POINTS = 60  # budgets at which the random-search expectation curve is computed


def curves(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """benchmark -> strategy -> best-so-far mean and std over seeds after each evaluation."""
    runs: dict[str, dict[str, list[list]]] = {}
    for r in results:
        if "error" in r:
            continue
        runs.setdefault(r["job"].benchmark, {}).setdefault(r["job"].label, []).append(
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
