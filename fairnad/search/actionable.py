"""Can the search apply an idea? Each idea of a tree is given to the model with the prompt a FairNAD idea
child gets (fairnad/idea_open.j2), on a reference model; the idea is actionable when the child the
model writes builds, gives the right output shape, and is another network than its parent (its
structure changes). The evidence is kept with the idea in the tree (`actionable`), and fair sampling
passes over an idea that was checked and failed (AttributeTree.sampled).

A paper's sentence about an idea is not yet an idea the search can use: "non-linearity", "feed-forward
nature" or "scale" are stated in papers, and a child that only retypes its parent changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fairnad.prompts import render
from fairnad.search.common import child_of, cost_text
from fairnad.search.ideas import Idea
from fairnad.space.edits import EditError

Probe = Callable[[str], dict[str, Any]]  # code -> the sandbox's check (status, category, error, structure, params)


def check_idea(llm, idea: Idea, parent: str, parent_check: dict[str, Any], contract: str, probe: Probe,
               max_tokens: int = 1500) -> dict[str, Any]:  # fmt: skip
    """One idea applied once to `parent` (temperature 0): {"ok", "why", "builds", "changed", "params"}."""
    view = {"accuracy": 0.0, "cost_text": cost_text(parent_check), "code": parent, "curve": "", "shapes": ""}
    fb = {"front": [], "failures": [], "ideas": [], "cost": "params", "objective": None}
    prompt = render("fairnad/idea_open.j2", contract=contract, parent=view, idea=idea, fb=fb, form="file")
    msgs = [{"role": "system", "content": render("fairnad/system.j2")}, {"role": "user", "content": prompt}]
    out = llm.complete(msgs, temperature=0.0, max_tokens=max_tokens, seed=0, purpose=f"knowledge.actionable:{idea.id}")
    try:
        child, _ = child_of(parent, out.text)
    except EditError as err:
        return {"ok": False, "why": f"no applicable code ({err})", "builds": False, "changed": False}
    r = probe(child)
    builds = r.get("status") == "complete"
    changed = builds and r.get("structure") != parent_check.get("structure")
    why = ("" if changed else "the child is its parent's network again" if builds
           else f"{r.get('category')}: {(r.get('error') or '').splitlines()[0][:160] if r.get('error') else ''}")  # fmt: skip
    return {"ok": bool(changed), "why": why, "builds": builds, "changed": bool(changed), "params": r.get("params")}
