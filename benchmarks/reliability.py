"""The reliability campaign behind docs/reliability.md: many kill -9s, injected LLM faults, fuzzed
inputs. Prints a markdown table and writes the figures as JSON.

    python benchmarks/reliability.py [--kills 50] [--out reliability.json] [--parts regevo,genius,fairnad,...]

It uses the same harnesses as the tests (tests/chaos.py, tests/faultproxy.py), with more kills and
faults, in a temporary folder; the embedded LLM server is started once for the LLM parts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from chaos import Campaign, comparable_tree, finished_candidates, query, run_campaign  # noqa: E402
from faultproxy import FAULTS, FaultProxy  # noqa: E402

COUNTED = "SELECT COUNT(*) FROM candidates WHERE status != 'running'"


def cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 1800, check: bool = False):
    p = subprocess.run([sys.executable, "-m", "fairnad", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, **(env or {})})  # fmt: skip
    if check and p.returncode != 0:
        raise RuntimeError(f"fairnad {' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return p


def row(name: str, c: Campaign, equal: bool | None, evaluations: int) -> dict:
    return {"campaign": name, "stderr": c.stderr[-600:] if c.returncode else "", "kills": c.kills, "starts": c.starts, "children_killed": c.killed_children,
            "orphans": len(c.orphans), "lost": len(c.lost), "counted_twice": len(c.doubles), "evaluations": evaluations,
            "equals_uninterrupted": equal, "exit": c.returncode, "seconds": c.seconds}  # fmt: skip


def kill_campaigns(work: Path, kills: int, rng, parts: set[str]) -> list[dict]:
    out = []
    if "regevo" in parts:
        out.append(_regevo(work, kills, rng))
    if "genius" in parts:
        out += _genius(work, kills, rng)
    for strategy in ("fairnad", "llmatic", "evoprompting"):
        if strategy in parts:
            out.append(_llm_tabular(work, kills, rng, strategy))
    if "open" in parts:
        out.append(_open(work, kills, rng))
    if "knowledge" in parts:
        out.append(_knowledge(work, kills, rng))
    return out


def _regevo(work: Path, kills: int, rng) -> dict:
    args = ["search", "-b", "channel-bench-resnet", "-s", "regevo", "-n", "4000", "--seed", "11"]
    cli(*args, "--run-dir", "regevo-ref", cwd=work, check=True)
    c = run_campaign([*args, "--run-dir", "regevo"], ["resume", "regevo"], work, work / "regevo" / "run.db",
                     kills=kills, rng=rng, progress_sql=COUNTED, max_step=150)  # fmt: skip
    eq = finished_candidates(work / "regevo" / "run.db") == finished_candidates(work / "regevo-ref" / "run.db")
    return row("tabular regevo (4000 evaluations)", c, eq, 4000)


def _genius(work: Path, kills: int, rng) -> list[dict]:
    """Recorded live with the embedded model, then replayed under kills; and live under kills."""
    out = []
    args = ["search", "-b", "nb201-cifar100", "-s", "genius", "-n", "40", "--seed", "5"]
    cli(*args, "--run-dir", "genius-ref", cwd=work, check=True)
    c = run_campaign([*args, "--run-dir", "genius", "--llm", "replay:genius-ref"], ["resume", "genius"], work,
                     work / "genius" / "run.db", kills=max(5, kills // 2), rng=rng, progress_sql=COUNTED, max_step=3)  # fmt: skip
    eq = finished_candidates(work / "genius" / "run.db") == finished_candidates(work / "genius-ref" / "run.db")
    out.append(row("tabular GENIUS, recorded answers (40 evaluations)", c, eq, 40))
    # 3. GENIUS live with the embedded model: kills during LLM calls (the answers differ, nothing may be lost)
    c = run_campaign([*args, "--run-dir", "genius-live"], ["resume", "genius-live"], work,
                     work / "genius-live" / "run.db", kills=max(3, kills // 5), rng=rng, progress_sql=COUNTED,
                     max_step=3)  # fmt: skip
    out.append(row("tabular GENIUS, live embedded model (40 evaluations)", c, None, 40))
    return out


def _llm_tabular(work: Path, kills: int, rng, strategy: str) -> dict:
    """An LLM strategy on a table, recorded live, then replayed from its answers under kills."""
    args = ["search", "-b", "nas-bench-macro", "-s", strategy, "-n", "20", "--seed", "3"]
    cli(*args, "--run-dir", f"{strategy}-ref", cwd=work, check=True)
    c = run_campaign([*args, "--run-dir", strategy, "--llm", f"replay:{strategy}-ref"], ["resume", strategy], work,
                     work / strategy / "run.db", kills=max(5, kills // 4), rng=rng, progress_sql=COUNTED, max_step=2)  # fmt: skip
    eq = finished_candidates(work / strategy / "run.db") == finished_candidates(work / f"{strategy}-ref" / "run.db")
    return row(f"tabular {strategy}, recorded answers (20 evaluations)", c, eq, 20)


def _open(work: Path, kills: int, rng) -> dict:
    """Open-ended FairNAD with all three mutation types (idea, pareto, the iterative agent), recorded
    live, then replayed from its answers under kills: trainings, probes and agent turns are killed."""
    args = ["search", "--space", "open", "--dataset", "mnist1d", "--strategy", "fairnad", "--budget", "8", "--epochs",
            "1", "--set", "strategies.fairnad.init_population=3"]  # fmt: skip
    cli(*args, "--run-dir", "open-ref", cwd=work, check=True)
    c = run_campaign([*args, "--run-dir", "open", "--llm", "replay:open-ref"], ["resume", "open"], work,
                     work / "open" / "run.db", kills=max(3, kills // 5), rng=rng, progress_sql=COUNTED, max_step=1,
                     max_delay=10)  # fmt: skip
    eq = finished_candidates(work / "open" / "run.db") == finished_candidates(work / "open-ref" / "run.db")
    return row("open-ended FairNAD, all mutation types, recorded answers (8 trainings)", c, eq, 8)


def _knowledge(work: Path, kills: int, rng) -> dict:
    from pdfs import make_paper
    from test_knowledge import MINI

    for i in range(4):
        make_paper(work / "papers" / f"p{i}.pdf", title=f"Residual Blocks with Separable Convolutions, part {i + 1}")
    (work / "mini.yaml").write_text(MINI)
    build = ["knowledge", "build", "papers", "--template", "mini.yaml", "--max-items", "2"]
    cli(*build, "--out", "knowledge/ref.json", cwd=work, check=True)
    again = [*build, "--out", "knowledge/c.json", "--llm", "replay:runs/knowledge-ref"]
    c = run_campaign(again, again, work, work / "runs" / "knowledge-c" / "build.db", kills=max(3, kills // 5), rng=rng,
                     progress_sql="SELECT COUNT(*) FROM llm_calls", max_step=2, max_delay=4.0)  # fmt: skip
    eq = comparable_tree(work / "knowledge" / "c.json") == comparable_tree(work / "knowledge" / "ref.json")
    return row("knowledge build, recorded answers (4 papers)", c, eq, 4)


def fault_campaign(work: Path, per_kind: int, rng, strategies: list[str]) -> dict:
    """Every transient fault `per_kind` times, in a random order, during one GENIUS run; then a
    server that dies, and one that keeps answering 429: paused, resumed, finished."""
    from fairnad.llm import EmbeddedServer

    res: dict = {}
    with EmbeddedServer(threads=2) as srv:
        for strategy in strategies:
            kinds = [f for f in FAULTS if f != "down"] * per_kind
            rng.shuffle(kinds)
            schedule: list = []
            for f in kinds:
                schedule += [f, None]
            with FaultProxy(srv.base_url, schedule, slow_s=5) as px:
                p = cli("search", "-b", "nas-bench-macro", "-s", strategy, "-n", str(len(kinds)), "--llm", px.base_url,
                        "--run-dir", f"faults-{strategy}", "--set", "llm.timeout=3", "--set", "llm.max_retries=3",
                        "--json", cwd=work)  # fmt: skip
                res[f"transient {strategy}"] = {
                    "injected": dict(px.injected), "left_unused": len(px.schedule), "exit": p.returncode,
                    "stderr": p.stderr[-600:] if p.returncode else "",
                    "evaluations": json.loads(p.stdout)["evaluations"] if p.returncode == 0 else None}  # fmt: skip
        db = work / "outage" / "run.db"
        pauses, injected = 0, 0
        with FaultProxy(srv.base_url, [None] * 6 + ["500"] * 40) as px:
            p = cli("search", "-b", "nas-bench-macro", "-s", "genius", "-n", "10", "--llm", px.base_url, "--run-dir",
                    "outage", "--set", "llm.max_retries=2", cwd=work)  # fmt: skip
            pauses += p.returncode == 3 and "fairnad resume" in p.stderr
            port, injected = px.port, injected + sum(px.injected.values())
        before = finished_candidates(db)
        with FaultProxy(srv.base_url, [None, None, "down"], port=port) as px:
            p = cli("resume", "outage", cwd=work)
            pauses += p.returncode == 3 and "fairnad resume" in p.stderr
            injected += sum(px.injected.values())
        middle = finished_candidates(db)
        with FaultProxy(srv.base_url, [], port=port):
            p = cli("resume", "outage", "--json", cwd=work)
        after = finished_candidates(db)
        res["outage"] = {"pauses_with_hint": pauses, "injected": injected, "exit": p.returncode,
                         "lost": int(middle[: len(before)] != before) + int(after[: len(middle)] != middle),
                         "evaluations": query(db, "SELECT COUNT(*) FROM candidates WHERE counted = 1")[0][0]}  # fmt: skip
    return res


def fuzz_counts(work: Path) -> dict:
    out = work / "fuzz.json"
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(ROOT / "tests" / "test_reliability_inputs.py"),
                        str(ROOT / "tests" / "test_reliability_storage.py")], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "FAIRNAD_RELIABILITY_OUT": str(out)})  # fmt: skip
    counts = json.loads(out.read_text()) if out.is_file() else {}
    return {"passed": p.returncode == 0, "summary": p.stdout.strip().splitlines()[-1:], **counts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--faults-per-kind", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("reliability.json"))
    ap.add_argument("--parts", default="regevo,genius,fairnad,llmatic,evoprompting,open,knowledge,faults,fuzz",
                    help="comma-separated: regevo, genius, fairnad, llmatic, evoprompting, open, knowledge, faults, "
                         "fuzz (faults run for each LLM strategy named)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    # kill-safety and fault handling do not depend on the model's quality: the small model keeps it short
    os.environ.setdefault("FAIRNAD_EMBEDDED_MODEL", "smollm2-135m")
    rng = np.random.default_rng(a.seed)
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="fairnad-reliability-") as tmp:
        work = Path(tmp)
        parts = set(a.parts.split(","))
        result = {"kills": kill_campaigns(work, a.kills, rng, parts)}
        if "faults" in parts:
            strategies = [x for x in ("genius", "fairnad", "llmatic", "evoprompting") if x in parts] or ["genius"]
            result["faults"] = fault_campaign(work, a.faults_per_kind, rng, strategies)
        if "fuzz" in parts:
            result["fuzz"] = fuzz_counts(work)
    result["seconds"] = round(time.time() - t0, 1)
    a.out.write_text(json.dumps(result, indent=1))
    print("| campaign | kills | child processes killed | orphans | lost | counted twice | equals uninterrupted | exit |")
    print("|---|---|---|---|---|---|---|---|")
    for r in result["kills"]:
        eq = "-" if r["equals_uninterrupted"] is None else ("yes" if r["equals_uninterrupted"] else "NO")
        print(f"| {r['campaign']} | {r['kills']} | {r['children_killed']} | {r['orphans']} | {r['lost']} | "
              f"{r['counted_twice']} | {eq} | {r['exit']} |")  # fmt: skip
    if "faults" in result:
        print(json.dumps(result["faults"], indent=1))
    if "fuzz" in result:
        print(json.dumps(result["fuzz"], indent=1))
    print(f"{result['seconds']} s; figures in {a.out}")


if __name__ == "__main__":
    main()
