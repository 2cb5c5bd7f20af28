"""Self-contained HTML pages (run report, comparison, bench): plotly.js is embedded once, the data
goes in as inert JSON and the page's own script renders every string with textContent only, so
nothing a paper or an LLM wrote can become markup or script. The pages work offline.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from fairnad.errors import ConfigError
from fairnad.report import figures as F
from fairnad.versions import versions

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)
TOP = 15  # candidates in the "top candidates" table
PROGRESS_NOTE = ("The best so far is chosen by the search metric (validation accuracy, or the table's search "
                 "column); the curves show its reported accuracy (test accuracy where the run has it).")


def safe_json(obj) -> str:
    """JSON that is inert inside an HTML <script> element."""
    return (json.dumps(obj, ensure_ascii=False, allow_nan=False, default=str).replace("<", "\\u003c")
            .replace(">", "\\u003e").replace("&", "\\u0026").replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029"))  # fmt: skip


@lru_cache(maxsize=1)
def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _fig(fig, clickable: bool = False) -> dict[str, Any]:
    d = json.loads(fig.to_json())
    d["clickable"] = clickable
    return d


def _clean(obj):
    """NaN and infinities are not JSON: they become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def render(out: str | Path, data: dict[str, Any]) -> Path:
    data = _clean({**data, "report_versions": versions()})
    page = _ENV.get_template("report.html.j2").render(title=data["title"], data_json=safe_json(data),
                                                      plotly_js=plotly_js())  # fmt: skip
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(out)  # a reader never sees half a page
    except OSError as err:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise ConfigError(f"cannot write {out}: {err.strerror or err}; choose another file with -o") from None
    return out


def _pct(x) -> str | None:
    return None if x is None else f"{x:.3f}"


# -- one run -----------------------------------------------------------------------------------
def run_page(run: dict[str, Any]) -> dict[str, Any]:
    s = run["summary"]
    cands = run["candidates"]
    done = sorted((r for r in cands if r["accuracy"] is not None), key=lambda r: -run.get("sign", 1) * r["accuracy"])
    cost = run["cost"]
    llm = s["llm"]
    valid = sum(1 for r in cands if r["counted"] and r["accuracy"] is not None)
    summary = [
        ["run", run["run_dir"]], ["strategy", f"{s['strategy']} on {s['benchmark']} (seed {s['seed']})"],
        ["status", s.get("status")], ["evaluations", f"{s['evaluations']} of {s['budget']} ({s['proposals']} proposals)"],
        ["probes", f"{s.get('probes', 0)} (build and shape checks and quick trainings, stored in the run)"],
        ["valid", f"{valid} of {s['evaluations']}" + (f" ({100 * valid / s['evaluations']:.0f}%)" if s["evaluations"] else "")],
        ["best", None if not s["best"] else f"{s['best'].get('metric', 'accuracy')} {s['best']['accuracy']:.3f}"
                 f"{s['best'].get('unit', '%')} (trial {s['best']['trial']})"],
        ["LLM", f"{llm['calls']} calls, {llm['tokens_in']:,} tokens in, {llm['tokens_out']:,} out, "
                f"{llm['seconds']:.1f} s, {llm['errors']} errors"],
        ["proposed by the LLM itself", f"{s.get('llm_made', 0)} of {s['evaluations']} evaluations"],
        ["active seconds", s.get("seconds")],
    ]  # fmt: skip
    top = {"columns": ["trial", "mutation", "idea", "accuracy (search)", "accuracy (reported)", "params", "FLOPs",
                       "rank"],
           "rows": [[r["trial"], r["op"], r["idea"], _pct(r["accuracy"]), _pct(r["test_accuracy"]), r["params"],
                     r["flops"], r["rank"]] for r in done[:TOP]], "clickable": True}  # fmt: skip
    group_cols = ["name", "proposed", "evaluated", "valid", "improved the best", "improved the front", "best accuracy"]

    def group_rows(gs):
        return [[g["name"], g["proposed"], g["evaluated"], g["valid"], g["improved_best"], g["improved_front"],
                 _pct(g["best"])] for g in gs]  # fmt: skip

    sections = [
        {"id": "progress", "title": "Progress", "note": PROGRESS_NOTE,
         "figures": [_fig(F.best_so_far([run], x)) for x in ("evaluations", "tokens", "time")
                     if x != "tokens" or llm["calls"]]},  # fmt: skip
        {"id": "pareto", "title": "Accuracy against cost", "figures": [_fig(F.accuracy_vs_cost([run]))] if cost else [],
         "note": None if cost else "Candidates report no parameters or FLOPs."},
        {"id": "lineage", "title": "Lineage", "figures": [_fig(F.lineage(run), clickable=True)],
         "note": "Click a node (or any row with a trial number) for the candidate's code, metrics, error and the "
                 "prompt that made it."},
        {"id": "top", "title": "Top candidates", "tables": [top]},
        {"id": "mutations", "title": "Mutation types", "figures": [_fig(F.group_bars(run["mutations"],
                                                                                     "Per mutation type"))],
         "tables": [{"columns": ["mutation"] + group_cols[1:], "rows": group_rows(run["mutations"])}]},
    ]  # fmt: skip
    credit = s.get("credit")
    if credit:
        sections.append({
            "id": "credit", "title": "Credit: the LLM against the algorithm",
            "note": "Adaptive FairNAD: each child's mutation type and maker (the LLM, or the step's deterministic "
                    "counterpart, the algorithm alone) is drawn with these chances, which follow how often each "
                    "arm's children improved the best or the front (strategies.fairnad.adaptive).",
            "figures": [_fig(F.chances(credit))] if credit["chances"] else [],
            "tables": [{"columns": ["arm", "children", "improved", "per evaluation", "LLM seconds",
                                    "improved per LLM minute", "chance at start", "chance now"],
                        "rows": [[a["arm"], a["children"], a["improved"], a["improved_per_evaluation"],
                                  a["llm_seconds"], a["improved_per_llm_minute"], a["start"], a["chance"]]
                                 for a in credit["arms"]]}],
        })  # fmt: skip
    if run["ideas"]:
        sections.append({"id": "ideas", "title": "Ideas", "figures": [_fig(F.group_bars(run["ideas"], "Per idea"))],
                         "tables": [{"columns": ["idea", "category"] + group_cols[1:],
                                     "rows": [[g["name"], g.get("category")] + r[1:] for g, r in
                                              zip(run["ideas"], group_rows(run["ideas"]))]}]})  # fmt: skip
    fails = run["failures"]
    sections.append({
        "id": "failures", "title": "Failures", "figures": [_fig(F.failures(fails))] if fails else [],
        "note": None if fails else "No candidate failed or was refused.",
        "tables": [{"columns": ["category", "candidates", "used the budget", "example trial", "example error"],
                    "rows": [[f["category"], f["count"], f["counted"], f["trial"], f["example"]] for f in fails],
                    "clickable_col": 3}] if fails else [],
    })  # fmt: skip
    if run["llm"]["calls"]:
        sections.append({
            "id": "llm", "title": "LLM usage", "figures": [_fig(F.llm_latency(run["llm"]))],
            "tables": [{"columns": ["purpose", "calls", "tokens in", "tokens out", "seconds", "mean latency (s)",
                                    "errors", "replayed"],
                        "rows": [[p["purpose"], p["calls"], p["tokens_in"], p["tokens_out"], round(p["seconds"], 2),
                                  None if p["mean_latency"] is None else round(p["mean_latency"], 3), p["errors"],
                                  p["replayed"]] for p in run["llm"]["per_purpose"]]}],
        })  # fmt: skip
    sections.append({"id": "config", "title": "Config and versions", "pre": run["config"],
                     "tables": [{"columns": ["component", "version"],
                                 "rows": [[k, v] for k, v in run["versions"].items() if v]}]})  # fmt: skip
    return {
        "kind": "run", "title": f"fairnad run {run['name']}",
        "subtitle": f"{s['strategy']} on {s['benchmark']} · seed {s['seed']} · {s['evaluations']} evaluations",
        "summary": summary, "sections": sections,
        "candidates": {str(r["trial"]): r for r in cands},
    }


def write_run_report(run_dir: str | Path, out: str | Path) -> Path:
    from fairnad.report.data import run_payload

    return render(out, run_page(run_payload(run_dir)))


# -- several runs ------------------------------------------------------------------------------
def compare_page(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for r in runs:
        s = r["summary"]
        rows.append([r["name"], s["strategy"], s["benchmark"], s["seed"], s["evaluations"],
                     _pct((s["best"] or {}).get("accuracy")), (s["best"] or {}).get("rank"), s["llm"]["calls"],
                     s["llm"]["tokens_in"] + s["llm"]["tokens_out"], s.get("seconds"), r["run_dir"]])  # fmt: skip
    any_llm = any(r["summary"]["llm"]["calls"] for r in runs)
    sections = [
        {"id": "runs", "title": "Runs", "tables": [{"columns": ["run", "strategy", "benchmark", "seed", "evaluations",
                                                                "best accuracy", "best rank", "LLM calls",
                                                                "LLM tokens", "active seconds", "folder"],
                                                    "rows": rows}]},  # fmt: skip
        {"id": "progress", "title": "Progress", "note": PROGRESS_NOTE,
         "figures": [_fig(F.best_so_far(runs, x)) for x in ("evaluations", "tokens", "time")
                     if x != "tokens" or any_llm]},  # fmt: skip
    ]
    if any(r["cost"] for r in runs):
        sections.append({"id": "pareto", "title": "Accuracy against cost", "figures": [_fig(F.accuracy_vs_cost(runs))]})
    benches = {r["summary"]["benchmark"] for r in runs}
    note = None if len(benches) == 1 else f"These runs are on different benchmarks ({', '.join(sorted(map(str, benches)))})."
    return {"kind": "compare", "title": f"fairnad: {len(runs)} runs compared", "subtitle": note or "",
            "summary": [], "sections": sections}  # fmt: skip


def write_compare_report(run_dirs: list[str | Path], out: str | Path) -> Path:
    from fairnad.report.data import run_payload

    return render(out, compare_page([run_payload(d) for d in run_dirs]))


# -- bench -------------------------------------------------------------------------------------
def bench_page(title: str, curves: dict[str, dict[str, dict]], expectations: dict[str, dict], rows: list[dict]) -> dict:
    """curves: benchmark -> strategy -> {x, mean, std, seeds}; expectations: benchmark -> {x, mean}."""
    sections = []
    for bench, per in curves.items():
        sections.append({"id": f"bench-{len(sections)}", "title": bench,
                         "figures": [_fig(F.bench_bands(bench, per, expectations.get(bench)))]})  # fmt: skip
    cols = ["benchmark", "strategy", "budget", "runs", "accuracy mean", "accuracy std", "rank mean", "failed",
            "LLM calls/run", "LLM share"]  # fmt: skip
    table = [[r["benchmark"], r["strategy"], r["budget"], r["runs"], _pct(r["acc_mean"]), _pct(r["acc_std"]),
              None if r["rank_mean"] is None else round(r["rank_mean"], 1), r["failed"],
              None if r.get("llm_calls") is None else round(r["llm_calls"], 1),
              None if r.get("llm_share") is None else f"{100 * r['llm_share']:.0f}%"] for r in rows]  # fmt: skip
    sections.append({"id": "table", "title": "Table", "tables": [{"columns": cols, "rows": table}]})
    return {"kind": "bench", "title": title, "subtitle": "best-so-far reported accuracy, mean ± std over seeds; "
            "dashed: the exact expectation of random search", "summary": [], "sections": sections}  # fmt: skip
