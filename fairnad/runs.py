"""Run lifecycle behind the CLI: create a run, resume it, summarise it, list runs.

This is where the stages meet: a benchmark (evaluate/), a strategy (search/), the LLM (llm/)
and the run store (store/) are put together into a Study and driven to the budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fairnad.config import SearchConfig
from fairnad.errors import ConfigError, FairnadError, RunPaused
from fairnad.evaluate.tabular import TabularBenchmark, TabularEvaluator, load_benchmark, load_user_benchmark
from fairnad.llm import LLMBudgetExceeded, LLMError, LLMUnavailable, RecordingLLM, ReplayBackend, ReplayExhausted
from fairnad.llm.provider import BackendProvider
from fairnad.search.base import create_strategy
from fairnad.search.study import Study
from fairnad.space.candidate import Candidate
from fairnad.space.code import own_frames
from fairnad.store import RunStore, StoreError, is_run_dir
from fairnad.versions import versions


@dataclass
class Problem:
    """What a Study searches: the space, how candidates are evaluated, and the context its
    strategies may use (ideas, the candidate contract, cheap checks, option costs)."""

    space: Any
    evaluator: Any
    domain: list[str] | None
    objective: dict[str, Any]
    context: dict[str, Any]
    bench: TabularBenchmark | None = None
    executor: Any = None

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()


SHIPPED_TREES = {"papers13": "papers13.json", "template": "template.json"}  # --knowledge NAME


def shipped_tree(name: str) -> Path | None:
    """A tree that ships with fairnad (knowledge/ in a checkout, fairnad/_knowledge in a wheel)."""
    here = Path(__file__).resolve().parent
    for root in (here / "_knowledge", here.parent / "knowledge"):
        if (root / SHIPPED_TREES[name]).is_file():
            return root / SHIPPED_TREES[name]
    return None


def load_knowledge(cfg: SearchConfig):
    """The attribute tree of ideas: --knowledge FILE or a shipped tree's name (papers13: built from 13
    papers; template: the template's own examples, the default until papers13 is shown to help)."""
    from fairnad.knowledge.template import load_template
    from fairnad.knowledge.tree import AttributeTree
    from fairnad.prompts import templates_dir

    if cfg.knowledge and cfg.knowledge not in SHIPPED_TREES:
        return AttributeTree.load(cfg.knowledge)
    path = shipped_tree(cfg.knowledge or "template")
    if path is not None:
        return AttributeTree.load(path)
    return AttributeTree.from_template(load_template(templates_dir() / "fairnad.yaml"))


def tabular_problem(cfg: SearchConfig) -> Problem:
    bench = open_benchmark(cfg)
    m = bench.spec.metrics
    context: dict[str, Any] = {}
    if m.params or m.flops:
        col = bench.columns[m.params or m.flops]
        idx = np.array([bench.space.parse(k) for k in bench.keys])
        # the mean cost of the entries that use each option at each position: what "bigger" means
        context["option_costs"] = [[float(col[idx[:, d] == j].mean()) if (idx[:, d] == j).any() else 0.0
                                    for j in range(len(opts))] for d, opts in enumerate(bench.space.options)]  # fmt: skip

        def cost_of(g: str) -> str:
            row = bench.lookup(g) or {}
            return ", ".join(f"{k} {row[k]:,}" for k in ("params", "flops") if row.get(k) is not None) or "cost unknown"

        context["cost_of"] = cost_of
        context["cost_range"] = {k: (float(max(1, bench.columns[c].min())), float(max(2, bench.columns[c].max())))
                                 for k, c in (("params", m.params), ("flops", m.flops)) if c}  # fmt: skip
    return Problem(
        space=bench.space, evaluator=TabularEvaluator(bench, cfg.fidelity), domain=bench.keys,
        objective={"metric": "accuracy" if m.higher_is_better else m.search, "unit": "%", "dataset": bench.spec.dataset},
        context=context, bench=bench,
    )  # fmt: skip


def open_problem(cfg: SearchConfig) -> Problem:
    from fairnad.evaluate.code import CodeEvaluator, EvalRequest, run_request
    from fairnad.evaluate.datasets import dataset_spec, prepare
    from fairnad.evaluate.executors import make_executor
    from fairnad.prompts import render
    from fairnad.space.code import CodeSpace
    from fairnad.space.reference import for_dataset, reference

    o = cfg.open
    spec = dataset_spec(o.dataset)
    prepare(o.dataset, o.data_dir)  # a missing or malformed data folder fails here, before the run starts
    initial = []
    for item in o.initial or [f"ref:{r.name}" for r in for_dataset(o.dataset)]:
        if item.startswith("ref:"):
            initial.append(reference(item[4:]).source())
        else:
            try:
                initial.append(Path(item).read_text())
            except OSError as err:
                raise ConfigError(f"open.initial: cannot read {item} ({err.strerror})") from None
    if not initial:
        raise ConfigError(f"open.initial: no reference model for {o.dataset}; give starting model files")
    base = EvalRequest(source="", dataset=o.dataset, epochs=o.epochs, data_dir=o.data_dir, device=o.device,
                       seed=cfg.seed, max_params=o.max_params, train=dict(o.train), timeout=o.timeout,
                       memory_mb=o.memory_mb, threads=o.threads)  # fmt: skip
    executor = make_executor(o.executor, o.workers, o.gpus, o.address, o.device, o.isolation)
    evaluator = CodeEvaluator(base, executor, keep_weights=o.keep_weights)  # weights_dir: once the run folder exists

    def probe(source: str, **extra) -> dict:
        """A sandbox run reduced to what a strategy may read: the same for the same code on every run
        (no paths, no timings), so stored probes answer a resume or replay exactly."""
        r = run_request(EvalRequest(**{**base.to_dict(), "source": source, "checks_only": True, **extra}),
                        o.isolation).report()  # fmt: skip
        m = r.get("metrics") or {}
        return {"status": r["status"], "category": r.get("category"), "error": r.get("error"),
                "traceback": own_frames(r.get("traceback") or "")[-1500:] or None,
                **{k: m.get(k) for k in ("params", "flops", "val_acc")}}  # fmt: skip

    contract = render("contract.j2", dataset=o.dataset, input_shape=list(spec.input_shape),
                      num_classes=spec.num_classes, max_params=o.max_params)  # fmt: skip
    context = {
        "knowledge": load_knowledge(cfg), "contract": contract, "initial": initial, "max_params": o.max_params,
        # through Study.probe: stored and counted. check: builds, output shape, params/FLOPs; train: one epoch
        "probes": {"check": probe, "train": lambda src: probe(src, checks_only=False, epochs=1)},
    }  # fmt: skip
    return Problem(space=CodeSpace(o.dataset), evaluator=evaluator, domain=None,
                   objective={"metric": "validation accuracy", "unit": "%", "dataset": o.dataset},
                   context=context, executor=executor)  # fmt: skip


def make_problem(cfg: SearchConfig) -> Problem:
    return open_problem(cfg) if cfg.space == "open" else tabular_problem(cfg)


def _attach_run_dir(problem: Problem, run_dir: Path) -> None:
    """Trained weights go to <run_dir>/weights (open runs; tabular evaluators train nothing)."""
    if hasattr(problem.evaluator, "weights_dir"):
        problem.evaluator.weights_dir = Path(run_dir) / "weights"


def open_benchmark(cfg: SearchConfig) -> TabularBenchmark:
    if cfg.benchmark_file or cfg.space_file:
        if not (cfg.benchmark_file and cfg.space_file):
            raise ConfigError("--benchmark-file and --space-file go together: a table needs its space description")
        return load_user_benchmark(cfg.benchmark_file, cfg.space_file)
    return load_benchmark(cfg.benchmark)


def default_run_name(cfg: SearchConfig) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3]
    return f"{cfg.benchmark_name}-{cfg.strategy}-s{cfg.seed}-{stamp}"


@dataclass
class RunHandle:
    """What a run needs while it executes; built the same way for a new and a resumed run."""

    cfg: SearchConfig
    store: RunStore
    problem: Problem

    @property
    def bench(self) -> TabularBenchmark | None:
        return self.problem.bench


def _llm_for(cfg: SearchConfig, store: RunStore, provider: BackendProvider) -> RecordingLLM:
    own = store.llm_calls()
    if cfg.llm.backend == "replay":
        if not cfg.llm.replay_from or not is_run_dir(cfg.llm.replay_from):
            raise ConfigError(f"llm.replay_from: {cfg.llm.replay_from!r} is not a run directory")
        with RunStore.open(cfg.llm.replay_from, readonly=True) as src:
            source_calls = src.llm_calls()
        answered = len([c for c in own if not c.get("error")])
        live = ReplayBackend(source_calls, source=str(cfg.llm.replay_from), start=answered)
    else:
        live = provider.lazy(cfg.llm.model_dump())
    return RecordingLLM(
        live, sink=store.add_llm_call, recorded=own, max_calls=cfg.llm.max_calls, max_tokens=cfg.llm.max_tokens,
        source=str(store.run_dir),
    )  # fmt: skip


def create_run(cfg: SearchConfig, run_dir: str | Path | None = None) -> RunHandle:
    """Validate everything that can be checked before writing, then create the run folder."""
    strategy = create_strategy(cfg.strategy, cfg.strategies.get(cfg.strategy))  # refuse bad settings early
    if cfg.space not in strategy.spaces:
        from fairnad.search.base import REGISTRY

        able = sorted(n for n, c in REGISTRY.items() if cfg.space in c.spaces)
        raise ConfigError(f"strategy {strategy.name} cannot search {cfg.space} spaces; use one of: {', '.join(able)}")
    problem = make_problem(cfg)
    if cfg.fidelity is not None and problem.bench is not None:
        problem.bench.search_column(cfg.fidelity)
    run_dir = Path(run_dir) if run_dir else Path(cfg.runs_dir) / default_run_name(cfg)
    try:
        store = RunStore.create(run_dir, cfg.model_dump(mode="json"))
    except Exception:
        problem.close()
        raise
    try:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        store.set_meta(versions=versions())  # what the run was made with: shown by the report
    except (OSError, StoreError) as err:
        store.close()
        problem.close()
        if isinstance(err, StoreError):
            raise
        raise StoreError(f"{run_dir / 'config.yaml'}: cannot write ({err.strerror or err})") from None
    _attach_run_dir(problem, store.run_dir)
    return RunHandle(cfg, store, problem)


def open_run(run_dir: str | Path, budget: int | None = None) -> RunHandle:
    store = RunStore.open(run_dir)
    try:
        cfg = SearchConfig.model_validate(store.meta()["config"])
        if budget is not None:
            if budget < 1:
                raise ConfigError(f"--budget {budget}: must be at least 1")
            cfg.budget = budget
            store.set_meta(config=cfg.model_dump(mode="json"))
        problem = make_problem(cfg)
        _attach_run_dir(problem, store.run_dir)
        return RunHandle(cfg, store, problem)
    except Exception:
        store.close()
        raise


def execute(
    handle: RunHandle, provider: BackendProvider, on_result: Callable[[Study, Candidate], None] | None = None
) -> dict[str, Any]:
    """Drive the run to its budget. LLM outages pause it cleanly (RunPaused, resumable)."""
    cfg, store, problem = handle.cfg, handle.store, handle.problem
    strategy = create_strategy(cfg.strategy, cfg.strategies.get(cfg.strategy))
    llm = _llm_for(cfg, store, provider) if strategy.uses_llm else None
    study = Study(
        space=problem.space, evaluator=problem.evaluator, store=store, budget=cfg.budget, seed=cfg.seed, llm=llm,
        domain=problem.domain, fidelity=cfg.fidelity if problem.bench is not None else None,
        max_seconds=cfg.max_seconds, objective=problem.objective, context=problem.context, max_probes=cfg.max_probes,
    )  # fmt: skip
    if on_result is not None:
        study.callbacks.append(on_result)
    if cfg.space == "open":
        _log_sandbox(store, cfg.open.isolation)
    t0 = time.time()
    finished = False
    try:
        study.optimize(strategy)
        finished = True
    except (LLMUnavailable, LLMBudgetExceeded, ReplayExhausted) as err:
        store.set_meta(status="paused")
        store.add_event("paused", reason=str(err), evaluations=study.evaluations)
        raise RunPaused(f"{err}. The run is saved; continue it with: fairnad resume {store.run_dir}") from None
    except (LLMError, FairnadError) as err:
        store.set_meta(status="failed")
        store.add_event("failed", reason=str(err), evaluations=study.evaluations)
        raise
    finally:
        problem.close()
        try:
            _close_session(store, study, llm, t0, cfg.space == "open")
        except StoreError:
            if finished:  # else the error that stopped the run is the one to report
                raise
    return summarize(store, problem.bench)


def _log_sandbox(store: RunStore, isolation: str) -> None:
    """What generated code can see, in the run log (`runs show`): a user on a machine without
    namespaces learns that candidates run with limits only."""
    from fairnad.evaluate.sandbox import jail_paths, namespaces_available

    jailed = isolation == "namespaces" or (isolation == "auto" and namespaces_available())
    if jailed:
        store.add_event("sandbox", isolation="namespaces", readable=jail_paths(), network=False)
    else:
        store.add_event("sandbox", isolation="limits", readable="everything this user can read", network=True,
                        note="Linux namespaces are unavailable or switched off (open.isolation): candidates run "
                             "with rlimits, a watchdog and a stripped environment only")  # fmt: skip


def _close_session(store: RunStore, study: Study, llm: RecordingLLM | None, t0: float, open_space: bool) -> None:
    """The session's bookkeeping: the best model as a plain file, time used, the session event."""
    best = study.best()
    if open_space and best is not None:  # the best model as a plain file, ready to use
        path = store.run_dir / "best_model.py"
        try:
            path.write_text(best.genotype)
        except OSError as err:
            raise StoreError(f"{path}: cannot write ({err.strerror or err}); the run itself is saved") from None
    elapsed = store.meta().get("seconds", 0.0) + (time.time() - t0)
    store.set_meta(seconds=round(elapsed, 3))
    store.add_event(
        "session", seconds=round(time.time() - t0, 3), evaluations=study.evaluations,
        llm=llm.stats() if llm is not None else None,
    )  # fmt: skip


def made_by_llm(origin: dict[str, Any]) -> bool:
    """Whether a candidate is the model's own proposal, as the bench's 'share' counts it: what the
    strategy said when it made it (origin["source"] == "llm"; the vocabulary is in space/candidate.py).
    Origins stored before `source` existed are read by the legacy rule below."""
    if "source" in origin:
        return origin["source"] == "llm"
    return _legacy_made_by_llm(origin)


# LEGACY: origins stored before proposals carried `source` are classified by op name, as they were
# then: the child is the LLM's answer unless a fallback replaced it or an idea was edited into it.
# Their "mutation" may be regevo's: the callers count it only in runs that asked the LLM anything.
# New runs never reach this rule; do not add ops to it.
_LEGACY_LLM_OPS = {"llm", "idea", "iterative", "mutation", "crossover", "evoprompt", "fresh"}


def _legacy_made_by_llm(origin: dict[str, Any]) -> bool:
    if any(k in origin for k in ("fallback", "idea_enforced", "llm_answer")):
        return False
    op = origin.get("op")
    return op in _LEGACY_LLM_OPS or (op == "pareto" and origin.get("via") == "llm")


def summarize(store: RunStore, bench: TabularBenchmark | None = None) -> dict[str, Any]:
    """The run as one JSON-able object (what `search --json` and `runs show --json` print)."""
    meta = store.meta()
    cfg = meta.get("config", {})
    cands = store.candidates()
    done = [c for c in cands if c.ok]
    counted = [c for c in cands if c.counted]
    best = max(done, key=lambda c: c.metrics["accuracy"]) if done else None
    statuses: dict[str, int] = {}
    origins: dict[str, int] = {}  # what produced the evaluated candidates: llm, fallback, mutation, random...
    sources: dict[str, int] = {}  # who made them: llm, algorithm, fallback, init ("?": a run from before sources)
    totals = store.llm_totals()
    llm_strategy = totals["calls"] > 0  # (a strategy that asked nothing proposed nothing itself)
    llm_made = 0
    for c in cands:
        statuses[c.status] = statuses.get(c.status, 0) + 1
        if c.counted:
            op = c.origin.get("op", "?")
            origins[op] = origins.get(op, 0) + 1
            src = c.origin.get("source", "?")
            sources[src] = sources.get(src, 0) + 1
            llm_made += llm_strategy and made_by_llm(c.origin)
    out: dict[str, Any] = {
        "run_dir": str(store.run_dir),
        "strategy": cfg.get("strategy"),
        "benchmark": (cfg.get("open") or {}).get("dataset") if cfg.get("space") == "open"
        else Path(cfg["benchmark_file"]).stem if cfg.get("benchmark_file") else cfg.get("benchmark"),
        "space": cfg.get("space", "tabular"),
        "seed": cfg.get("seed"),
        "status": meta.get("status"),
        "budget": cfg.get("budget"),
        "evaluations": len(counted),
        "probes": len(store.probes()),  # cheap checks strategies ran before spending evaluations
        "proposals": len(cands),
        "statuses": statuses,
        "origins": origins,
        "sources": sources,
        "llm_made": llm_made,
        "best": None,
        "llm": totals,
        "seconds": meta.get("seconds"),
    }
    if best is not None:
        b = best.metrics
        out["best"] = {
            "trial": best.trial,
            "genotype": best.genotype,
            "accuracy": b.get("test_accuracy", b["accuracy"]),
            "search_accuracy": b["accuracy"],
            "rank": b.get("rank"),
            **{k: b[k] for k in ("params", "flops", "arch") if k in b},
        }
        if bench is not None:
            out["best"]["description"] = bench.space.describe(best.genotype)
            out["table_size"] = len(bench)
    if best is not None:
        out["best"]["origin"] = origin_label(best.origin)
        out["best"]["by_llm"] = bool(llm_strategy and made_by_llm(best.origin))
    out["children"] = children_table(cands, llm_strategy)
    out["trajectory"] = best_so_far(cands)
    return out


def origin_label(origin: dict[str, Any]) -> str:
    """What made a candidate, in words a table can group by: idea, pareto (llm), pareto (arguments)..."""
    op = origin.get("op", "?")
    return f"{op} ({origin['via']})" if origin.get("via") else op


def children_table(cands: list[Candidate], llm_strategy: bool = True) -> list[dict[str, Any]]:
    """Per origin: proposed, trained (evaluated without failing; of those, how many trained once their
    layers' input sizes were inferred from the data), improved the best so far, improved the
    Pareto front of accuracy and parameters (non-dominated by everything completed before it), and
    whether the LLM wrote those children. Refused proposals (duplicates, no code) count as proposed."""
    from fairnad.search.pareto import improves_front

    rows: dict[str, dict[str, Any]] = {}
    done: list[Candidate] = []
    best = None
    for c in cands:
        r = rows.setdefault(origin_label(c.origin), {"origin": origin_label(c.origin), "by_llm": False, "proposed": 0,
                                                     "trained": 0, "sizes_inferred": 0, "improved_best": 0,
                                                     "improved_front": 0})  # fmt: skip
        r["proposed"] += 1
        r["by_llm"] = r["by_llm"] or bool(llm_strategy and made_by_llm(c.origin))
        if c.ok:
            r["trained"] += 1
            r["sizes_inferred"] += int(bool(c.origin.get("inferred_sizes")))
            r["improved_front"] += int(improves_front(c, done, "params"))
            if best is None or c.metrics["accuracy"] > best:
                r["improved_best"] += int(best is not None)
                best = c.metrics["accuracy"]
            done.append(c)
    return sorted(rows.values(), key=lambda r: (not r["by_llm"], r["origin"]))


def best_so_far(cands: list[Candidate]) -> list[dict[str, Any]]:
    """After each counted evaluation: the reported accuracy and rank of the best-so-far (by search metric)."""
    traj = []
    best = None
    for c in cands:
        if not c.counted:
            continue
        if c.ok and (best is None or c.metrics["accuracy"] > best.metrics["accuracy"]):
            best = c
        if best is not None:
            traj.append(
                {"evaluations": len(traj) + 1, "accuracy": best.metrics.get("test_accuracy", best.metrics["accuracy"]),
                 "rank": best.metrics.get("rank"), "trial": best.trial}
            )  # fmt: skip
        else:
            traj.append({"evaluations": len(traj) + 1, "accuracy": None, "rank": None, "trial": None})
    return traj


def list_runs(root: str | Path) -> list[dict[str, Any]]:
    root = Path(root)
    rows = []
    if not root.is_dir():
        return rows
    for d in sorted(p for p in root.rglob("run.db")):
        try:
            with RunStore.open(d.parent, readonly=True) as store:
                s = summarize(store)
        except (StoreError, FairnadError) as err:
            rows.append({"run_dir": str(d.parent), "status": f"unreadable: {err}"})
            continue
        s.pop("trajectory", None)
        rows.append(s)
    return rows
