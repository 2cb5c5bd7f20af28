"""`fairnad knowledge browse`: the attribute tree as one self-contained HTML page (no network).

The tree goes into the page as JSON inside a <script type="application/json"> element (with <, >
and & escaped, so no string can close the element) and is rendered with textContent only: a paper
or an LLM answer cannot inject markup or script.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from fairnad.knowledge.tree import AttributeTree
from fairnad.report.html import safe_json

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)


def tree_payload(tree: AttributeTree) -> dict:
    g = tree.g
    levels = []
    for lv in g.successors("root"):
        cats = []
        for c in g.successors(lv):
            subs = []
            for s in g.successors(c):
                attrs = [g.nodes[a] for a in g.successors(s)]
                subs.append({
                    "name": g.nodes[s]["name"],
                    "attributes": [{
                        "name": a["name"], "description": a.get("description") or "", "effect": a.get("effect") or "",
                        "frequency": a.get("frequency", 0), "aliases": list(a.get("aliases") or []),
                        "subcategory": a.get("subcategory") or "", "over_specific": a.get("over_specific") or "",
                        "from_template": bool(a.get("from_template")),
                        "sources": [_source(x) for x in a.get("sources", [])],
                    } for a in sorted(attrs, key=lambda a: (-a.get("frequency", 0), a["name"]))],
                })  # fmt: skip
            cats.append({"name": g.nodes[c]["name"], "path": g.nodes[c]["path"],
                         "description": g.nodes[c].get("description", ""), "subcategories": subs})  # fmt: skip
        levels.append({"name": g.nodes[lv]["name"], "categories": cats})
    papers = tree.papers
    n = len(tree.attributes())
    return {
        "title": f"Design ideas: {tree.name}",
        "subtitle": f"{n} ideas from {len(papers)} papers" if papers else f"{n} ideas (from the template, no papers)",
        "papers": [{"name": p.get("name"), "title": p.get("title")} for p in papers],
        "levels": levels,
        "bias": tree.idea_shares() if papers else [],
        "sampled": sorted(a["name"] for attrs in tree.sampled().values() for a in attrs),
    }


def _source(x: dict) -> dict:
    """A source as the page shows it: its sentence, with the span's place in it to highlight."""
    quote, sentence = x.get("quote") or "", x.get("evidence") or ""
    at = (x["offset"] - x["evidence_offset"]) if sentence and x.get("offset") is not None and x.get("evidence_offset") is not None else -1
    if not (0 <= at and sentence[at : at + len(quote)] == quote):  # an older tree: the quote alone
        sentence, at = quote, 0
    return {"paper": x.get("paper"), "title": x.get("title"), "page": x.get("page"), "quote": quote,
            "sentence": sentence, "mark": [at, at + len(quote)], "alignment": x.get("alignment") or "",
            "how": x.get("how") or ""}


def write_tree_html(tree: AttributeTree, out: str | Path) -> Path:
    payload = tree_payload(tree)
    html = _ENV.get_template("tree.html.j2").render(title=payload["title"], data_json=safe_json(payload))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html)
    return out
