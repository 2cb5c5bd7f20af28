"""FairNAD on a table (a tabular NAS benchmark): its moves are one-option changes of genotypes.

  idea       up to `choices` fairly sampled ideas, each a one-option change of the parent, shown with its
             cost and how the models with the new and the old option did; the LLM answers the number of
             one (`table_answer: write`: it writes the architecture, and the idea is set into it), without
             it the best evidence is taken (`table_rule`).
  pareto     into the largest gap of the front (`pareto_move: gap`), or the front's cheap half grows and
             its dear half shrinks, one option at a time; no LLM in it.
  iterative  the LLM chooses among new one-option neighbours of the strongest model, as for ideas
             (`table_answer: write`: an agent (qwen-agent) with a tool backed by the table).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from fairnad.prompts import render
from fairnad.search.agent import Tool, run_agent
from fairnad.search.common import ask_genotype, problem_text, starting_models
from fairnad.search.fairnad_base import Steps
from fairnad.search.ideas import Idea, IdeaSpace
from fairnad.search.pareto import tournament
from fairnad.search.random_search import UnseenSampler
from fairnad.space.candidate import Proposal


class TableSteps(Steps):
    def __init__(self, core, study) -> None:
        super().__init__(core)
        core.ideas = IdeaSpace.from_tabular(study.space)  # a table's ideas are its options, one category per position
        self.idea_at = {(i.position, i.option): i for i in core.ideas.by_id.values()}
        self.sampler = UnseenSampler(study)
        self.option_cost = study.problem.option_costs
        self.problem_text = problem_text(study, answer=self.config.table_answer == "write")

    def start(self, study) -> list[Proposal]:
        return starting_models(study, self.config.init_population, self.rng, self.sampler)

    def no_parent(self, study, pending) -> Proposal | None:
        g = self.sampler.draw(study)
        return Proposal(g, origin={"op": "init"}, source="init") if g is not None else None

    def describe(self, study, cand) -> str:
        return json.dumps(study.space.labels(cand.genotype))

    # -- the three mutation types -------------------------------------------------------------------
    def idea(self, study, parent, done, rank) -> Proposal:
        idea = self.ideas.sample(self.rng)
        origin = {"op": "idea", "idea": idea.brief()}
        choosing = self._choosing(study)
        if choosing and (moves := self._idea_moves(study, parent, first=idea)):
            return self._chosen(study, parent, moves, {"op": "idea"})
        if self.llm is None or choosing:  # the idea set into the parent, nothing else changed
            return self._idea_applied(study, parent, {**origin, "source": "algorithm"}, idea)
        prompt = render("fairnad/idea_tabular.j2", problem=self.problem_text, parent=self.parent_view(parent, study),
                        idea=idea, fb=self.feedback(study), objective=study.problem.primary)  # fmt: skip
        return self._tabular_answer(study, prompt, parent, origin, idea)

    def pareto(self, study, done, rank, crowd) -> Proposal:
        if self.config.pareto_move == "gap":
            parent, action = self._front_gap(study, done, rank)
            return self._pareto_tabular(study, parent, action, {"op": "pareto", "action": action, "to": "gap"})
        return self.pareto_of(study, done[tournament(rank, crowd, self.rng)[0]], done, rank)

    def pareto_of(self, study, parent, done, rank) -> Proposal:
        """The front's cheap half grows, its dear half shrinks, one option at a time."""
        on_front = [c for c, r in zip(done, rank) if r == 0]
        costs = [c.metrics.get(study.problem.cost) or 0 for c in on_front]
        small = (parent.metrics.get(study.problem.cost) or 0) <= float(np.median(costs)) if costs else True
        action = "up" if small else "down"
        return self._pareto_tabular(study, parent, action, {"op": "pareto", "action": action})

    def iterative(self, study, parent, done, rank) -> Proposal:
        if self.llm is None or self._choosing(study):  # a new one-option neighbour of it
            alts = study.unseen(study.space.neighbours(parent.genotype))
            if alts and self._choosing(study):
                picks = self.rng.permutation(len(alts))[: self.config.choices]
                return self._chosen(study, parent, [self._move(study, parent.genotype, alts[int(i)]) for i in picks],
                                    {"op": "iterative"})  # fmt: skip
            g = alts[int(self.rng.integers(len(alts)))] if alts else self.sampler.draw(study)
            if g is None:
                return Proposal(parent.genotype, origin={"op": "iterative", "source": "algorithm"},
                                invalid_reason="space exhausted")  # fmt: skip
            return Proposal(g, parents=[parent.trial] if alts else [], source="algorithm",
                            origin={"op": "iterative", **({} if alts else {"fallback": "random"})})  # fmt: skip
        fb = self.feedback(study)
        # `table_answer: write`: a tool-calling agent (qwen-agent) whose tool looks an architecture up in the table
        origin: dict[str, Any] = {"op": "iterative", "source": "llm"}
        space, state = study.space, {"passed": None}

        def check_architecture(args):
            try:
                g = space.from_labels(args.get("architecture"))
            except ValueError as err:
                return f"INVALID: {err}"
            row = study.problem.cost_of(g) if study.problem.cost_of else None
            if study.seen(g) is not None:
                return f"valid, {row}, ALREADY EVALUATED: try another"
            if not study.in_domain(g):
                return "INVALID: not in the benchmark's table"
            state["passed"] = g
            return f"valid, {row}, NEW"

        arch_arg = {"type": "object", "properties": {"architecture": {"type": "array", "items": {},
                    "description": f"{space.ndim} option labels"}}, "required": ["architecture"]}  # fmt: skip
        tools = [Tool("check_architecture", "Is this architecture valid, what does it cost, was it evaluated?",
                      arch_arg, check_architecture)]  # fmt: skip
        task = render("fairnad/agent_tabular.j2", problem=self.problem_text, parent=self.parent_view(parent, study),
                      fb=fb, objective=study.problem.primary, n=space.ndim)  # fmt: skip
        run = run_agent(self.llm, system=render("fairnad/system.j2"), task=task, tools=tools,
                        max_turns=self.config.agent_turns, temperature=self.config.temperature, max_tokens=300,
                        seed=study.seed * 7919 + len(study.candidates), done=lambda: state["passed"] is not None,
                        nudge=render("fairnad/agent_nudge.j2", n=space.ndim))  # fmt: skip
        origin.update(turns=run.turns, tool_calls=len(run.tool_calls), agent_error=run.error)
        if state["passed"] is not None:
            self.core.llm_misses = 0
            return Proposal(state["passed"], parents=[parent.trial], origin=origin)
        self.core.llm_misses += 1
        return Proposal(run.final_text[:200] or "(no answer)", parents=[parent.trial], origin=origin,
                        invalid_reason=f"the agent produced no new valid model in {run.turns} turns"
                                       + (f" ({run.error})" if run.error else ""))  # fmt: skip

    def _front_gap(self, study, done, rank) -> tuple[Any, str]:
        """The front member beside the front's largest gap, and the way that fills it: the area a model
        halfway across a gap would add to the hypervolume (cost and accuracy scaled to what has been
        seen), with the stretch below the cheapest member as a gap too."""
        cost = study.problem.cost
        members = sorted((c for c, r in zip(done, rank) if r == 0), key=lambda c: c.metrics.get(cost) or 0)
        costs = np.array([c.metrics.get(cost) or 0 for c in done], dtype=float)
        accs = np.array([study.score(c) for c in done], dtype=float)
        span_c, span_a = max(np.ptp(costs), 1e-12), max(np.ptp(accs), 1e-12)
        # cost from zero, so the stretch below the cheapest member stays a gap; accuracy from the worst seen
        pts = [((m.metrics.get(cost) or 0) / span_c, (study.score(m) - accs.min()) / span_a) for m in members]
        gaps = [(pts[0][0] * pts[0][1] / 4, members[0], "down")]
        for (a, pa), (b, pb) in zip(zip(members, pts), zip(members[1:], pts[1:])):
            area = (pb[0] - pa[0]) * (pb[1] - pa[1]) / 4
            gaps += [(area, a, "up"), (area, b, "down")]
        best = max(g[0] for g in gaps)
        ties = [g for g in gaps if g[0] >= best - 1e-12]
        _, member, action = ties[int(self.rng.integers(len(ties)))]
        return member, action

    def _pareto_tabular(self, study, parent, action, origin) -> Proposal:
        """A new model one option away from `parent` whose cost goes `action` ("up" or "down"), drawn
        uniformly among those (a move to the nearest cost recycled near-copies of the parent: NB201's
        free operations none / skip / pooling cost the same and differ most in accuracy)."""
        space = study.space
        idx = list(space.parse(parent.genotype))
        cost = self.option_cost
        moves, others = [], []
        for d, opts in enumerate(space.options):
            here = cost[d][idx[d]] if cost else idx[d]
            for j in range(len(opts)):
                if j == idx[d]:
                    continue
                c = cost[d][j] if cost else j
                child = space.format(idx[:d] + [j] + idx[d + 1 :])
                if study.is_new(child):
                    ((moves if (c > here if action == "up" else c < here) else others)).append((d, child))
        origin = {**origin, "source": "algorithm"}  # a move through the table's options, no LLM answer in it
        for pool, how in ((moves, {}), (others, {"direction": "any"})):
            if pool:
                d, child = pool[int(self.rng.integers(len(pool)))]
                return Proposal(child, parents=[parent.trial], origin={**origin, **how, "position": space.dims[d].name})
        g = self.sampler.draw(study)
        if g is None:
            return Proposal(parent.genotype, origin=origin, invalid_reason="space exhausted")
        return Proposal(g, origin={**origin, "fallback": "random"})

    def _move(self, study, parent: str, child: str) -> tuple[int, int, str]:
        """(position, new option, child) of a one-option change `parent` -> `child`."""
        a, b = study.space.parse(parent), study.space.parse(child)
        d = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        return d, b[d], child

    def _idea_moves(self, study, parent, first: Idea) -> list[tuple[int, int, str]]:
        """Up to `choices` one-option changes of `parent`, each a fairly sampled idea (`first` leads)
        whose child is new and in the table."""
        idx = list(study.space.parse(parent.genotype))
        moves, tried = [], set()
        for n in range(30 * self.config.choices):
            idea = first if n == 0 else self.ideas.sample(self.rng)
            if idea.id in tried or idx[idea.position] == idea.option:
                continue
            tried.add(idea.id)
            child = study.space.format(idx[: idea.position] + [idea.option] + idx[idea.position + 1 :])
            if study.is_new(child):
                moves.append((idea.position, idea.option, child))
                if len(moves) == self.config.choices:
                    break
        return moves

    def _move_view(self, study, here, move, done, done_idx, overall: float) -> dict[str, Any]:
        """A change as the choice prompt shows it: what it sets, the child's cost, and how the evaluated
        models with the new and with the old option at that position did. Its `evidence`: the new
        option's mean accuracy minus the old one's (the mean of all models stands in for an option no
        model has yet): a one-option change inherits its option's record. `here`: the parent's options."""
        space, (d, j, child) = study.space, move
        old = here[d]

        def label(k):
            return str(space.options[d][k].label)  # the problem text lists what each label is

        def record(k):
            accs = [c.metrics["accuracy"] for c, idx in zip(done, done_idx) if idx[d] == k]
            return len(accs), (float(np.mean(accs)) if accs else None)

        def shrunk(n, mean):
            prior = self.config.evidence_prior
            return overall if mean is None else (n * mean + prior * overall) / (n + prior)

        (n_new, mean_new), (n_old, mean_old) = record(j), record(old)
        cost = study.problem.cost_of(child) if study.problem.cost_of else "unknown cost"
        evidence = study.problem.primary.score(shrunk(n_new, mean_new) - shrunk(n_old, mean_old))
        return {"child": child, "position": space.dims[d].name, "new": label(j), "old": label(old), "cost": cost, "n_new": n_new,
                "mean_new": mean_new, "n_old": n_old, "mean_old": mean_old, "evidence": evidence}  # fmt: skip

    def _choosing(self, study) -> bool:
        """Whether a table's idea or iterative child is chosen among one-option changes: by the LLM
        (table_answer: choice) or, without one, by the evidence (table_rule: evidence)."""
        if self.llm is None:
            return self.config.table_rule == "evidence"
        return self.config.table_answer == "choice"

    def _chosen(self, study, parent, moves, origin) -> Proposal:
        """One of `moves`: listed best evidence first (table_rule: evidence; else as sampled), the LLM
        answers the number of one (a constrained answer); without an LLM, or when its answer is
        unusable, the first is taken. The child carries the idea its change sets (idea statistics)."""
        done = study.completed()
        overall = float(np.mean([c.metrics["accuracy"] for c in done]))
        done_idx = [study.space.parse(c.genotype) for c in done]
        here = study.space.parse(parent.genotype)
        views = [self._move_view(study, here, m, done, done_idx, overall) for m in moves]
        order = list(range(len(moves)))
        ranked = self.config.table_rule == "evidence" and not self._stalled(study, done)
        if ranked:  # stable: ties keep the fair sampling's order
            order.sort(key=lambda i: -views[i]["evidence"])
        origin = {**origin, "of": len(moves), "rule": self.config.table_rule if ranked else "sampled"}
        k, source = 1, "algorithm"
        if self.llm is not None:
            k, source, origin = self._llm_choice(study, parent, [views[i] for i in order], done, overall, origin,
                                                 ranked)  # fmt: skip
        d, j, child = moves[order[k - 1]]
        return Proposal(child, parents=[parent.trial], source=source,
                        origin={**origin, "idea": self.idea_at[(d, j)].brief(), "choice": k})  # fmt: skip

    def _stalled(self, study, done) -> bool:
        """No more accurate model in the latest `stall` evaluations (config `stall`)."""
        if not self.config.stall or len(done) <= self.config.stall:
            return False
        best = max(range(len(done)), key=lambda i: (study.score(done[i]), -i))
        return len(done) - 1 - best >= self.config.stall

    def _llm_choice(self, study, parent, views, done, overall, origin, ranked: bool) -> tuple[int, str, dict]:
        """(the number the LLM answers, "llm"), or (1, "fallback") when its answer is unusable."""
        from fairnad.llm import LLMOutputError

        prompt = render("fairnad/choose_tabular.j2", problem=self.problem_text, parent=self.parent_view(parent, study),
                        fb=self.feedback(study, ideas=False), objective=study.problem.primary, n_done=len(done),
                        overall=overall, moves=views, ranked=ranked)  # fmt: skip
        schema = {"type": "object", "properties": {"rationale": {"type": "string", "maxLength": 160},
                  "choice": {"enum": list(range(1, len(views) + 1))}},
                  "required": ["rationale", "choice"], "additionalProperties": False}  # fmt: skip
        msgs = [{"role": "system", "content": render("fairnad/system.j2")}, {"role": "user", "content": prompt}]
        try:
            out = self.llm.complete(msgs, temperature=self.config.temperature, schema=schema, max_tokens=120,
                                     seed=study.seed * 7919 + len(study.candidates),
                                     purpose=f"fairnad.{origin['op']}")  # fmt: skip
            k = int((out.parsed or {}).get("choice"))
            if not 1 <= k <= len(views):
                raise ValueError(k)
            return k, "llm", origin
        except (LLMOutputError, TypeError, ValueError):
            return 1, "fallback", {**origin, "llm_answer": "unusable"}

    def _idea_applied(self, study, parent, origin, idea: Idea) -> Proposal:
        """The parent with the idea's option set at its position; when that model was evaluated already
        (or is not in the table), a new neighbour of it that keeps the idea."""
        idx = list(study.space.parse(parent.genotype))
        idx[idea.position] = idea.option
        child = study.space.format(idx)
        if study.seen(child) is not None or not study.in_domain(child):
            alt = self._neighbour_with(study, child, idea)
            if alt is not None:
                child, origin = alt, {**origin, "neighbour": True}
        return Proposal(child, parents=[parent.trial], origin=origin)

    def _neighbour_with(self, study, genotype: str, idea: Idea) -> str | None:
        """A new one-option neighbour of `genotype` in the table that keeps the idea, drawn uniformly."""
        space = study.space
        alts = [g for g in study.unseen(space.neighbours(genotype)) if space.parse(g)[idea.position] == idea.option]
        return alts[int(self.rng.integers(len(alts)))] if alts else None

    def _tabular_answer(self, study, prompt: str, parent, origin, idea: Idea) -> Proposal:
        """The model's child, or a fallback made without it when its answer was unusable, lacked the
        idea (the idea is set into it) or repeated an evaluated model (a new neighbour with the idea)."""
        space = study.space
        try:
            idx = list(space.parse(ask_genotype(study, prompt, system=render("genius/system.j2"),
                                                temperature=self.config.temperature,
                                                seed=study.seed * 7919 + len(study.candidates), purpose="fairnad.idea")))
        except ValueError:
            idx, origin = list(space.parse(parent.genotype)), {**origin, "llm_answer": "unusable"}
        if idx[idea.position] != idea.option:  # the idea must be in the child
            idx[idea.position] = idea.option
            origin = {**origin, "idea_enforced": True}
        child = space.format(idx)
        if study.seen(child) is not None or not study.in_domain(child):
            self.core.llm_misses += 1
            alt = self._neighbour_with(study, child, idea)
            if alt is not None:
                child, origin = alt, {**origin, "fallback": "neighbour"}
        else:
            self.core.llm_misses = 0
        replaced = any(k in origin for k in ("llm_answer", "idea_enforced", "fallback"))
        return Proposal(child, parents=[parent.trial], origin=origin, source="fallback" if replaced else "llm")
