"""The run report, the comparison page and the bench page: their data from real run stores, and
the pages in real headless Chromium (offline, no console errors, plots drawn, lineage click shows
the code, strings from an LLM render as text)."""

import io
import json
import sys

import pytest

from fairnad.evaluate.tabular import load_benchmark
from fairnad.report.data import run_payload
from fairnad.report.html import write_run_report
from fairnad.search.base import create_strategy

from browser import CHROMIUM, page_for
from conftest import ScriptedLLM
from test_strategies import cycling_llm, make_study

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (scripts/setup.sh installs Debian's)")

EVIL = '<img src=x onerror="window.__pwned=1">'
BREAKOUT = '</script><script>window.__pwned=2</script>'


# -- data --------------------------------------------------------------------------------------
def test_payload_of_a_genius_run(tmp_path):
    b = load_benchmark("nas-bench-macro")
    llm = cycling_llm(b.space)
    study = make_study(tmp_path, budget=20, llm=llm)
    study.optimize(create_strategy("genius"))
    calls = study.store.llm_calls()
    study.store.close()
    p = run_payload(tmp_path / "run")
    rows = {r["trial"]: r for r in p["candidates"]}
    assert len(rows) == len(study.candidates)

    # best so far: one point per evaluation, never decreasing on the search metric
    prog = p["progress"]
    assert [x["evaluations"] for x in prog] == list(range(1, 21))
    searched = [x["best_search"] for x in prog]
    assert searched == sorted(searched) and searched[-1] == max(c.metrics["accuracy"] for c in study.completed())
    assert prog[-1]["tokens"] == sum(c["tokens_in"] + c["tokens_out"] for c in calls)

    # the Pareto front: nothing dominates a front member, and a front member dominates every other
    def dominated(a, b):  # (accuracy, params) b dominates a: written out here, apart from fairnad.pareto
        return b[0] >= a[0] and b[1] <= a[1] and b != a

    done = {t: (r["accuracy"], r["params"]) for t, r in rows.items() if r["accuracy"] is not None}
    front = set(p["front"])
    assert front and front <= set(done)
    for t in front:
        assert not any(dominated(done[t], q) for q in done.values())
    for t in set(done) - front:
        assert any(dominated(done[t], done[f]) or done[t] == done[f] for f in front)

    # each candidate carries the request that made it and the answer it got
    # (a fallback, proposed without asking, has none)
    asked = [c for c in study.candidates if c.origin["op"] == "llm"]
    assert len(asked) == len(llm.requests) and len(asked) < len(study.candidates)
    for i, c in enumerate(asked):
        prompt = rows[c.trial]["prompt"]
        assert prompt is not None and prompt["purpose"].startswith("genius") and prompt["calls"] == 1
        assert prompt["messages"][-1]["content"] == llm.requests[i][-1]["content"]
        assert json.loads(prompt["answer"])["rationale"] == f"idea {i}"
    assert all(rows[c.trial]["prompt"] is None for c in study.candidates if c.origin["op"] == "fallback")

    # per mutation type and failure category, everything is counted once
    assert sum(g["proposed"] for g in p["mutations"]) == len(study.candidates)
    dups = sum(c.status == "duplicate" for c in study.candidates)
    assert dups and {f["category"]: f["count"] for f in p["failures"]}.get("duplicate") == dups
    assert p["llm"]["per_purpose"][0]["calls"] == len(llm.requests)


def test_report_errors_are_one_line(run_cli, tmp_path):
    bad = run_cli("report", str(tmp_path / "nothing"))
    assert bad.returncode == 2 and "is not a run folder" in bad.stderr and "Traceback" not in bad.stderr
    ok = run_cli("search", "-b", "nas-bench-macro", "-s", "random", "--budget", "3", "--run-dir", "r")
    assert ok.returncode == 0, ok.stderr
    two = run_cli("report", "r", "r")
    assert two.returncode == 2 and "--compare" in two.stderr
    unwritable = run_cli("report", "r", "-o", "/dev/null/report.html")
    assert unwritable.returncode == 2 and "cannot write /dev/null/report.html" in unwritable.stderr
    assert len(unwritable.stderr.strip().splitlines()) == 1


# -- pages in Chromium -------------------------------------------------------------------------
def _plots_drawn(page, section: str) -> list[float]:
    """For each plot of a section: the share of its screenshot's pixels in colour. Axes, grid and
    text are grey, so an empty plot scores ~0; every trace is drawn in a saturated colour."""
    import numpy as np
    from PIL import Image

    shares = []
    for loc in page.locator(f"#{section} .js-plotly-plot").all():
        loc.scroll_into_view_if_needed()
        px = np.asarray(Image.open(io.BytesIO(loc.screenshot())).convert("RGB")).astype(int)
        shares.append(float(((px.max(axis=2) - px.min(axis=2)) > 60).mean()))
    return shares


def _click_node(page, trial: int) -> None:
    page.locator("#lineage").scroll_into_view_if_needed()
    xy = page.evaluate("""(trial) => {
        const gd = document.querySelector('#lineage .js-plotly-plot'), fl = gd._fullLayout;
        for (const tr of gd._fullData) {
          if (tr.mode !== 'markers' || !tr.customdata) continue;
          const i = tr.customdata.findIndex(c => c[0] === trial);
          if (i < 0) continue;
          const r = gd.getBoundingClientRect();
          return [r.left + fl._size.l + fl.xaxis.l2p(tr.x[i]), r.top + fl._size.t + fl.yaxis.l2p(tr.y[i])];
        }
        return null;
    }""", trial)  # fmt: skip
    assert xy is not None, f"trial {trial} is not in the lineage plot"
    # on a loaded box a click can land before plotly binds its handlers: click again, up to 3 times, until
    # the detail panel shows (the full suite once waited 30 s on a first click that was lost)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(3):
        page.mouse.click(*xy)
        try:
            page.locator("#detail").wait_for(state="visible", timeout=20_000)
            return
        except PlaywrightTimeout:  # the caller's own wait then fails with it
            pass


@needs_chromium
@pytest.mark.slow
def test_run_and_compare_pages_in_chromium(run_cli, tmp_path):
    for seed in (0, 1):
        r = run_cli("search", "-b", "nas-bench-macro", "-s", "regevo", "--budget", "40", "--seed", str(seed),
                    "--run-dir", f"r{seed}")  # fmt: skip
        assert r.returncode == 0, r.stderr
    rep = run_cli("report", "r0", "-o", "r0.html", "--json")
    assert rep.returncode == 0, rep.stderr
    assert json.loads(rep.stdout)["html"] == "r0.html"
    payload = run_payload(tmp_path / "r0")
    html = (tmp_path / "r0.html").read_text()
    # nothing is loaded from elsewhere (page_for also fails on any network request the page makes)
    assert "<script src" not in html and "<link" not in html

    with page_for(tmp_path / "r0.html") as (page, problems):
        page.set_viewport_size({"width": 1280, "height": 900})
        for section in ("progress", "pareto", "lineage", "mutations"):
            shares = _plots_drawn(page, section)
            assert shares and min(shares) > 0.002, (section, shares)
        assert page.locator("#detail").is_hidden()
        child = next(r for r in payload["candidates"] if r["parents"] and r["accuracy"] is not None)
        _click_node(page, child["trial"])
        page.locator("#detail").wait_for(state="visible")
        assert page.locator("#detail h3").inner_text() == f"Trial {child['trial']}"
        assert page.locator("#detail pre.code").inner_text() == child["genotype"]
        # the parent link walks the lineage
        page.locator("#detail a.trial").first.click()
        assert page.locator("#detail h3").inner_text() == f"Trial {child['parents'][0]}"
        assert problems == []

    cmp = run_cli("report", "--compare", "r0", "r1", "-o", "cmp.html")
    assert cmp.returncode == 0, cmp.stderr
    with page_for(tmp_path / "cmp.html") as (page, problems):
        lines = page.evaluate("document.querySelector('#progress .js-plotly-plot').data.length")
        assert lines == 2
        assert min(_plots_drawn(page, "progress")) > 0.002
        assert problems == []


@needs_chromium
@pytest.mark.slow
def test_open_run_lineage_click_shows_the_code(run_cli, tmp_path):
    r = run_cli("search", "--space", "open", "--dataset", "mnist1d", "--strategy", "fairnad", "--budget", "3",
                "--epochs", "1", "--set", "strategies.fairnad.disable=[idea, iterative]",
                "--set", "strategies.fairnad.init_population=2", "--run-dir", "open")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rep = run_cli("report", "open")
    assert rep.returncode == 0 and (tmp_path / "open" / "report.html").is_file(), rep.stderr
    payload = run_payload(tmp_path / "open")
    child = next(c for c in payload["candidates"] if c["op"] == "pareto")
    with page_for(tmp_path / "open" / "report.html") as (page, problems):
        page.set_viewport_size({"width": 1280, "height": 900})
        _click_node(page, child["trial"])
        page.locator("#detail").wait_for(state="visible")
        code = page.locator("#detail pre.code").inner_text()
        assert "def build_model" in code and code == child["genotype"]
        assert "Training curve" in page.locator("#detail").inner_text()
        assert problems == []


@needs_chromium
def test_injection_in_llm_answers_renders_as_text(tmp_path):
    b = load_benchmark("nas-bench-macro")
    good = {"architecture": b.space.labels("01201201"), "rationale": EVIL + BREAKOUT}
    llm = ScriptedLLM([good, EVIL + BREAKOUT] + [good] * 6)  # the second answer is not JSON: refused as invalid
    study = make_study(tmp_path, budget=2, llm=llm)
    study.optimize(create_strategy("genius", {"max_retries": 1}))
    study.store.close()
    evil = next(c for c in study.candidates if c.status == "invalid")
    assert EVIL in evil.genotype
    out = write_run_report(tmp_path / "run", tmp_path / "evil.html")
    with page_for(out) as (page, problems):
        page.evaluate(f"showCandidate({evil.trial})")
        assert page.locator("#detail pre.code").inner_text() == evil.genotype
        assert EVIL in page.locator("#detail pre.answer").inner_text()
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#detail img").count() == 0 and page.locator("main img").count() == 0
        assert problems == []


@needs_chromium
@pytest.mark.slow
def test_bench_page_bands_in_chromium(run_cli, tmp_path):
    r = run_cli("bench", "--benchmarks", "nas-bench-macro", "--strategies", "random,regevo", "--seeds", "3",
                "--budgets", "5,30", "--out", "b", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    files = json.loads(r.stdout)["files"]
    assert files["html"].endswith("bench.html")
    with page_for(files["html"] if files["html"].startswith("/") else tmp_path / files["html"]) as (page, problems):
        page.set_viewport_size({"width": 1280, "height": 900})
        names = page.evaluate("document.querySelector('#bench-0 .js-plotly-plot').data.map(d => d.name || '')")
        assert "random (3 seeds)" in names and "regevo (3 seeds)" in names and "random (exact expectation)" in names
        fills = page.evaluate("document.querySelector('#bench-0 .js-plotly-plot').data.filter(d => d.fill).length")
        assert fills == 2  # one mean ± std band per strategy
        assert min(_plots_drawn(page, "bench-0")) > 0.002
        assert problems == []


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
