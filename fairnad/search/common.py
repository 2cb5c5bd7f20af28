"""What the LLM-driven strategies (FairNAD, LLMatic, EvoPrompting) share: starting models, asking
the LLM for a model file or a genotype, and describing a candidate in a prompt."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fairnad.prompts import render
from fairnad.search.random_search import UnseenSampler
from fairnad.space.candidate import Proposal
from fairnad.space.code import (BUILDER, add_missing_imports, code_blocks, defined_names, extract_code,
                                restore_defaults, scale)
from fairnad.space.edits import EditError, apply_edits, has_edits, merge_definitions, parse_edits


def is_open(study) -> bool:
    return study.problem.is_open


def starting_models(study, n: int, rng, sampler: UnseenSampler | None = None) -> list[Proposal]:
    """Open spaces: the reference models and scaled variants of them; tabular: random entries."""
    out: list[Proposal] = []
    if is_open(study):
        for src in study.problem.initial:
            out.append(Proposal(src, origin={"op": "init", "from": "reference"}, source="init"))
            for kind in ("down", "up", "tune"):
                scaled = scale(src, kind, rng)
                if scaled is not None:
                    out.append(Proposal(scaled[0], origin={"op": "init", "from": f"reference scaled {kind}",
                                                           "changes": scaled[1]}, source="init"))  # fmt: skip
        return out[:n]
    sampler = sampler or UnseenSampler(study)
    for _ in range(n):
        g = sampler.draw(study)
        if g is not None:
            out.append(Proposal(g, origin={"op": "init"}, source="init"))
    return out


def problem_text(study, answer: bool = True) -> str:
    """The tabular problem encoding (generated from the space description, as GENIUS does); with
    `answer` false, without how to answer with an architecture."""
    space = study.space
    return render("genius/problem.j2", space=space.description, dataset=study.problem.dataset, answer=answer,
                  objective=study.problem.primary, example=json.dumps(space.labels(space.format([0] * space.ndim))))  # fmt: skip


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
        v["shapes"] = "; ".join(m.get("shapes") or [])  # output shapes of its outer modules, batch of 2
    else:
        v["labels"] = json.dumps(study.space.labels(cand.genotype))
    return v


REPAIR_TEMPERATURE = 0.2


def ask_code(study, prompt: str, *, temperature: float, max_tokens: int, seed: int, purpose: str,
             system: str | None = None, parent: str | None = None,
             check: Callable[[str], str | None] | None = None, repairs: int = 0, retries: int = 0,
             heal: Callable[[str], tuple[str, int] | None] | None = None, keep_defaults: bool = False,
             afresh: Callable[[str], str | None] | None = None,
             ) -> tuple[str | None, str, dict[str, Any]]:  # fmt: skip
    """(the child's code or None, the answer's text or why it has no code, how it was written).

    With a `parent`, every answer is read as a change of it (space/edits.py): SEARCH/REPLACE blocks are
    applied exactly; otherwise the classes and functions in its code blocks replace the parent's of
    the same name (a whole file replaces them all). A change that cannot be applied is sent back once
    with the reason. With `check` (code -> what is wrong, or None), a child that fails it is sent back
    up to `repairs` times with the error, in the same conversation (the fix is read as a change of
    that child), then asked afresh up to `retries` times: the same prompt with a new seed, so the
    server's prompt cache answers it at generation cost only; with `afresh` (what is wrong -> a new
    prompt, or None to keep the old one), a fresh ask may use another prompt. With `heal` (code -> (healed code,
    changes) or None), a last answer that fails on a shape is healed without a call and kept if the
    heal passes the check. With `keep_defaults`, build_model's default values that a change of the
    parent altered beside the network go back to the parent's (space/code.py `restore_defaults`).
    The third item goes into the child's origin: {"answer": "edits" | "definitions" | "file",
    "attempts": answers, "reasked": .., "repaired": n, "retried": n, "check_failures": [..],
    "defaults_kept": {..}, "inferred_sizes": n}."""
    head = [{"role": "system", "content": system}] if system else []
    first = head + [{"role": "user", "content": prompt}]
    msgs, info = first, {}
    reasks, calls, base = 1, 0, parent
    while True:
        # a repair is a fix, not an exploration: asked cold (a small model's hot repairs wander off)
        temp = min(temperature, REPAIR_TEMPERATURE) if msgs is not first else temperature
        out = study.llm.complete(msgs, temperature=temp, max_tokens=max_tokens, seed=seed + 7 * calls, purpose=purpose)
        calls += 1
        info["attempts"] = calls
        try:
            if base is not None:
                code, how = child_of(base, out.text)
                if keep_defaults and parent is not None:
                    code, kept = restore_defaults(parent, code)
                    how = {**how, "defaults_kept": kept} if kept else how
            elif (code := extract_code(out.text)) is not None:
                code, how = _with_imports(code, {"answer": "file"})
            else:
                raise EditError("the answer has no code")
        except EditError as err:
            info["edit_error"] = str(err)
            if reasks == 0:
                return None, f"the change could not be applied ({err})" if base is not None else out.text, info
            reasks -= 1
            info["reasked"] = True
            msgs = msgs + [
                {"role": "assistant", "content": out.text},
                {"role": "user", "content": f"That change cannot be applied: {err}. Answer again: SEARCH lines must be "
                                            "copied exactly from the parent file; code blocks must hold complete "
                                            "classes or functions."},
            ]  # fmt: skip
            continue
        info.pop("defaults_kept", None)  # what this answer needed, not an earlier one
        info.update({k: v for k, v in how.items() if k != "imports_added"})
        if how.get("imports_added"):
            info["imports_added"] = sorted(set(info.get("imports_added", [])) | set(how["imports_added"]))
        repaired, retried = info.get("repaired", 0), info.get("retried", 0)
        more = repaired < repairs or retried < retries
        problem = check(code) if check is not None and (heal is not None or more) else None
        if problem is None:
            return code, out.text, info
        info.setdefault("check_failures", []).append(problem.splitlines()[0][:160])
        if repaired < repairs:
            info["repaired"] = repaired + 1
            base = code
            msgs = msgs + [
                {"role": "assistant", "content": out.text},
                {"role": "user", "content": f"That model fails its check:\n{problem}\nFix it: answer with the "
                                            "corrected classes and functions, each written out in full."},
            ]  # fmt: skip
        elif retried < retries:  # a new sample (of `afresh`'s prompt if it gives one): a small model fixes its own code rarely
            info["retried"] = retried + 1
            if afresh is not None and (again := afresh(problem)) is not None:
                first = head + [{"role": "user", "content": again}]
            msgs, base, reasks = first, parent, 1
        else:
            if heal is not None and problem.startswith("shape") and (healed := heal(code)) is not None:
                if check(healed[0]) is None:
                    return healed[0], out.text, {**info, "inferred_sizes": healed[1]}
            return code, out.text, info  # its evaluation records the failure


def change_of(parent: str, answer: str) -> tuple[str, dict[str, Any]]:
    """The child an answer describes as a change of `parent`, and how it was read; EditError if none."""
    if has_edits(answer):
        edits = parse_edits(answer)
        return apply_edits(parent, edits), {"answer": "edits", "edits": len(edits)}
    blocks = code_blocks(answer)
    if not blocks:
        raise EditError("the answer has no code block and no SEARCH/REPLACE block")
    child, replaced, added = parent, set(), []
    for block in blocks:
        child, how = merge_definitions(child, block)
        replaced.update(how["replaced"])
        added += [n for n in how["added"] if n not in added]
    whole = BUILDER in replaced and not (defined_names(parent) - replaced)
    return child, {"answer": "file" if whole else "definitions", "replaced": sorted(replaced), "added": added}


def child_of(parent: str, answer: str) -> tuple[str, dict[str, Any]]:
    """`change_of`, then the standard imports the child uses but lost restored: a whole child file."""
    return _with_imports(*change_of(parent, answer))


def _with_imports(code: str, info: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A retyped file often loses `import torch`: add the standard imports it uses (recorded in the origin)."""
    code, added = add_missing_imports(code)
    return code, ({**info, "imports_added": added} if added else info)


def ask_genotype(study, prompt: str, *, temperature: float, seed: int, purpose: str, system: str | None = None,
                 rationale_first: bool = True) -> str:
    """A genotype from a schema-constrained answer; ValueError with the reason when it is unusable."""
    from fairnad.llm import LLMOutputError

    space = study.space
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    try:
        out = study.llm.complete(msgs, temperature=temperature, schema=space.answer_schema(200, rationale_first),
                                 max_tokens=300,
                                 seed=seed, purpose=purpose)  # fmt: skip
    except LLMOutputError as err:  # no usable JSON even after repair and retries: a failed proposal, not a failed run
        raise ValueError(str(err)) from None
    return space.from_labels((out.parsed or {}).get("architecture"))


def fresh_child(study, genotype: str, origin: dict[str, Any], rng) -> tuple[str, dict[str, Any]]:
    """The LLM's child (source "llm"), or an unseen variant of it when it repeated an evaluated one and
    a variant exists (source "fallback", how in `fallback`). A child the algorithm made without the LLM
    (origin source "algorithm", --llm none) stays "algorithm" either way."""
    made = origin.get("source", "llm")
    if study.seen(genotype) is not None:
        alt = unseen_variant(study, genotype, rng)
        if alt is not None:
            return alt[0], {**origin, "source": "fallback" if made == "llm" else made, "fallback": alt[1]}
    return genotype, {**origin, "source": made}


def unseen_variant(study, genotype: str, rng) -> tuple[str, str] | None:
    """A not-yet-evaluated variant of `genotype` when an LLM repeats itself: a random unseen
    neighbour (tabular) or a scaled copy (open). Returns (genotype, how) or None."""
    if is_open(study):
        for kind in ("up", "down", "tune"):
            scaled = scale(genotype, kind, rng)
            if scaled is not None and study.seen(scaled[0]) is None:
                return scaled[0], f"scaled {kind}"
        return None
    options = study.unseen(study.space.neighbours(genotype))
    return (options[int(rng.integers(len(options)))], "random neighbour") if options else None
