"""A Study is one run: space, evaluator, store, LLM, budget and seed, and the ask/tell loop.

Strategies see the world only through the study. Every proposal is stored before it is
evaluated and finished right after, so a killed run loses at most the evaluation in flight.
Resuming re-runs the strategy from the start: stored results and recorded LLM answers are
served back in order (nothing is recomputed or re-asked), then the run continues live.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fairnad.errors import FairnadError
from fairnad.llm import RecordingLLM
from fairnad.pareto import Verdicts
from fairnad.problem import Problem
from fairnad.space.candidate import Candidate, Proposal
from fairnad.store import RunStore


class ResumeMismatch(FairnadError):
    """A resumed run proposed something else than what it recorded: code or config changed."""


def recorded_by(store: RunStore) -> str:
    """Which fairnad recorded the run, and which reads it (said with a resume mismatch)."""
    from fairnad import __version__

    made = store.meta().get("fairnad_version") or "(unknown)"
    return f"the run was recorded by fairnad {made}, this is {__version__}"


class StrategyStalled(FairnadError):
    """The strategy kept proposing genotypes that could not be evaluated."""


class Study:
    def __init__(
        self,
        *,
        problem: Problem,
        store: RunStore,
        budget: int,
        seed: int = 0,
        llm: RecordingLLM | None = None,
        fidelity: str | None = None,
        max_seconds: float | None = None,
        max_rejections: int = 50,
        max_probes: int | None = None,
    ) -> None:
        self.problem = problem  # what strategies read: space, objectives, ideas, contract, costs, probes
        self.space = problem.space
        self.evaluator = problem.evaluator
        self.store = store
        self.budget = budget
        self.seed = seed
        self.llm = llm
        self.domain = problem.domain  # every genotype that can be evaluated, when the space is a finite table
        self._domain_set = set(self.domain) if self.domain is not None else None
        self._distinct: int | None = None  # models in the table that are not the same network (exhausted())
        self.fidelity = fidelity
        self.max_seconds = max_seconds
        self.max_rejections = max_rejections
        self.candidates: list[Candidate] = []
        self._evaluated: dict[str, Candidate] = {}
        self._stored = {c.trial: c for c in store.candidates()}
        self.callbacks: list[Callable[[Study, Candidate], None]] = []
        self.started = time.time()
        self._probes = {p["key"]: p["result"] for p in store.probes()}  # answered from the store on resume
        self._verdicts = Verdicts()  # improved the best / the front, decided as each candidate finishes
        self.probes_run = 0  # probes this session actually ran
        self.max_probes = max_probes
        self._cap_logged = False

    def llm_mark(self) -> int | None:
        """For a strategy that proposes several children at once: mark before each child, then
        `llm_calls_since(mark)` into its origin["llm_calls"] (the report and export read that)."""
        return self.llm.mark() if self.llm is not None else None

    def llm_calls_since(self, mark: int | None) -> list[int]:
        return self.llm.since(mark) if mark is not None else []

    # -- probes -------------------------------------------------------------------------------
    @property
    def probes(self) -> int:
        """Probes of this run, all sessions: distinct checks that were run (repeats are answered free)."""
        return len(self._probes)

    def probe(self, kind: str, genotype: str) -> dict[str, Any] | None:
        """A cheap check a strategy (or its agent) asks for before spending an evaluation, e.g. `check`
        (builds, right output shape, params, FLOPs) or `train` (one quick epoch). It goes through the
        run like an evaluation: stored, counted (`probes`), and answered from the store when the run
        already asked it, so a resume or replay gets the same answer without running anything. The
        problem supplies the probe functions (Problem.probes); the result is plain JSON. None once
        the run's probe cap (max_probes) is reached: the strategy goes on without the check."""
        key = f"{kind}:{self.key(genotype)}"
        if key in self._probes:
            return self._probes[key]
        if self.max_probes is not None and len(self._probes) >= self.max_probes:
            if not self._cap_logged:
                self._cap_logged = True
                self.store.add_event("probe_cap_reached", probes=len(self._probes))
            return None
        fn = self.problem.probes.get(kind)
        if fn is None:
            raise FairnadError(f"this problem offers no {kind!r} probe")
        t0 = time.time()
        result = fn(genotype)
        self.store.add_probe(kind, key, genotype, result, round(time.time() - t0, 3))
        self._probes[key] = result
        self.probes_run += 1
        return result

    # -- what strategies read ---------------------------------------------------------------
    @property
    def evaluations(self) -> int:
        """Candidates that used the budget (evaluated, successfully or not)."""
        return sum(c.counted for c in self.candidates)

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.evaluations)

    def rng(self, salt: int) -> np.random.Generator:
        """A generator that depends only on the run seed and `salt` (one per consumer)."""
        return np.random.default_rng([self.seed, salt])

    def in_domain(self, genotype: str) -> bool:
        return self.space.is_valid(genotype) if self._domain_set is None else genotype in self._domain_set

    def exhausted(self) -> bool:
        """A finite table whose every model has been evaluated: nothing is left to propose, and a budget
        larger than the table ends here, as finished, rather than as a stalled strategy."""
        if self._domain_set is None:
            return False
        if self._distinct is None:
            self._distinct = len({self.key(g) for g in self._domain_set})
        return len(self._evaluated) >= self._distinct

    def key(self, genotype: str) -> str:
        """What makes two genotypes the same (open spaces: the normalised code)."""
        return self.space.key(genotype)

    def seen(self, genotype: str) -> Candidate | None:
        return self._evaluated.get(self.key(genotype))

    def is_new(self, genotype: str) -> bool:
        """Whether `genotype` could be evaluated and has not been (a table's: it is in the table)."""
        return self.seen(genotype) is None and self.in_domain(genotype)

    def unseen(self, genotypes) -> list[str]:
        """Those of `genotypes` that are new (`is_new`), in their order."""
        return [g for g in genotypes if self.is_new(g)]

    def completed(self) -> list[Candidate]:
        return [c for c in self.candidates if c.ok]

    def score(self, c: Candidate) -> float:
        """A completed candidate's primary metric, signed so that higher is better (Objective.score)."""
        primary = self.problem.primary
        return primary.score(c.metrics[primary.name])

    def best(self) -> Candidate | None:
        done = self.completed()
        return max(done, key=self.score) if done else None

    # -- the loop ---------------------------------------------------------------------------
    def optimize(self, strategy) -> None:
        resumed = bool(self._stored)
        self.store.add_event("resumed" if resumed else "started", evaluations_done=sum(
            c.counted for c in self._stored.values()), budget=self.budget)  # fmt: skip
        self.store.set_meta(status="running")
        rejections = 0
        while self.remaining > 0:
            if self.exhausted():
                self.store.add_event("space_exhausted", evaluations=self.evaluations, budget=self.budget)
                break
            if self.max_seconds is not None and time.time() - self.started > self.max_seconds:
                self.store.add_event("time_budget_reached", seconds=self.max_seconds)
                break
            mark = self.llm_mark()
            proposals = strategy.ask(self)
            if len(proposals) == 1 and "llm_calls" not in proposals[0].origin:
                calls = self.llm_calls_since(mark)  # one proposal: every call made while asking for it
                if calls:
                    proposals[0].origin["llm_calls"] = calls
            if not proposals:
                raise StrategyStalled(f"strategy {strategy.name} proposed nothing with {self.remaining} evaluations left")
            results = self._run_batch(proposals)
            rejections = 0 if any(c.counted for c in results) else rejections + len(results)
            strategy.tell(self, results)
            if rejections >= self.max_rejections:
                raise StrategyStalled(
                    f"strategy {strategy.name} made {rejections} proposals in a row that could not be evaluated"
                )
        done = self.remaining == 0 or self.exhausted()
        self.store.set_meta(status="finished" if done else "stopped", evaluations=self.evaluations)
        self.store.add_event("finished" if done else "stopped", evaluations=self.evaluations)

    def _run_batch(self, proposals: list[Proposal]) -> list[Candidate]:
        """Admit each proposal (stored, refused, or replayed from the store), then evaluate the ones
        that need it together: in parallel where the evaluator can (`evaluate_many`)."""
        admitted: list[tuple[Candidate, bool]] = []
        in_batch: dict[str, Candidate] = {}
        budget = self.remaining
        for p in proposals:
            if budget == 0:
                break
            cand, pending = self._admit(p, len(self.candidates) + len(admitted), in_batch)
            if pending:
                in_batch[self.key(cand.genotype)] = cand
            admitted.append((cand, pending))
            if pending or cand.counted:
                budget -= 1
        todo = [c for c, pending in admitted if pending]
        if todo:
            results = self.evaluator.evaluate_many(todo, self.fidelity)
            for cand, result in zip(todo, results):
                cand.status = result.status
                cand.metrics = dict(result.metrics)
                if result.category:
                    cand.metrics["failure"] = result.category
                cand.error = result.error
                cand.counted = result.status in ("complete", "failed")
                cand.finished = time.time()
        for cand, pending in admitted:  # in trial order: each verdict is decided against the models before it
            self._judge(cand, stored=not pending)
            if pending:
                self.store.finish_candidate(cand)
        return [self._accept(c) for c, _ in admitted]

    def _judge(self, cand: Candidate, stored: bool) -> None:
        """Decide once whether `cand` improved the best and the Pareto front (fairnad.pareto.Verdicts, on
        the problem's cost axis). A stored candidate keeps the verdict it was stored with; one stored
        before verdicts were (an older run) gets it decided here, in memory only: nothing stored changes."""
        score = self.score(cand) if cand.ok else None
        decided = self._verdicts.judge(score, cand.metrics.get(self.problem.cost) if cand.ok else None)
        if not (stored and cand.improved_best is not None):
            cand.improved_best, cand.improved_front = decided

    def _admit(self, p: Proposal, trial: int, in_batch: dict[str, Candidate]) -> tuple[Candidate, bool]:
        """(candidate, needs evaluation). Everything is in the store before anything is evaluated."""
        stored = self._stored.get(trial)
        if stored is not None:
            if stored.genotype != p.genotype:
                raise ResumeMismatch(
                    f"{self.store.run_dir}: on resume trial {trial} proposed {p.genotype[:60]!r} but the run recorded "
                    f"{stored.genotype[:60]!r}; the config, code or LLM answers changed since the run was recorded "
                    f"({recorded_by(self.store)})"
                )
            if stored.status != "running":
                self.evaluator.observe(stored)
                return stored, False
            return stored, True  # it was in flight when the run stopped: evaluate it now
        cand = Candidate(
            id=0, trial=trial, genotype=p.genotype, parents=list(p.parents), origin=dict(p.origin), created=time.time(),
        )  # fmt: skip
        reason = p.invalid_reason
        if reason is None and not self.space.is_valid(p.genotype):
            try:
                self.space.parse(p.genotype)
            except ValueError as err:
                reason = str(err)
        prior = (self.seen(p.genotype) or in_batch.get(self.key(p.genotype))) if reason is None else None
        if reason is None and prior is None:
            self.store.add_candidate(cand)
            return cand, True
        cand.status = "invalid" if reason is not None else "duplicate"
        cand.improved_best = cand.improved_front = False  # never evaluated: improved nothing
        cand.error = reason or f"already evaluated as trial {prior.trial}"
        if prior is not None:
            cand.metrics = {"duplicate_of": prior.trial, "accuracy": prior.metrics.get("accuracy")}
        cand.finished = time.time()
        self.store.add_candidate(cand)
        return cand, False

    def _accept(self, cand: Candidate) -> Candidate:
        self.candidates.append(cand)
        if cand.counted:
            self._evaluated.setdefault(self.key(cand.genotype), cand)
        for cb in self.callbacks:
            cb(self, cand)
        return cand
