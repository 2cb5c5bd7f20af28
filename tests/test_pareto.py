"""One Pareto rule (fairnad.pareto, pymoo's Dominator) for the search, the run summary and the report:
the same children improve the front wherever it is counted, ties included; a run stored before the
Study stored its verdicts is judged by the same rule."""

from __future__ import annotations

import numpy as np

from fairnad.pareto import Verdicts, as_objectives, dominates, improves, nondominated
from fairnad.report.data import run_payload
from fairnad.store.summary import children_table
from fairnad.search.pareto import front
from fairnad.space.candidate import Candidate
from fairnad.store import RunStore

# (accuracy, params): a start, a cheaper one, an exact tie with the start, a dominated one, one
# more accurate, one as accurate as the best but bigger, and a failed child
POINTS = [(90.0, 100), (85.0, 50), (90.0, 100), (84.0, 60), (93.0, 300), (93.0, 400), None]
IMPROVES = [True, True, False, False, True, False, False]


def _candidates() -> list[Candidate]:
    out = []
    for i, p in enumerate(POINTS):
        ok = p is not None
        out.append(Candidate(id=i + 1, trial=i, genotype=f"g{i}", origin={"op": "init" if i == 0 else "idea"},
                             status="complete" if ok else "failed", counted=True, created=float(i), finished=i + 0.5,
                             metrics={"accuracy": p[0], "params": p[1]} if ok else {"failure": "shape"}))  # fmt: skip
    return out


def test_dominance_and_ties():
    a, b = as_objectives([(90.0, 100), (85.0, 100)])
    assert dominates(a, b) and not dominates(b, a) and not dominates(a, a)
    assert not improves(a, [a]) and improves(b, []) and not improves(b, [a])
    F = as_objectives([(90.0, 100), (90.0, 100), (80.0, 50), (70.0, 60)])
    assert sorted(nondominated(F).tolist()) == [0, 1, 2]
    # a missing cost is the worst cost: the model of unknown size joins only by accuracy
    G = as_objectives([(90.0, None), (80.0, 10)])
    assert G[0, 1] > G[1, 1] and sorted(nondominated(G).tolist()) == [0, 1]


def test_search_summary_and_report_count_the_same_front(tmp_path):
    cands = _candidates()
    judge = Verdicts()
    search = [judge.judge(c.metrics["accuracy"] if c.ok else None, c.metrics.get("params"))[1] for c in cands]
    assert search == IMPROVES
    table = children_table(cands)
    assert sum(r["improved_front"] for r in table) == sum(IMPROVES)
    with RunStore.create(tmp_path / "run", {"strategy": "fairnad"}) as store:
        for c in cands:
            store.add_candidate(c)
            store.finish_candidate(c)
    payload = run_payload(tmp_path / "run")
    assert [r["improved_front"] for r in payload["candidates"]] == IMPROVES
    on = front([c for c in cands if c.ok], "params", np.random.default_rng(0))
    assert [c.trial for c in on] == [1, 0, 2, 4] and payload["front"] == [1, 0, 2, 4]
