"""How long `fairnad report` takes and how big the page is, for existing run folders.

    python benchmarks/report_speed.py RUN_DIR [RUN_DIR ...]

Prints one line per run: candidates, LLM calls, seconds to read the run, seconds to write the page,
page size. (plotly.js, embedded in every page, is ~4.8 MB of it.)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from fairnad.report.data import run_payload
from fairnad.report.html import render, run_page


def main(dirs: list[str]) -> None:
    for d in dirs:
        t0 = time.perf_counter()
        payload = run_payload(d)
        t1 = time.perf_counter()
        out = Path(tempfile.mkdtemp()) / "report.html"
        render(out, run_page(payload))
        t2 = time.perf_counter()
        print(f"{d}: {len(payload['candidates'])} candidates, {len(payload['llm']['calls'])} LLM calls; "
              f"read {t1 - t0:.2f} s, page {t2 - t1:.2f} s, {out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
