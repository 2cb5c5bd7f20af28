"""GENIUS (Zheng et al., 2023): the LLM as a black-box optimiser in one growing conversation.

The first message encodes the problem from the space description; after each evaluation the
model hears the accuracy of its last proposal and is asked for a better one. Answers are JSON
(`architecture` + `rationale`), schema-constrained where the server allows. Unusable or
duplicate answers are stored, told to the model and retried; after `max_retries` in a row a
random unseen neighbour of the best model is evaluated instead (recorded as `fallback`).

Two departures from the paper, both for runs longer than its 10 steps: the conversation keeps
between `history_turns`/2 and `history_turns` of the latest exchanges (a 135M model has an 8k
context; dropping old turns in blocks, not one by one, keeps the server's prompt cache useful),
and sampling uses a per-call seed so that runs with temperature > 0 are reproducible.
"""

from __future__ import annotations

import json

from pydantic import Field

from fairnad.llm import LLMOutputError
from fairnad.prompts import render
from fairnad.search.base import Strategy, StrategyConfig
from fairnad.search.random_search import UnseenSampler
from fairnad.space.candidate import Proposal


class GeniusConfig(StrategyConfig):
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="the paper ran 0 and 1")
    max_retries: int = Field(1, ge=0, description="unusable answers in a row retried before a fallback")
    history_turns: int = Field(16, ge=2, description="most exchanges kept in the conversation")
    max_tokens: int = Field(300, ge=16, description="per answer")
    rationale_chars: int = Field(200, ge=0)
    # measured with the default embedded 1.5B on NAS-Bench-Macro (docs/performance.md): reasoning first,
    # it repeated evaluated architectures 25 times in 45 proposals (3 in 23 the paper's way round), so
    # only 8 of 20 evaluations were its own; a capable model behind --llm may do better reasoning first
    rationale_first: bool = Field(False, description="the answer's rationale before its architecture (the model "
                                  "reasons, then commits); false: the paper's order, architecture first")


class Genius(Strategy):
    name = "genius"
    Config = GeniusConfig
    uses_llm = True

    def __init__(self, config: GeniusConfig) -> None:
        super().__init__(config)
        self.turns: list[dict[str, str]] = []  # alternating assistant answer / user feedback
        self._start = 0  # first turn still in the conversation window (always an answer)
        self.pending: str | None = None  # the next user message
        self.rejections = 0
        self._head: list[dict[str, str]] | None = None
        self._sampler = None
        self._calls = 0

    def _setup(self, study) -> None:
        space = study.space.description
        example = json.dumps(study.space.labels(study.space.format([0] * study.space.ndim)))
        problem = render(
            "genius/problem.j2", space=space, dataset=study.problem.dataset,
            objective=study.problem.primary, example=example,
        )  # fmt: skip
        self._head = [
            {"role": "system", "content": render("genius/system.j2")},
            {"role": "user", "content": problem},
        ]
        self._sampler = UnseenSampler(study, salt=3)
        self._rng = study.rng(4)

    def ask(self, study):
        if self._head is None:
            self._setup(study)
        if self.rejections > self.config.max_retries:
            self.rejections = 0
            return [self._fallback(study)]
        h = self.config.history_turns
        if len(self.turns) - self._start > 2 * h - 1:
            self._start = len(self.turns) - 2 * (h // 2) + 1
        messages = self._head + self.turns[self._start :]
        if self.pending is not None:
            messages = messages + [{"role": "user", "content": self.pending}]
        seed = (study.seed * 1_000_003 + self._calls) % (2**31)
        self._calls += 1
        try:
            out = study.llm.complete(
                messages,
                temperature=self.config.temperature,
                schema=study.space.answer_schema(self.config.rationale_chars, self.config.rationale_first),
                max_tokens=self.config.max_tokens,
                seed=seed,
                purpose="genius.propose",
            )
        except LLMOutputError as err:  # no usable JSON even after repair: a refused proposal, told to the model
            if self.pending is not None:
                self.turns.append({"role": "user", "content": self.pending})
            self.turns.append({"role": "assistant", "content": "(no usable answer)"})
            self.pending = None
            return [Proposal("(no usable answer)", origin={"op": "llm"}, invalid_reason=str(err), source="llm")]
        if self.pending is not None:
            self.turns.append({"role": "user", "content": self.pending})
        self.turns.append({"role": "assistant", "content": out.text})
        self.pending = None
        origin = {"op": "llm", "source": "llm", "rationale": (out.parsed or {}).get("rationale", "")}
        try:
            genotype = study.space.from_labels((out.parsed or {}).get("architecture"))
        except ValueError as err:
            return [Proposal(out.text[:200], origin=origin, invalid_reason=str(err))]
        return [Proposal(genotype, origin=origin)]

    def _fallback(self, study) -> Proposal:
        best = study.best()
        if best is not None:
            options = study.unseen(study.space.neighbours(best.genotype))
            if options:
                g = options[int(self._rng.integers(len(options)))]
                return Proposal(g, parents=[best.trial], origin={"op": "fallback", "fallback": "neighbour of the best"},
                                source="fallback")  # fmt: skip
        g = self._sampler.draw(study)
        return Proposal(g, origin={"op": "fallback", "fallback": "random"}, source="fallback")

    def tell(self, study, results):
        obj = study.problem.primary
        for c in results:
            if c.ok:
                self.rejections = 0
                extra = ""
                if c.origin.get("op") == "fallback":
                    labels = json.dumps(study.space.labels(c.genotype))
                    extra = f"Your last proposals could not be used, so {labels} was evaluated instead."
                self.pending = render(
                    "genius/feedback.j2", accuracy=c.metrics["accuracy"], objective=obj,
                    extra=extra,
                )  # fmt: skip
            elif c.origin.get("op") != "fallback":
                self.rejections += 1
                dup = c.status == "duplicate"
                self.pending = render(
                    "genius/rejected.j2", duplicate=dup, reason=c.error or c.status,
                    accuracy=c.metrics.get("accuracy") or 0.0, objective=obj,
                )  # fmt: skip
