"""A run as plain data, read from its store alone: the summary `search --json` and `runs show` print,
the children table, the best-so-far trajectory, who made each candidate, and the list of runs under
a folder. The report, the bench and export read runs through here; nothing here runs anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fairnad.errors import FairnadError
from fairnad.pareto import Verdicts
from fairnad.problem import ACCURACY, Objective
from fairnad.space.candidate import Candidate
from fairnad.store.sqlite import RunStore, StoreError, in_use


def run_objective(meta: dict[str, Any]) -> Objective:
    """What "best" means in a run: its first objective, as stored (an error column is better lower);
    runs from before objectives were stored searched accuracy."""
    stored = meta.get("objectives")
    return Objective(**stored[0]) if stored else ACCURACY


def run_cost(meta: dict[str, Any], cands: list[Candidate] = ()) -> str:
    """The run's cost axis, as stored ("params" or "flops"). Runs from before it was stored: what the
    config or FairNAD's own `cost` setting said, else params, or FLOPs where no model has a parameter count."""
    if meta.get("cost"):
        return meta["cost"]
    cfg = meta.get("config") or {}
    said = cfg.get("cost") or ((cfg.get("strategies") or {}).get("fairnad") or {}).get("cost")
    if said:
        return said
    priced = lambda key: any(c.ok and c.metrics.get(key) is not None for c in cands)  # noqa: E731
    return "flops" if not priced("params") and priced("flops") else "params"


def verdicts(cands: list[Candidate], objective: Objective = ACCURACY, cost: str = "params") -> list[tuple[bool, bool]]:
    """(improved the best, improved the front) of each candidate, in order: the verdicts the Study stored
    with them. A run stored before verdicts were gets them decided by the same rule (Verdicts) here."""
    judge, out = Verdicts(), []
    for c in cands:
        decided = judge.judge(objective.score(c.metrics[objective.name]) if c.ok else None,
                              c.metrics.get(cost) if c.ok else None)  # fmt: skip
        out.append(decided if c.improved_best is None else (bool(c.improved_best), bool(c.improved_front)))
    return out


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


def summarize(store: RunStore, bench: Any = None) -> dict[str, Any]:
    """The run as one JSON-able object (what `search --json` and `runs show --json` print); with the
    run's tabular benchmark, the best genotype described and the table's size."""
    meta = store.meta()
    cfg = meta.get("config", {})
    cands = store.candidates()
    counted = [c for c in cands if c.counted]
    objective, cost = run_objective(meta), run_cost(meta, cands)
    judged = verdicts(cands, objective, cost)
    best = next((c for c, (b, _) in zip(reversed(cands), reversed(judged)) if b), None)  # the last to improve it
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
        "status": _status(meta.get("status"), store.run_dir),
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
            # what the figures are: accuracy in %, or a user's table column (an error, a loss) as it is
            "metric": "accuracy" if objective.unit == "%" else objective.label or objective.name,
            "unit": objective.unit,
        }
        if bench is not None:
            out["best"]["description"] = bench.space.describe(best.genotype)
            out["table_size"] = len(bench)
    out["space_exhausted"] = any(e["kind"] == "space_exhausted" for e in store.events())
    if best is not None:
        out["best"]["origin"] = origin_label(best.origin)
        out["best"]["by_llm"] = bool(llm_strategy and made_by_llm(best.origin))
    out["cost"] = cost
    out["credit"] = credit_table(meta, cands, store) if (meta.get("fairnad_stats") or {}).get("credit") else None
    out["children"] = children_table(cands, llm_strategy, judged)
    out["trajectory"] = best_so_far(cands, judged)
    return out


def _status(stored: str | None, run_dir: Path) -> str | None:
    """The stored status, except a "running" run that no live process holds: it was killed or crashed."""
    if stored == "running" and not in_use(run_dir):
        return "interrupted"
    return stored


def origin_label(origin: dict[str, Any]) -> str:
    """What made a candidate, in words a table can group by: idea, pareto (llm), pareto (arguments), idea
    (algorithm) (an adaptive run's counterpart of an LLM step, search/credit.py)..."""
    op = origin.get("op", "?")
    if origin.get("via"):
        return f"{op} ({origin['via']})"
    return f"{op} (algorithm)" if op != "pareto" and str(origin.get("arm", "")).endswith("/algorithm") else op


def children_table(cands: list[Candidate], llm_strategy: bool = True, judged: list[tuple[bool, bool]] | None = None
                   ) -> list[dict[str, Any]]:  # fmt: skip
    """Per origin: proposed, trained (evaluated without failing; of those, how many trained once their
    layers' input sizes were inferred from the data), improved the best so far, improved the Pareto
    front of score and the run's cost (the stored verdicts, `judged`: see `verdicts`), and whether the
    LLM wrote those children. Refused proposals (duplicates, no code) count as proposed."""
    judged = judged if judged is not None else verdicts(cands)
    rows: dict[str, dict[str, Any]] = {}
    for c, (improved_best, improved_front) in zip(cands, judged):
        r = rows.setdefault(origin_label(c.origin), {"origin": origin_label(c.origin), "by_llm": False, "proposed": 0,
                                                     "trained": 0, "sizes_inferred": 0, "improved_best": 0,
                                                     "improved_front": 0})  # fmt: skip
        r["proposed"] += 1
        r["by_llm"] = r["by_llm"] or bool(llm_strategy and made_by_llm(c.origin))
        if c.ok:
            r["trained"] += 1
            r["sizes_inferred"] += int(bool(c.origin.get("inferred_sizes")))
            r["improved_front"] += int(improved_front)
            r["improved_best"] += int(improved_best)
    return sorted(rows.values(), key=lambda r: (not r["by_llm"], r["origin"]))


def credit_table(meta: dict[str, Any], cands: list[Candidate], store: RunStore) -> dict[str, Any]:
    """An adaptive FairNAD run's arms (mutation type / source): children, how many improved the best or the
    front, the LLM seconds their asking took, and the chance the credit started and ended with; and the
    chances after each child (search/credit.py, stored in the run's meta `fairnad_stats`)."""
    stats = meta["fairnad_stats"]
    latency = {seq: lat or 0.0 for seq, lat in store.llm_latencies()}
    seconds: dict[str, float] = {}
    for c in cands:
        arm = c.origin.get("arm")
        if arm:
            seconds[arm] = seconds.get(arm, 0.0) + sum(latency.get(s, 0.0) for s in c.origin.get("llm_calls") or ())
    arms = [{"arm": name, "children": a["children"], "improved": a["improved"], "start": a["start"],
             "chance": a["chance"], "llm_seconds": round(seconds.get(name, 0.0), 1),
             "improved_per_evaluation": round(a["improved"] / a["children"], 3) if a["children"] else None,
             "improved_per_llm_minute": round(60 * a["improved"] / seconds[name], 3) if seconds.get(name) else None}
            for name, a in stats["credit"].items()]  # fmt: skip
    return {"arms": arms, "chances": stats.get("chances") or []}


def best_so_far(cands: list[Candidate], judged: list[tuple[bool, bool]] | None = None) -> list[dict[str, Any]]:
    """After each counted evaluation: the reported accuracy and rank of the best so far (the last
    candidate whose stored verdict says it improved the best)."""
    judged = judged if judged is not None else verdicts(cands)
    traj = []
    best = None
    for c, (improved_best, _) in zip(cands, judged):
        if not c.counted:
            continue
        if improved_best:
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


def knowledge_summary(tree, report: dict[str, Any], papers: list[dict[str, Any]], llm, seconds: float,
                      out: Path) -> dict[str, Any]:  # fmt: skip
    """A knowledge build as one JSON-able object (what `knowledge build --json` prints): papers read and
    skipped, what was read only in part (`warnings`: a page whose tables could not be read...),
    attributes proposed / accepted / rejected (per reason) / after merging, categories filled,
    parsing speed, LLM use. `papers` are the build store's rows of the papers this build was given."""
    done = [p for p in papers if p["status"] == "done"]
    agg = {k: sum(p.get("stats", {}).get(k, 0) for p in done) for k in ("proposed", "verified", "rejected", "failed_calls")}
    rejections: dict[str, int] = {}
    for p in done:
        for why, n in p.get("stats", {}).get("rejections", {}).items():
            rejections[why] = rejections.get(why, 0) + n
    parse_s = sum(p.get("stats", {}).get("parse_seconds", 0) for p in done)
    pages = sum(p.get("pages") or 0 for p in done)
    stats = tree.stats()
    return {
        "tree": str(out), "papers": len(done),
        "skipped": [{"path": p["path"], "reason": p.get("error")} for p in papers if p["status"] == "skipped"],
        "warnings": [{"paper": p["name"], "warning": w} for p in done for w in p.get("stats", {}).get("warnings", [])],
        "attributes": {**agg, "consolidated": len(tree.attributes()), "merged": report.get("merged", 0),
                       "sources_dropped": report.get("sources_dropped", 0)},
        "rejections": rejections,
        "categories": {"filled": len(stats["categories"]) - len(stats["empty_categories"]),
                       "empty": stats["empty_categories"]},
        "pages_per_second": round(pages / parse_s, 2) if parse_s else None,
        "per_paper": [{"paper": p["name"], "pages": p.get("pages"), "seconds": p.get("seconds"),
                       **{k: p.get("stats", {}).get(k) for k in ("proposed", "verified", "rejected")}} for p in done],
        "found_by_name": report.get("found_by_name"),
        "llm": llm.stats() if llm is not None else None, "seconds": round(seconds, 2),
    }  # fmt: skip
