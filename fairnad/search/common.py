"""What the LLM-driven strategies (FairNAD, LLMatic, EvoPrompting) share: starting models, asking
the LLM for a model file or a genotype, and describing a candidate in a prompt."""

from __future__ import annotations

import json
from typing import Any

from fairnad.prompts import render
from fairnad.search.random_search import UnseenSampler
from fairnad.space.candidate import Proposal
from fairnad.space.code import extract_code, scale


def is_open(study) -> bool:
    return not hasattr(study.space, "options")


def starting_models(study, n: int, rng, sampler: UnseenSampler | None = None) -> list[Proposal]:
    """Open spaces: the reference models and scaled variants of them; tabular: random entries."""
    out: list[Proposal] = []
    if is_open(study):
        for src in study.context.get("initial", []):
            out.append(Proposal(src, origin={"op": "init", "from": "reference"}))
            for kind in ("down", "up", "tune"):
                scaled = scale(src, kind, rng)
                if scaled is not None:
                    out.append(Proposal(scaled[0], origin={"op": "init", "from": f"reference scaled {kind}",
                                                           "changes": scaled[1]}))  # fmt: skip
        return out[:n]
    sampler = sampler or UnseenSampler(study, salt=6)
    for _ in range(n):
        g = sampler.draw(study)
        if g is not None:
            out.append(Proposal(g, origin={"op": "init"}))
    return out


def problem_text(study) -> str:
    """The tabular problem encoding (generated from the space description, as GENIUS does)."""
    space = study.space
    return render("genius/problem.j2", space=space.description, dataset=study.objective["dataset"],
                  metric=study.objective["metric"], example=json.dumps(space.labels(space.format([0] * space.ndim))))  # fmt: skip


def cost_text(m: dict) -> str:
    parts = []
    if m.get("params") is not None:
        parts.append(f"{m['params'] / 1e6:.3f}M parameters")
    if m.get("flops") is not None:
        parts.append(f"{m['flops'] / 1e6:.1f}M FLOPs")
    return ", ".join(parts) or "unknown cost"


def view(study, cand) -> dict[str, Any]:
    """A candidate as prompts show it: code or genotype labels, accuracy, cost, validation curve."""
    m = cand.metrics
    v = {"accuracy": m.get("accuracy", 0.0), "cost_text": cost_text(m), "params": m.get("params"), "trial": cand.trial}
    if is_open(study):
        v["code"] = cand.genotype
        v["curve"] = " ".join(f"{c['val_acc']:.1f}" for c in m.get("curves", [])[-8:])
    else:
        v["labels"] = json.dumps(study.space.labels(cand.genotype))
    return v


def ask_code(study, prompt: str, *, temperature: float, max_tokens: int, seed: int, purpose: str,
             system: str | None = None) -> tuple[str | None, str]:  # fmt: skip
    """(the model file in the answer or None, the answer's text)."""
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    out = study.llm.complete(msgs, temperature=temperature, max_tokens=max_tokens, seed=seed, purpose=purpose)
    return extract_code(out.text), out.text


def ask_genotype(study, prompt: str, *, temperature: float, seed: int, purpose: str, system: str | None = None) -> str:
    """A genotype from a schema-constrained answer; ValueError with the reason when it is unusable."""
    from fairnad.llm import LLMOutputError

    space = study.space
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    try:
        out = study.llm.complete(msgs, temperature=temperature, schema=space.answer_schema(200), max_tokens=200,
                                 seed=seed, purpose=purpose)  # fmt: skip
    except LLMOutputError as err:  # no usable JSON even after repair and retries: a failed proposal, not a failed run
        raise ValueError(str(err)) from None
    return space.from_labels((out.parsed or {}).get("architecture"))


def fresh_child(study, genotype: str, origin: dict[str, Any], rng) -> tuple[str, dict[str, Any]]:
    """The LLM's child, or an unseen variant of it (recorded as `fallback` in the origin) when it
    repeated an evaluated one and a variant exists."""
    if study.seen(genotype) is not None:
        alt = unseen_variant(study, genotype, rng)
        if alt is not None:
            return alt[0], {**origin, "fallback": alt[1]}
    return genotype, origin


def unseen_variant(study, genotype: str, rng) -> tuple[str, str] | None:
    """A not-yet-evaluated variant of `genotype` when an LLM repeats itself: a random unseen
    neighbour (tabular) or a scaled copy (open). Returns (genotype, how) or None."""
    if is_open(study):
        for kind in ("up", "down", "tune"):
            scaled = scale(genotype, kind, rng)
            if scaled is not None and study.seen(scaled[0]) is None:
                return scaled[0], f"scaled {kind}"
        return None
    options = [g for g in study.space.neighbours(genotype) if study.seen(g) is None and study.in_domain(g)]
    return (options[int(rng.integers(len(options)))], "random neighbour") if options else None
