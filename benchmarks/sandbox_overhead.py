"""Sandbox overhead per candidate: process start to first training step, and wall time of a
one-epoch evaluation, for each isolation mode (figures for docs/performance.md).

    python benchmarks/sandbox_overhead.py [--runs 5] [--device cpu] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics

from fairnad.evaluate.code import EvalRequest, run_request
from fairnad.evaluate.sandbox import namespaces_available
from fairnad.space.reference import reference


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    modes = ["limits"] + (["namespaces"] if namespaces_available() else [])
    src = reference("small-cnn").source()
    out = {}
    run_request(EvalRequest(source=src, dataset="digits", epochs=1))  # dataset cache and page cache warm
    for mode in modes:
        starts, stages, walls = [], [], []
        for _ in range(a.runs):
            r = run_request(EvalRequest(source=src, dataset="digits", epochs=1, device=a.device), isolation=mode)
            assert r.status == "complete", r.error
            starts.append(r.startup_seconds)
            stages.append(r.stages)
            walls.append(r.seconds)
        out[mode] = {
            "first_step_s": round(statistics.median(starts), 3),
            "import_done_s": round(statistics.median(s["import"] for s in stages), 3),
            "wall_s": round(statistics.median(walls), 3),
        }
    if a.json:
        print(json.dumps(out, indent=1))
        return
    for mode, v in out.items():
        print(f"{mode}: first training step {v['first_step_s']} s after process start (torch imported at "
              f"{v['import_done_s']} s); one-epoch digits evaluation {v['wall_s']} s wall")  # fmt: skip


if __name__ == "__main__":
    main()
