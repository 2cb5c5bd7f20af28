"""EvoPrompting (Chen et al., NeurIPS 2023): evolutionary few-shot prompting, with soft prompt
tuning between rounds when the model can be trained.

Each round, the current parents (the best models so far by a fitness of accuracy and size) are
shown to the LLM as in-context examples, weakest first, and the prompt states target metrics (a
little more accurate than the best parent, smaller than the median); `children` children are
generated and evaluated; the best `parents` of parents and children become the next round's
parents. The children that did not become parents are the data for prompt tuning (peft, on the
`transformers` backend); on a server or API that cannot be trained, the run log says so and
evolutionary prompting runs alone.
"""

from __future__ import annotations

import math

from pydantic import Field

from fairnad.prompts import render
from fairnad.search.base import Strategy, StrategyConfig
from fairnad.search.common import ask_code, ask_genotype, fresh_child, is_open, problem_text, starting_models, view
from fairnad.space.candidate import Proposal


class EvoPromptingConfig(StrategyConfig):
    parents: int = Field(4, ge=1, description="in-context examples per prompt")
    children: int = Field(4, ge=1, description="children per round")
    init_population: int = Field(4, ge=1)
    size_weight: float = Field(1.0, ge=0, description="fitness = accuracy - size_weight * log10(params)")
    margin: float = Field(0.5, ge=0, description="target accuracy = best parent + margin (points)")
    temperature: float = Field(0.8, ge=0, le=2)
    max_tokens: int = Field(1500, ge=64)
    prompt_tuning: bool = Field(True, description="tune a soft prompt between rounds when the backend allows")
    tuning_steps: int = Field(20, ge=1)


class EvoPrompting(Strategy):
    name = "evoprompting"
    Config = EvoPromptingConfig
    uses_llm = True
    runs_without_llm = ("tabular",)
    spaces = ("tabular", "open")

    def __init__(self, config: EvoPromptingConfig) -> None:
        super().__init__(config)
        self._ready = False
        self.parent_trials: list[int] = []
        self.round_left = 0
        self.round_children: list = []
        self.round = 0
        self.tuning_note_given = False

    def fitness(self, study, c) -> float:
        p = c.metrics.get("params") or 1
        return study.score(c) - self.config.size_weight * math.log10(max(p, 1))

    def ask(self, study) -> list[Proposal]:
        if not self._ready:
            self._ready = True
            self.rng = study.rng(9)
            self.open = is_open(study)
            self.init = starting_models(study, self.config.init_population, self.rng)
            self.problem = None if self.open else problem_text(study)
        if self.init:
            return [self.init.pop(0)]
        done = study.completed()
        if not done:
            return starting_models(study, 1, self.rng)
        if not self.parent_trials:
            self._select(study)
        if self.round_left == 0:
            self.round += 1
            self.round_left = self.config.children
            self.round_children = []
        self.round_left -= 1
        by_trial = {c.trial: c for c in done}
        parents = sorted((by_trial[t] for t in self.parent_trials), key=lambda c: self.fitness(study, c))  # weakest first
        best = parents[-1]
        params = sorted(p.metrics.get("params") or 0 for p in parents)
        target = {"accuracy": best.metrics["accuracy"] + study.problem.primary.score(self.config.margin),
                  "params": int(params[len(params) // 2]) if params[0] else None}  # fmt: skip
        order = list(parents)
        if len(order) > 2:  # a different arrangement of the middle examples per child: varied prompts
            middle = order[:-1]
            self.rng.shuffle(middle)
            order = middle + [best]
        examples = [view(study, p) for p in order]
        origin = {"op": "evoprompt", "source": "llm", "round": self.round}  # fresh_child: "fallback" for a repeat
        seed = study.seed * 130363 + len(study.candidates)
        trials = [p.trial for p in parents]
        if study.llm is None:  # --llm none: the examples crossed over uniformly, then one position mutated
            a, b = (parents[int(i)] for i in self.rng.choice(len(parents), size=2, replace=len(parents) < 2))
            child = study.space.mutate(study.space.crossover(a.genotype, b.genotype, self.rng), self.rng)
            child, origin = fresh_child(study, child, {**origin, "source": "algorithm"}, self.rng)
            return [Proposal(child, trials, origin)]
        if self.open:
            prompt = render("evoprompting/open.j2", contract=study.problem.contract, examples=examples,
                            target=target)  # fmt: skip
            code, text, _ = ask_code(study, prompt, temperature=self.config.temperature, max_tokens=self.config.max_tokens,
                                  seed=seed, purpose="evoprompting.child")  # fmt: skip
            if code is None:
                return [Proposal(text[:200] or "(empty)", trials, origin, "the answer contained no code")]
            child = code
        else:
            prompt = render("evoprompting/tabular.j2", problem=self.problem, examples=examples, target=target,
                            objective=study.problem.primary)  # fmt: skip
            try:
                child = ask_genotype(study, prompt, temperature=self.config.temperature, seed=seed,
                                     purpose="evoprompting.child")  # fmt: skip
            except ValueError as err:
                return [Proposal(examples[-1]["labels"], trials, origin, str(err))]
        child, origin = fresh_child(study, child, origin, self.rng)
        return [Proposal(child, trials, origin)]

    def _select(self, study) -> None:
        done = sorted(study.completed(), key=lambda c: self.fitness(study, c), reverse=True)
        self.parent_trials = [c.trial for c in done[: self.config.parents]]

    def tell(self, study, results) -> None:
        for c in results:
            if c.origin.get("op") == "evoprompt":
                self.round_children.append(c)
        if self.round_left == 0 and self.round_children:
            self._select(study)
            chosen = set(self.parent_trials)
            rest = [c for c in self.round_children if c.ok and c.trial not in chosen]
            self._tune(study, rest)
            self.round_children = []
            study.store.set_meta(evoprompting={"round": self.round, "parents": self.parent_trials})

    def _tune(self, study, children) -> None:
        if not self.config.prompt_tuning or not children or study.llm is None:
            return
        texts = [c.genotype if self.open else " ".join(map(str, study.space.labels(c.genotype))) for c in children]
        # (recorded by the LLM layer as a `prompt_tuned` event, the prompt as a file: a replay takes it from there)
        result = study.llm.tune_prompt(texts, steps=self.config.tuning_steps, seed=study.seed + self.round,
                                       purpose="evoprompting.tune")  # fmt: skip
        if result is None:
            if not self.tuning_note_given:
                self.tuning_note_given = True
                study.store.add_event("prompt_tuning_skipped", reason="the LLM backend (a server or API) cannot be "
                                      "trained; evolutionary prompting runs alone (use --llm transformers to tune)")  # fmt: skip
