"""A run folder as plain data for the report: candidates with their lineage and the prompt that
made them, best-so-far curves over evaluations / tokens / active time, idea and mutation
statistics, failure categories and LLM usage. Pure reading: the run is opened read-only.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any

import yaml

from fairnad.store.summary import made_by_llm, run_objective, summarize, verdicts
from fairnad.pareto import as_objectives, nondominated
from fairnad.space.candidate import Candidate
from fairnad.store import RunStore

TEXT_CAP = 20_000  # characters of any one code / prompt / answer kept in the page
PROMPT_MESSAGES = 3  # the last messages of the request that made a candidate


def _cap(text: Any, n: int = TEXT_CAP) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= n else s[:n] + f"\n... ({len(s) - n:,} more characters)"


def active_seconds(store: RunStore, cands: list[Candidate]):
    """t -> seconds the run was actually running before t (gaps between sessions removed)."""
    events = store.events()
    starts = [e["time"] for e in events if e["kind"] in ("started", "resumed")]
    ends = [e["time"] for e in events if e["kind"] == "session"]
    finished = sorted(c.finished for c in cands if c.finished)
    spans = []
    for i, s in enumerate(starts):
        nxt = starts[i + 1] if i + 1 < len(starts) else float("inf")
        end = next((e for e in ends if s <= e <= nxt), None)
        if end is None:  # killed: the last thing it finished
            inside = [f for f in finished if s <= f < nxt]
            end = max(inside) if inside else s
        spans.append((s, end))
    if not spans and finished:
        spans = [(min(c.created for c in cands), finished[-1])]

    def at(t: float) -> float:
        return sum(max(0.0, min(t, e) - s) for s, e in spans)

    return at


def run_payload(run_dir: str | Path) -> dict[str, Any]:
    """Everything the report shows about one run, as JSON-able data."""
    with RunStore.open(run_dir, readonly=True) as store:
        meta = store.meta()
        summary = summarize(store)
        cands = store.candidates()
        calls = store.llm_calls()
        elapsed = active_seconds(store, cands)
        events = store.events()
    cfg = meta.get("config", {})
    cost = summary["cost"]  # the run's cost axis, on which its verdicts were decided
    objective = run_objective(meta)
    score = objective.score  # signed so that higher is better (a table's error column)
    sign = score(1.0)
    judged = verdicts(cands, objective, cost)  # as the Study stored them
    llm_strategy = summary["llm"]["calls"] > 0  # as summarize decides it

    # the LLM calls that made each candidate: the seqs its origin records (runs from before that was
    # recorded: the calls after the previous admission, by time)
    call_times = [c["created"] for c in calls]
    index_of = {c["seq"]: i for i, c in enumerate(calls)}
    prev_t = float("-inf")
    made_by: dict[int, list[int]] = {}
    for c in cands:
        if isinstance(c.origin.get("llm_calls"), list):
            made_by[c.trial] = [index_of[s] for s in c.origin["llm_calls"] if s in index_of]
        else:
            lo, hi = bisect.bisect_right(call_times, prev_t), bisect.bisect_right(call_times, c.created)
            made_by[c.trial] = list(range(lo, hi))
        prev_t = c.created
    tokens_before = [0]
    for c in calls:
        tokens_before.append(tokens_before[-1] + (c.get("tokens_in") or 0) + (c.get("tokens_out") or 0))

    rows = []
    for c, (improved_best, improved_front) in zip(cands, judged):
        m = c.metrics
        acc = m.get("accuracy") if c.ok else None
        ids = made_by.get(c.trial, [])
        prompt = None
        if ids:
            last = calls[ids[-1]]
            msgs = (last.get("messages") or [])[-PROMPT_MESSAGES:]
            prompt = {
                "calls": len(ids), "purpose": last.get("purpose") or "",
                "messages": [{"role": str(x.get("role", "")), "content": _cap(x.get("content"))} for x in msgs],
                "answer": _cap(last.get("text")), "error": last.get("error"),
                "tokens": sum((calls[i].get("tokens_in") or 0) + (calls[i].get("tokens_out") or 0) for i in ids),
            }
        idea = c.origin.get("idea") if isinstance(c.origin.get("idea"), dict) else None
        rows.append({
            "trial": c.trial, "genotype": _cap(c.genotype), "parents": list(c.parents), "status": c.status,
            "counted": c.counted, "op": str(c.origin.get("op", "?")), "origin": c.origin,
            "idea": (idea or {}).get("name"), "idea_category": (idea or {}).get("category"),
            "accuracy": acc, "test_accuracy": m.get("test_accuracy") if c.ok else None,
            "params": m.get("params"), "flops": m.get("flops"), "rank": m.get("rank"),
            "failure": m.get("failure") or (c.status if c.status in ("invalid", "duplicate") else None),
            "error": _cap(c.error, 4000) if c.error else None, "traceback": _cap(m.get("traceback"), 4000) or None,
            "curve": m.get("curves"), "seconds": m.get("seconds"),
            "llm_made": llm_strategy and made_by_llm(c.origin), "prompt": prompt,
            "improved_best": improved_best, "improved_front": improved_front,
            "tokens": tokens_before[ids[-1] + 1] if ids else tokens_before[bisect.bisect_right(call_times, c.created)],
            "time": round(elapsed(c.finished), 3) if c.finished else None,
        })  # fmt: skip

    priced = [c for c in cands if c.ok and cost and c.metrics.get(cost) is not None]
    trajectory = summary.pop("trajectory")  # (shown as "progress", with tokens and time)
    return {
        "run_dir": str(run_dir),
        "name": Path(run_dir).resolve().name,
        "summary": summary,
        "cost": cost,
        "candidates": rows,
        "front": [priced[i].trial for i in sorted(nondominated(as_objectives([(score(c.metrics["accuracy"]), c.metrics[cost])
                                                                              for c in priced])),
                                                   key=lambda i: priced[i].metrics[cost])],
        "progress": progress(rows, trajectory),
        "sign": sign,  # 1, or -1 where the metric is better lower: the best of a group is its max of sign * value
        "mutations": group_stats(rows, "op", sign=sign),
        "ideas": group_stats([r for r in rows if r["idea"]], "idea", extra="idea_category", sign=sign),
        "failures": failure_stats(rows),
        "llm": llm_stats(calls),
        "config": yaml.safe_dump(cfg, sort_keys=False),
        "versions": {"fairnad (run)": meta.get("fairnad_version"), **(meta.get("versions") or {})},
        "created": meta.get("created"),
        "status": meta.get("status"),
        "events": [{"kind": e["kind"], "time": e["time"]} for e in events if e["kind"] in
                   ("started", "resumed", "paused", "failed", "finished", "stopped")],  # fmt: skip
    }


def progress(rows: list[dict[str, Any]], trajectory: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's best-so-far trajectory (`runs.best_so_far`: one point per counted evaluation), with
    the tokens and active time used by then and the best's search accuracy."""
    counted = [r for r in rows if r["counted"]]
    by_trial = {r["trial"]: r for r in rows}
    return [{"evaluations": p["evaluations"], "tokens": r["tokens"], "time": r["time"], "best": p["accuracy"],
             "best_search": None if p["trial"] is None else by_trial[p["trial"]]["accuracy"], "trial": p["trial"]}
            for p, r in zip(trajectory, counted)]  # fmt: skip


def group_stats(rows: list[dict[str, Any]], key: str, extra: str | None = None, sign: float = 1.0
                ) -> list[dict[str, Any]]:  # fmt: skip
    """Per mutation type (or idea): proposed, evaluated, valid, improved the best, improved the front."""
    groups: dict[str, dict[str, Any]] = {}
    for r in rows:
        g = groups.setdefault(str(r[key]), {"name": str(r[key]), "proposed": 0, "evaluated": 0, "valid": 0,
                                             "improved_best": 0, "improved_front": 0, "best": None})  # fmt: skip
        if extra:
            g["category"] = r.get(extra)
        g["proposed"] += 1
        g["evaluated"] += r["counted"]
        if r["accuracy"] is not None:
            g["valid"] += 1
            g["best"] = r["accuracy"] if g["best"] is None else max(g["best"], r["accuracy"], key=lambda a: sign * a)
        g["improved_best"] += r["improved_best"]
        g["improved_front"] += r["improved_front"]
    return sorted(groups.values(), key=lambda g: (-g["improved_front"], -g["valid"], g["name"]))


def failure_stats(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Counts of every failure category (refusals included), with one example error each."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["failure"] is None or r["status"] == "complete":
            continue
        f = out.setdefault(r["failure"], {"category": r["failure"], "count": 0, "counted": 0, "example": r["error"],
                                          "trial": r["trial"]})  # fmt: skip
        f["count"] += 1
        f["counted"] += r["counted"]
    return sorted(out.values(), key=lambda f: -f["count"])


def llm_stats(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Calls, tokens, latency and errors per purpose, and per call (for the latency plot)."""
    per: dict[str, dict[str, Any]] = {}
    for c in calls:
        p = per.setdefault(c.get("purpose") or "(unnamed)", {"purpose": c.get("purpose") or "(unnamed)", "calls": 0,
                           "tokens_in": 0, "tokens_out": 0, "seconds": 0.0, "errors": 0, "replayed": 0})  # fmt: skip
        p["calls"] += 1
        p["tokens_in"] += c.get("tokens_in") or 0
        p["tokens_out"] += c.get("tokens_out") or 0
        p["seconds"] += c.get("latency") or 0.0
        p["errors"] += bool(c.get("error"))
        p["replayed"] += bool(c.get("replayed_from"))
    for p in per.values():
        p["mean_latency"] = p["seconds"] / p["calls"] if p["calls"] else None
    return {
        "per_purpose": sorted(per.values(), key=lambda p: -p["calls"]),
        "calls": [{"seq": c["seq"], "purpose": c.get("purpose") or "", "latency": c.get("latency"),
                   "tokens_in": c.get("tokens_in"), "tokens_out": c.get("tokens_out"), "error": bool(c.get("error"))}
                  for c in calls],  # fmt: skip
    }
