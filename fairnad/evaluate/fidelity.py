"""Multi-fidelity evaluation: short proxy training, successive halving, final retrain of the top-k.

Rung r trains every survivor for rungs[r] epochs (from scratch: no state is carried between
rungs, so each rung's numbers are plain short-schedule results) and promotes the best 1/eta by
validation accuracy. The top-k of the last rung are retrained with the full schedule and their
test accuracy is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fairnad.evaluate.code import EvalRequest
from fairnad.evaluate.sandbox import SandboxResult


@dataclass
class Entry:
    index: int
    rungs: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None

    @property
    def last_val(self) -> float | None:
        r = self.rungs[-1] if self.rungs else None
        return r.get("val_acc") if r and r["status"] == "complete" else None


def _row(epochs: int, sr: SandboxResult) -> dict[str, Any]:
    m = sr.metrics
    return {"epochs": epochs, "status": sr.status, "category": sr.category, "error": sr.error,
            "val_acc": m.get("val_acc"), "test_acc": m.get("test_acc"), "params": m.get("params"),
            "flops": m.get("flops"), "train_seconds": m.get("train_seconds"), "curves": sr.curves}  # fmt: skip


def successive_halving(
    n: int,
    make_request: Callable[[int, int], EvalRequest],
    executor,
    rungs: list[int],
    eta: float = 3.0,
    top_k: int = 1,
    final_epochs: int | None = None,
    on_rung: Callable[[int, list[Entry]], None] | None = None,
) -> list[Entry]:
    """`make_request(i, epochs)` builds candidate i's request; returns every entry with its history."""
    if not rungs or any(e < 1 for e in rungs) or eta <= 1:
        raise ValueError("rungs must be positive epoch counts and eta > 1")
    entries = [Entry(i) for i in range(n)]
    alive = list(entries)
    for r, epochs in enumerate(rungs):
        results = executor.map([make_request(e.index, epochs) for e in alive])
        for e, sr in zip(alive, results):
            e.rungs.append(_row(epochs, sr))
        if on_rung is not None:
            on_rung(r, alive)
        ok = sorted((e for e in alive if e.last_val is not None), key=lambda e: -e.last_val)
        if r < len(rungs) - 1:
            alive = ok[: max(1, math.ceil(len(alive) / eta))] if ok else []
        else:
            alive = ok[:top_k]
        if not alive:
            break
    if final_epochs and alive:
        for e, sr in zip(alive, executor.map([make_request(e.index, final_epochs) for e in alive])):
            e.final = _row(final_epochs, sr)
    return entries
