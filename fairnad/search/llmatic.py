"""LLMatic (Nasir et al., GECCO 2024): LLM code generation inside two cooperating quality-diversity
archives, kept with pyribs.

- The network archive is a grid over behaviour descriptors - depth-to-width ratio and FLOPs in
  open spaces; params and FLOPs from the table in tabular spaces - and keeps the most accurate
  network of each cell.
- The prompt archive is a grid over (mutation instruction, temperature bin) and keeps each cell's
  curiosity: +1 when the child it produced entered the network archive, 0 when it was valid but
  did not, -0.5 when it failed. A cell's curiosity goes down as well as up (a pyribs archive only
  ever keeps a cell's best value, so failures would never demote a prompt), and it decides which
  prompt is used: cells are drawn with probability proportional to exp(curiosity / `curiosity_temperature`).
  A valid child that beats its parent also moves its prompt's temperature one step up (explore); one
  that does not, one step down (exploit): inside the cell's temperature bin the cell's temperature
  drifts; across a bin edge a new cell opens with the used cell's curiosity.
Each step draws a prompt cell by curiosity and a parent elite, then mutates (probability
`mutation_prob`) or crosses two parents over, through the LLM. With --llm none (tables) the LLM
step is replaced by its deterministic counterpart: a one-position mutation or a uniform crossover.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field

from fairnad.prompts import render
from fairnad.search.base import Strategy, StrategyConfig
from fairnad.search.common import ask_code, ask_genotype, fresh_child, is_open, problem_text, starting_models, view
from fairnad.space.candidate import Proposal

INSTRUCTIONS = [
    "Add a layer to make the network more accurate.",
    "Remove a layer to make the network smaller without losing accuracy.",
    "Make the network wider (more channels) to make it more accurate.",
    "Make the network narrower (fewer channels) to make it cheaper.",
    "Add a skip connection around some layers.",
    "Change the activation functions to ones that may train better.",
    "Add or change normalization layers.",
    "Change the kernel sizes of some convolutions.",
]


class LLMaticConfig(StrategyConfig):
    mutation_prob: float = Field(0.7, ge=0, le=1, description="else crossover of two parents")
    init_population: int = Field(4, ge=1)
    instructions: list[str] = Field(default_factory=lambda: list(INSTRUCTIONS), min_length=1)
    grid: int = Field(10, ge=2, description="cells per descriptor of the network archive")
    temperature: float = Field(0.7, ge=0.05, le=1.5, description="initial temperature of every prompt")
    temperature_step: float = Field(0.1, gt=0)
    temperature_bins: int = Field(10, ge=2)
    curiosity_temperature: float = Field(1.0, gt=0, description="softmax temperature of the prompt choice: lower "
                                         "follows curiosity more greedily")
    max_tokens: int = Field(1500, ge=64)
    code_answer: Literal["definitions", "edits", "file"] = Field(
        "file", description="what a mutation's prompt asks for: changed definitions, SEARCH/REPLACE edits or "
        "the whole file (every form is accepted)")


class LLMatic(Strategy):
    name = "llmatic"
    Config = LLMaticConfig
    uses_llm = True
    runs_without_llm = ("tabular",)
    spaces = ("tabular", "open")
    T_RANGE = (0.05, 1.55)

    def __init__(self, config: LLMaticConfig) -> None:
        super().__init__(config)
        self._ready = False
        # prompt archive: (instruction, temperature bin) -> {"temperature", "curiosity"}
        self.cells: dict[tuple[int, int], dict[str, float]] = {}

    def _setup(self, study) -> None:
        self._ready = True
        cfg = self.config
        self.rng = study.rng(8)
        self.open = is_open(study)
        from ribs.archives import GridArchive  # here, not at the top: pyribs imports torch (~3 s of every CLI start)

        self.nets = GridArchive(solution_dim=1, dims=[cfg.grid, cfg.grid], ranges=[(0, 1), (0, 1)], seed=int(study.seed))
        for i in range(len(cfg.instructions)):
            self._put_prompt(i, cfg.temperature, 0.0)
        self.init = starting_models(study, cfg.init_population, self.rng)
        self.problem = None if self.open else problem_text(study)
        self.by_trial: dict[int, Any] = {}

    def _bin(self, t: float) -> int:
        lo, hi = self.T_RANGE
        return int(np.clip((t - lo) / (hi - lo) * self.config.temperature_bins, 0, self.config.temperature_bins - 1))

    def _put_prompt(self, i: int, temperature: float, curiosity: float) -> tuple[int, int]:
        t = float(np.clip(temperature, self.T_RANGE[0] + 1e-3, self.T_RANGE[1] - 1e-3))
        cell = (i, self._bin(t))
        self.cells[cell] = {"temperature": round(t, 4), "curiosity": curiosity}
        return cell

    def choose_prompt(self) -> tuple[int, int]:
        """A prompt cell, drawn with probability proportional to exp(curiosity / curiosity_temperature)."""
        keys = sorted(self.cells)
        c = np.array([self.cells[k]["curiosity"] for k in keys]) / self.config.curiosity_temperature
        p = np.exp(c - c.max())
        return keys[int(self.rng.choice(len(keys), p=p / p.sum()))]

    # -- descriptors ----------------------------------------------------------------------------
    def descriptors(self, study, cand) -> np.ndarray:
        m = cand.metrics
        if self.open:
            depth, width = m.get("depth") or 1, m.get("width") or 1.0
            ratio = depth / max(width, 1e-6)
            flops = m.get("flops") or 1
            return np.array([ratio / (ratio + 0.1), np.clip((math.log10(flops) - 4) / 7, 0, 1)])
        lo, hi = study.problem.cost_range.get("params", (1, 2)), study.problem.cost_range.get("flops", (1, 2))
        p, f = m.get("params") or lo[0], m.get("flops") or hi[0]
        norm = lambda v, r: float(np.clip((math.log(v) - math.log(r[0])) / max(1e-9, math.log(r[1]) - math.log(r[0])), 0, 1))  # noqa: E731
        return np.array([norm(p, lo), norm(f, hi)])

    # -- ask / tell ------------------------------------------------------------------------------
    def ask(self, study) -> list[Proposal]:
        if not self._ready:
            self._setup(study)
        if self.init:
            return [self.init.pop(0)]
        if self.nets.stats.num_elites == 0:
            return starting_models(study, 1, self.rng) or []
        cell = self.choose_prompt()
        pi, temp = cell[0], self.cells[cell]["temperature"]
        crossover = self.rng.random() > self.config.mutation_prob and self.nets.stats.num_elites >= 2
        parents = [self.by_trial[int(t)] for t in self.nets.sample_elites(2 if crossover else 1)["solution"][:, 0]]
        if crossover and parents[0].trial == parents[1].trial:
            crossover, parents = False, parents[:1]
        # "llm_mutation": the LLM rewrites one parent (regevo's "mutation" is a random one-position change)
        origin = {"op": "crossover" if crossover else "llm_mutation", "source": "llm", "prompt": pi,
                  "temperature": round(temp, 3), "cell": list(cell)}  # fmt: skip
        if study.llm is None:  # --llm none: the deterministic counterpart of the LLM step
            if crossover:
                g = study.space.crossover(parents[0].genotype, parents[1].genotype, self.rng)
            else:
                g = study.space.mutate(parents[0].genotype, self.rng)
            origin = {**origin, "op": "crossover" if crossover else "mutation", "source": "algorithm"}
            return [self._fresh(study, g, parents, origin)]
        purpose = "llmatic.crossover" if crossover else "llmatic.mutation"  # (call labels as recorded before)
        seed = study.seed * 104729 + len(study.candidates)
        views = [view(study, p) for p in parents]
        instruction = self.config.instructions[pi]
        if self.open:
            if crossover:
                prompt = render("llmatic/crossover_open.j2", contract=study.problem.contract, a=views[0], b=views[1])
            else:
                prompt = render("llmatic/mutate_open.j2", contract=study.problem.contract, parent=views[0],
                                instruction=instruction, form=self.config.code_answer)  # fmt: skip
            code, text, how = ask_code(study, prompt, temperature=temp, max_tokens=self.config.max_tokens, seed=seed,
                                       purpose=purpose,
                                       parent=None if crossover else parents[0].genotype)  # fmt: skip
            origin = {**origin, **how}
            if code is None:
                return [Proposal(text[:200] or "(empty)", [p.trial for p in parents], origin,
                                 text if how.get("edit_error") else "the answer contained no code")]
            return [self._fresh(study, code, parents, origin)]
        objective = study.problem.primary
        if crossover:
            prompt = render("llmatic/crossover_tabular.j2", problem=self.problem, a=views[0], b=views[1], objective=objective)
        else:
            prompt = render("llmatic/mutate_tabular.j2", problem=self.problem, parent=views[0], instruction=instruction,
                            objective=objective)  # fmt: skip
        try:
            g = ask_genotype(study, prompt, temperature=temp, seed=seed, purpose=purpose)
        except ValueError as err:
            return [Proposal(views[0]["labels"], [p.trial for p in parents], origin, str(err))]
        return [self._fresh(study, g, parents, origin)]

    def _fresh(self, study, genotype: str, parents, origin) -> Proposal:
        child, origin = fresh_child(study, genotype, origin, self.rng)
        return Proposal(child, [p.trial for p in parents], origin)

    def tell(self, study, results) -> None:
        for c in results:
            entered = False
            if c.ok:
                self.by_trial[c.trial] = c
                st = self.nets.add(solution=np.array([[c.trial]], float), objective=np.array([study.score(c)]),
                                   measures=self.descriptors(study, c)[None, :])  # fmt: skip
                entered = int(st["status"][0]) > 0
            if "prompt" not in c.origin or c.status == "duplicate":
                continue
            pi, t = c.origin["prompt"], c.origin["temperature"]
            cell = tuple(c.origin["cell"]) if "cell" in c.origin else (pi, self._bin(t))
            delta = 1.0 if entered else (0.0 if c.ok else -0.5)
            parent_best = max((study.score(self.by_trial[p]) for p in c.parents if p in self.by_trial), default=-math.inf)
            improved = c.ok and study.score(c) > parent_best
            step = self.config.temperature_step
            used = self.cells.setdefault(cell, {"temperature": t, "curiosity": 0.0})
            used["curiosity"] += delta  # down as well as up
            moved = float(np.clip(t + step if improved else t - step, self.T_RANGE[0] + 1e-3, self.T_RANGE[1] - 1e-3))
            if not c.ok:  # a failure opens no copy of its prompt
                continue
            if (pi, self._bin(moved)) == cell:  # a step inside the bin: the cell's own temperature drifts
                used["temperature"] = round(moved, 4)
            elif (pi, self._bin(moved)) not in self.cells:
                self._put_prompt(pi, moved, used["curiosity"])
        if results:
            study.store.set_meta(llmatic_archives={
                "networks": {"cells": int(self.nets.stats.num_elites), "qd_score": float(self.nets.stats.qd_score)},
                "prompts": {"cells": len(self.cells),
                            "curiosity": {f"{i}@{v['temperature']}": v["curiosity"] for (i, _), v in sorted(self.cells.items())}},
            })  # fmt: skip
