"""What the CLI shows in the terminal: tables of the plain results the lifecycle returns, and the
progress bars of long commands. Reads dicts, writes to the console; imports nothing of the stages.
"""

from __future__ import annotations

import contextlib
import json
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fairnad.errors import one_line

err_console = Console(stderr=True, highlight=False, emoji=False)  # (":-1:" in a message stays as it is)


def num(v) -> str:
    if v is None:
        return "n/a"
    if v >= 1e5:
        return f"{v / 1e6:.2f}M"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.4g}"  # a table's CSV gives 18000.0 for 18,000


def _pct(v) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) else "-"


def _tokens(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _pairs() -> Table:
    """A two-column table of names (bold) and values, without borders."""
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    return t


# -- progress ----------------------------------------------------------------------------------
@contextlib.contextmanager
def run_progress(label: str, budget: int, done: int) -> Iterator[Callable]:
    """A live line while a run executes: budget used (the bar), best so far, share of valid evaluations,
    LLM calls and tokens. Yields the callback the run calls after each candidate."""
    progress = Progress(
        TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), console=err_console,
    )  # fmt: skip
    with progress:
        task = progress.add_task("starting", total=budget, completed=done)

        def on_result(study, cand) -> None:
            best = study.best()
            parts = []
            if best is not None:
                m = best.metrics
                parts.append(f"best {m.get('test_accuracy', m['accuracy']):.2f}%"
                             + (f" rank {m['rank']}" if m.get("rank") is not None else ""))  # fmt: skip
            if study.evaluations:
                parts.append(f"valid {100 * len(study.completed()) / study.evaluations:.0f}%")
            if study.probes:
                parts.append(f"probes {study.probes}")
            if study.llm is not None:
                st = study.llm.stats()
                parts.append(f"llm {st['calls']} calls {_tokens(st['tokens_in'] + st['tokens_out'])} tok")
            progress.update(task, completed=study.evaluations, description=" · ".join(parts))

        yield on_result


class BenchProgress:
    """The bench's bar over all evaluations of the grid, shown once the grid is planned (`start`):
    a grid refused before that prints its error alone."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("[bold]bench[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=err_console)  # fmt: skip
        self.task = None

    def start(self, jobs: int, budget: int, out: Path) -> None:
        err_console.print(f"bench: {jobs} runs of {budget} evaluations into {out}")
        self.progress.start()
        self.task = self.progress.add_task("", total=jobs * budget)

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)


@contextlib.contextmanager
def bench_progress() -> Iterator[BenchProgress]:
    bar = BenchProgress()
    try:
        yield bar
    finally:
        if bar.task is not None:
            bar.progress.stop()


@contextlib.contextmanager
def paper_progress(total: int) -> Iterator[Callable[[str | None, str], None]]:
    """A bar over the papers of a knowledge build, shown from the first paper on (inputs refused before
    print their error alone); yields note(paper, stage) for the build to call."""
    progress = Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[stage]}"), TimeElapsedColumn(), console=err_console)  # fmt: skip
    task = None
    seen: set[str] = set()

    def note(paper: str | None, stage: str) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task("papers", total=total, stage="")
        progress.update(task, stage=f"{paper}: {stage}" if paper else stage)
        if stage in ("done", "skipped", "already done", "skipped before") and paper not in seen:
            seen.add(paper)
            progress.advance(task)

    try:
        yield note
    finally:
        if task is not None:
            progress.stop()


# -- runs --------------------------------------------------------------------------------------
_STATUS_WORDS = {"complete": "evaluated", "failed": "failed", "invalid": "refused (no usable model)",
                 "duplicate": "duplicates", "running": "in flight"}


def statuses_text(statuses: dict[str, int]) -> str:
    """{'complete': 7, 'invalid': 4} -> '7 evaluated, 4 refused (no usable model)'."""
    return ", ".join(f"{n} {_STATUS_WORDS.get(k, k)}" for k, n in sorted(statuses.items(), key=lambda kv: -kv[1])) or "none"


def run_summary(s: dict) -> None:
    t = _pairs()
    t.add_row("run", s["run_dir"])
    t.add_row("strategy", f"{s['strategy']} on {s['benchmark']} (seed {s['seed']})")
    t.add_row("evaluations", f"{s['evaluations']} of {s['budget']}  ({s['proposals']} proposals: "
                             f"{statuses_text(s['statuses'])})")  # fmt: skip
    if s.get("space_exhausted"):
        t.add_row("", f"every model of the table ({num(s.get('table_size'))}) has been evaluated: the budget was larger")
    if s.get("probes"):
        t.add_row("probes", f"{s['probes']} (build and shape checks before an evaluation, stored in the run)")
    for i, r in enumerate(s.get("children") or []):
        t.add_row("children" if i == 0 else "", f"{r['origin']}{' (LLM-written)' if r['by_llm'] else ''}: "
                  f"{r['proposed']} proposed, {r['trained']} {'trained' if s.get('space') == 'open' else 'valid'}"
                  f"{' (' + str(r['sizes_inferred']) + ' with input sizes inferred)' if r.get('sizes_inferred') else ''}, "
                  f"{r['improved_front']} improved the front, "
                  f"{r['improved_best']} the best")  # fmt: skip
    credit = s.get("credit")
    for i, a in enumerate((credit or {}).get("arms") or []):  # adaptive FairNAD: how the credit moved the chances
        llm = f", {a['llm_seconds']:.0f} s of LLM" if a["llm_seconds"] else ""
        t.add_row("chances" if i == 0 else "", f"{a['arm']}: {a['start']:.2f} -> {a['chance']:.2f} ({a['improved']} of "
                  f"{a['children']} children improved the best or the front{llm})")  # fmt: skip
    b = s.get("best")
    if b:
        by = f" ({b['origin']}, {'written by the LLM' if b.get('by_llm') else 'not written by the LLM'})" if b.get("origin") else ""
        if s.get("space") == "open":
            t.add_row("best model", f"trial {b['trial']}{by}: {s['run_dir']}/best_model.py")
        else:
            t.add_row("best genotype", b["genotype"] + (f"  {b['arch']}" if b.get("arch") else ""))
            if b.get("description"):
                t.add_row("", b["description"])
        unit = b.get("unit", "%")
        acc = f"{b['accuracy']:.4f}{unit}"
        if b["search_accuracy"] != b["accuracy"]:
            acc += f"  (searched on {b['search_accuracy']:.4f}{unit}{' validation' if s.get('space') == 'open' else ''})"
        t.add_row(b.get("metric", "accuracy"), acc)
        if b.get("rank") is not None:
            t.add_row("rank", f"{b['rank']}" + (f" of {s['table_size']}" if s.get("table_size") else ""))
        if "params" in b or "flops" in b:
            t.add_row("params / FLOPs", f"{num(b.get('params'))} / {num(b.get('flops'))}")
    llm = s["llm"]
    if llm["calls"]:
        t.add_row("LLM", f"{llm['calls']} calls, {llm['tokens_in']} tokens in, {llm['tokens_out']} out, {llm['seconds']:.1f}s")
    t.add_row("status", f"{s['status']}  ({s.get('seconds') or 0:.1f}s)")
    t.add_row("report", f"fairnad report {s['run_dir']}")
    Console().print(t)


def candidates(rows: list[dict]) -> None:
    """Every candidate of a run (Candidate.to_dict rows), one line each."""
    t = Table("trial", "genotype", "status", "accuracy", "rank", "origin", "LLM calls", "error")
    for c in rows:
        m, origin = c["metrics"], c["origin"]
        acc = m.get("test_accuracy", m.get("accuracy"))
        calls = ",".join(str(x) for x in origin.get("llm_calls") or []) or "-"
        t.add_row(str(c["trial"]), c["genotype"][:40], c["status"], f"{acc:.2f}" if isinstance(acc, float) else "-",
                  str(m.get("rank", "-")), str(origin.get("op", "")), calls, (c["error"] or "")[:60])  # fmt: skip
    Console().print(t)


def runs(root: Path, rows: list[dict]) -> None:
    if not rows:
        err_console.print(f"no runs under {root}")
        return
    t = Table("run", "strategy", "benchmark", "evals", "best acc", "rank", "status")
    interrupted = [r["run_dir"] for r in rows if r.get("status") == "interrupted"]
    for r in rows:
        b = r.get("best") or {}
        acc = f"{b['accuracy']:.2f}" if b else "-"
        t.add_row(r["run_dir"], r.get("strategy") or "?", r.get("benchmark") or "?",
                  f"{r.get('evaluations', '?')}/{r.get('budget', '?')}", acc, str(b.get("rank", "-")),
                  str(r.get("status")))  # fmt: skip
    Console().print(t)
    if interrupted:
        err_console.print(f"interrupted (killed, or the machine stopped): continue with `fairnad resume "
                          f"{shlex.quote(interrupted[0])}`" + (f" (and {len(interrupted) - 1} more)" if len(interrupted) > 1 else ""))


def bench(res: dict) -> None:
    Console().print(Path(res["files"]["markdown"]).read_text())
    for f in res["failures"]:
        err_console.print(f"[red]failed:[/] {f['run_dir']}: {f['error']}")


def exported(res: dict) -> None:
    """`fairnad export`: what was written (the notes and warnings are printed before, in every mode)."""
    t = Table("model", "trial", "val acc" if res["space"] == "open" else "search acc", "test acc", "files")
    for m in res["models"]:
        files = " ".join(Path(p).suffix for p in m["files"].values() if p)
        t.add_row(m["name"], str(m["trial"]), _pct(m["accuracy"]), _pct(m["test_accuracy"]), files)
    Console().print(t)
    if res["space"] == "open":
        first = res["models"][0]
        err_console.print(f"wrote {len(res['models'])} models to {res['out']}; use one (that folder on sys.path) with: "
                          f"import timm, {first['name']}; timm.create_model({first['name']!r}, "
                          f"pretrained={first['files']['weights'] is not None})", soft_wrap=True)  # fmt: skip
    else:
        err_console.print(f"wrote {len(res['models'])} metrics files to {res['out']}")


def export_notes(res: dict) -> None:
    for note in res["notes"]:
        err_console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    for m in res["models"]:
        if m.get("note"):  # e.g. why a model has no weights (the reason may quote the candidate's error)
            err_console.print(f"[yellow]warning:[/] {m['name']}: {escape(m['note'])}", soft_wrap=True)


# -- model files ---------------------------------------------------------------------------------
def evaluations(rows: list[dict]) -> None:
    for r in rows:
        m = r["metrics"]
        t = _pairs()
        t.add_row("model", f"{r['model']} on {r['dataset']}")
        if r["status"] == "complete":
            t.add_row("accuracy", f"val {m['val_acc']:.2f}%  test {m['test_acc']:.2f}%")
            t.add_row("params / FLOPs", f"{num(m.get('params'))} / {num(m.get('flops'))}")
            t.add_row("training", f"{m['train_seconds']:.1f}s, {m['images_per_second']:.0f} samples/s, "
                                  f"first step {r['startup_seconds']}s after start")  # fmt: skip
            if r["curves"]:
                t.add_row("val acc by epoch", " ".join(f"{c['val_acc']:.1f}" for c in r["curves"]))
        else:
            t.add_row("failed", f"[red]{r['category']}[/]: {r['error']}")
            if r.get("traceback"):
                t.add_row("traceback", r["traceback"].strip().splitlines()[-1][:200])
        t.add_row("sandbox", f"{r['isolation']}, {r['seconds']:.1f}s, peak {m.get('peak_memory_mb', 0):.0f} MB")
        Console().print(t)


def halving(out: dict) -> None:
    t = Table("model", *[f"{k} ep val" for k in out["rungs"]], "final test", "params")
    for m in out["models"]:
        cells = []
        for i in range(len(out["rungs"])):
            r = m["rungs"][i] if i < len(m["rungs"]) else None
            cells.append("-" if r is None else (f"{r['val_acc']:.2f}" if r["status"] == "complete" else r["category"]))
        f = m["final"]
        final = "-" if not f else (f"{f['test_acc']:.2f}" if f["status"] == "complete" else f["category"])
        t.add_row(m["model"], *cells, final, num((m["rungs"][0] or {}).get("params")))
    Console().print(t)


def reference_models(rows: list[dict]) -> None:
    t = Table("name", "for", "scaling arguments", "what")
    for r in rows:
        t.add_row(r["name"], ", ".join(r["datasets"]), ", ".join(f"{k}={v}" for k, v in r["scale"].items()), r["summary"])
    Console().print(t)


def llm_models(res: dict) -> None:
    t = Table("name", "installed", "size", "licence", "tokens/s", "what")
    t.columns[0].no_wrap = True
    for r in res["models"]:
        sp = r["speed"]
        speed = f"{sp['tokens_per_s']:.0f} ({sp['out_tokens_per_s']:.0f} out), {sp['measured'][:10]}" if sp else "not yet"
        inst = "yes" if r["installed"] else f"no: {r['install']}"
        t.add_row(r["name"] + (" (default)" if r["default"] else ""), inst,
                  f"{r['size'] / 1e9:.2f} GB" if r["size"] else "-", r["licence"], speed, r["notes"])  # fmt: skip
    Console().print(t)
    err_console.print(f"model cache: {res['cache']} (FAIRNAD_HOME); tokens/s: in + out per second of the last run here")


# -- tables and strategies -----------------------------------------------------------------------
def benchmarks(rows: list[dict]) -> None:
    t = Table("name", "size", "search on", "report", "optimum", "best acc", "params/FLOPs")
    for r in rows:
        o = r["optimum"]
        ties = f" (+{len(o['tied']) - 1} tied)" if len(o["tied"]) > 1 else ""
        t.add_row(r["name"], str(r["size"]), r["search_metric"], r["report_metric"], o["genotype"] + ties,
                  f"{o['accuracy']:.4f}", "yes" if r["has_params"] else "no")  # fmt: skip
    Console().print(t)


def relabelled(info: dict) -> None:
    Console().print(f"{info['benchmark']}: {info['size']} entries\n  table {info['table']}\n  space {info['space_file']}\n"
                    f"  search it: fairnad search --benchmark-file {info['table']} --space-file {info['space_file']} "
                    "-s STRATEGY")  # fmt: skip


def strategies(rows: list[dict]) -> None:
    t = Table("name", "from", "LLM", "spaces", "settings (defaults)", "what")
    for c in t.columns[:5]:
        c.no_wrap = True
    for r in rows:
        if r["status"] != "ok":
            t.add_row(f"[red]{escape(r['name'])}[/]", escape(r["source"]), "-", "-", "-",
                      f"[red]broken:[/] {escape(r['error'] or '')}")  # fmt: skip
            continue
        settings = "\n".join(_setting_text(f) for f in r["settings"]) or "-"
        t.add_row(escape(r["name"]), escape(r["source"]), "yes" if r["uses_llm"] else "no",
                  ", ".join(r["spaces"]), escape(settings), escape(r["description"]))  # fmt: skip
    Console().print(t)
    broken = [r for r in rows if r["status"] != "ok"]
    if broken:
        err_console.print(f"{len(broken)} broken plug-in(s): the others work; fix or uninstall the package named")


def _setting_text(f: dict) -> str:
    if f["required"]:
        return f"{f['name']} (required)"
    return f"{f['name']}={one_line(json.dumps(f['default'], default=str), 24)}"


# -- knowledge -----------------------------------------------------------------------------------
def knowledge_summary(s: dict) -> None:
    t = _pairs()
    t.add_row("tree", s["tree"])
    t.add_row("papers", f"{s['papers']} read" + (f", {len(s['skipped'])} skipped" if s["skipped"] else ""))
    if s.get("tree_papers") is not None:
        earlier = s.get("earlier_papers") or []
        t.add_row("the tree holds", f"{len(s['tree_papers'])} papers: {escape(', '.join(s['tree_papers']))}"
                  + (f"; not given to this build, from an earlier one in {escape(s['build_dir'])} (or the tree "
                     f"extended): {escape(', '.join(earlier))}" if earlier else ""))  # fmt: skip
    a = s["attributes"]
    t.add_row("attributes", f"{a['proposed']} proposed, {a['verified']} accepted (grounded and supported), "
                            f"{a['rejected']} rejected; {a['consolidated']} after merging"
                            + (f"; {a['sources_dropped']} of their sentences no source (a study, a finding, a mention "
                               "in passing)" if a.get("sources_dropped") else ""))  # fmt: skip
    if s.get("rejections"):
        t.add_row("rejected for", ", ".join(f"{n} {why}" for why, n in sorted(s["rejections"].items(), key=lambda x: -x[1])))
    c = s["categories"]
    t.add_row("categories", f"{c['filled']} filled" + (f"; empty: {', '.join(c['empty'])}" if c["empty"] else ""))
    f = s.get("found_by_name")
    if f and f["papers_read"]:
        t.add_row("found by name", f"{f['sources_added']} sources: {f['attributes_linked']} ideas stated in other "
                                   f"papers of the {f['papers_read']} read; {f.get('template_examples', 0)} of the "
                                   "template's examples stated in papers")  # fmt: skip
    if s.get("pages_per_second"):
        t.add_row("parsing", f"{s['pages_per_second']} pages/s")
    if s.get("llm"):
        t.add_row("LLM", f"{s['llm']['calls']} calls ({s['llm'].get('cached', 0)} from cache), "
                         f"{s['llm']['tokens_in']} tokens in, {s['llm']['tokens_out']} out")  # fmt: skip
    t.add_row("time", f"{s['seconds']}s")
    Console().print(t)
    for sk in s["skipped"]:
        err_console.print(f"[yellow]skipped:[/] {escape(str(sk['reason']))}", soft_wrap=True)
    for w in s["warnings"]:
        err_console.print(f"[yellow]warning:[/] {escape(w['paper'])}: {escape(w['warning'])}", soft_wrap=True)


def tree(payload: dict, depth: int) -> None:
    from rich.tree import Tree

    root = Tree(f"[bold]{escape(payload['title'])}[/] ({payload['subtitle']})")  # names come from papers: text, not markup
    for lv in payload["levels"]:
        n_lv = sum(len(s["attributes"]) for c in lv["categories"] for s in c["subcategories"])
        tl = root.add(f"[bold]{escape(lv['name'])}[/] ({n_lv})")
        if depth < 2:
            continue
        for c in lv["categories"]:
            n_c = sum(len(s["attributes"]) for s in c["subcategories"])
            tc = tl.add(f"{escape(c['name'])} ({n_c})" + ("" if n_c else " [dim]empty[/]"))
            if depth < 3:
                continue
            for sub in c["subcategories"]:
                ts = tc.add(f"[italic]{escape(sub['name'])}[/] ({len(sub['attributes'])})")
                if depth < 4:
                    continue
                for a in sub["attributes"]:
                    flag = " [yellow]over-specific[/]" if a["over_specific"] else ""
                    ts.add(f"{escape(a['name'])} [dim]x{a['frequency']}[/]{flag}")
    Console().print(root)


def tree_hits(res: dict) -> None:
    rows = res["hits"]
    if not rows:
        err_console.print(f"nothing matches {escape(repr(res['query']))}")
        return
    t = Table("idea", "category", "papers", "first source")
    for r in rows:
        src = r["sources"][0] if r["sources"] else {}
        t.add_row(escape(r["name"]), escape(r["category"]), str(r["frequency"]),
                  escape(f"{src.get('paper')} p.{src.get('page')}") if src else "template")  # fmt: skip
    Console().print(t)
    if res["total"] > len(rows):
        err_console.print(f"the best {len(rows)} of {res['total']} matches (--limit)")


def tree_stats(st: dict, ideas: int) -> None:
    """Frequency per category (and per idea, `ideas` of each) beside the fair share."""
    shares = st["ideas"]
    peak = max([r["share_by_frequency"] for r in st["categories"]] + [r["share_fair"] for r in st["categories"]] + [1e-9])
    t = Table("category", "ideas", "mentions", "papers", "by frequency", "fair", "bias", "plot (| fair share)")
    for r in st["categories"]:
        t.add_row(escape(r["category"]), str(r["attributes"]), str(r["mentions"]), str(r["papers"]),
                  f"{100 * r['share_by_frequency']:.1f}%", f"{100 * r['share_fair']:.1f}%",
                  f"{r['bias']:.2f}x" if r["bias"] is not None else "-",
                  _bar(r["share_by_frequency"] / peak, r["share_fair"] / peak))  # fmt: skip
    Console().print(t)
    if ideas > 0 and shares:
        peak = max(max(i["share_by_frequency"], i["share_fair"]) for c in shares for i in c["ideas"])
        p = Table("idea", "papers", "by frequency", "fair", "plot (| fair share)", title="How often each idea appears")
        for c in shares:
            p.add_row(f"[bold]{escape(c['name'])}[/]", "", "", "", "")
            for i in c["ideas"][:ideas]:
                p.add_row(f"  {escape(i['name'])}", str(i["frequency"]), f"{100 * i['share_by_frequency']:.1f}%",
                          f"{100 * i['share_fair']:.1f}%", _bar(i["share_by_frequency"] / peak, i["share_fair"] / peak))  # fmt: skip
            if len(c["ideas"]) > ideas:
                p.add_row(f"  [dim]... {len(c['ideas']) - ideas} more[/]", "", "", "", "")
        Console().print(p)
    if not st["mentions"]:
        Console().print(f"{st['attributes']} ideas, no mentions in papers (a tree of the template's own examples): "
                        "there is no frequency to compare with fair sampling.")  # fmt: skip
        return
    Console().print(f"{st['attributes']} ideas, {st['mentions']} mentions in {st['papers']} papers. Sampling ideas by "
                    f"frequency would be {st['total_variation_from_fair']:.2f} (total variation) from fair sampling; "
                    + (f"the most mentioned category is {st['most_to_least_frequent']}x the least."
                       if st["most_to_least_frequent"] else "a category without mentions leaves no ratio of most to least."))  # fmt: skip


def _bar(value: float, fair: float, width: int = 24) -> str:
    """A text bar of `value` (0..1 of the width) with a | where the fair share is."""
    cells = ["[blue]█[/]" if i < round(value * width) else " " for i in range(width)]
    f = min(width - 1, round(fair * width))
    cells[f] = "[bold red]|[/]"
    return "".join(cells)


def idea_progress(i: int, n: int, name: str) -> None:
    """`knowledge check`: which idea is being applied."""
    err_console.print(f"[{i}/{n}] {escape(name)}", soft_wrap=True)


def knowledge_check(s: dict) -> None:
    err_console.print(f"wrote {escape(s['tree'])}: {s['actionable']} of {s['checked']} ideas actionable "
                      f"({s['builds']} children built), {s['seconds']:.0f} s", soft_wrap=True)
    for x in s["not_actionable"]:
        err_console.print(f"  not actionable: {escape(x['name'])}: {escape(x['why'])}", soft_wrap=True)
