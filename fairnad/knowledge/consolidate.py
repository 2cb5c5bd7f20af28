"""Consolidation: merge near-duplicate attributes across papers, one category per attribute, flag
over-specific ones (modules of a single model), and list the categories left empty.

Duplicates are found by sentence-embedding similarity of their names; pairs in the uncertain band
are confirmed by the LLM when it is capable enough to be asked (not the 135M embedded model).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from fairnad.knowledge.embed import Embedder
from fairnad.knowledge.extract import category_query
from fairnad.knowledge.template import Template

MODEL_NAME = re.compile(r"[A-Z][a-z]+[A-Z]\w*|\w*(?:Net|net|Former|former)\b|\b[vV]\d\b|\w+-\d+\b")


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "attribute"


class _Union:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        self.parent[self.find(i)] = self.find(j)


def _confirm(llm, a: str, b: str) -> bool:
    schema = {"type": "object", "properties": {"same": {"type": "boolean"}}, "required": ["same"]}
    msg = (f'Are "{a}" and "{b}" the same neural-network design idea, only named differently? '
           'Answer {"same": true} or {"same": false}.')  # fmt: skip
    out = llm.complete([{"role": "user", "content": msg}], temperature=0.0, schema=schema, max_tokens=20,
                       purpose="knowledge.confirm_duplicate")  # fmt: skip
    return bool((out.parsed or {}).get("same"))


def _majority(values: list[str]) -> str:
    counts = Counter(v for v in values if v)
    return max(counts, key=lambda v: (counts[v], -len(v))) if counts else ""


def over_specific(name: str, titles: list[str]) -> str | None:
    """Why an attribute looks like one model's module rather than a general idea, or None."""
    m = MODEL_NAME.search(name)
    if m:
        return f"named after a model ({m.group(0)!r})"
    words = {w.lower() for t in titles for w in re.findall(r"[A-Za-z][A-Za-z0-9-]{3,}", t)}
    generic = {"network", "networks", "neural", "deep", "learning", "convolutional", "image", "recognition", "model",
               "models", "efficient", "design", "transformer", "transformers", "residual", "convolutions", "scaling",
               "architecture", "vision", "mobile", "with", "for", "the", "and", "using"}  # fmt: skip
    own = [w for w in re.findall(r"[A-Za-z][A-Za-z0-9-]{3,}", name) if w.lower() in words - generic]
    if own and len(own) == len(name.split()):
        return f"named after its paper ({', '.join(own)})"
    return None


def consolidate(
    mentions: list[dict[str, Any]],
    template: Template,
    embedder: Embedder,
    *,
    llm=None,
    merge_at: float = 0.85,
    ask_from: float = 0.72,
) -> dict[str, Any]:
    """Verified mentions (each with paper, title, category, name, ...) -> attributes and a report."""
    names = sorted({m["name"].lower() for m in mentions if m.get("name")})
    if not names:
        return {"attributes": [], "empty_categories": [f"{lv.id}/{c.id}" for lv, c in template.categories()],
                "merged": 0, "confirmations": 0}  # fmt: skip
    vecs = embedder.encode(names)
    sim = vecs @ vecs.T
    uf = _Union(len(names))
    confirmations = 0
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if sim[i, j] >= merge_at:
                uf.union(i, j)
            elif llm is not None and sim[i, j] >= ask_from and uf.find(i) != uf.find(j):
                confirmations += 1
                if _confirm(llm, names[i], names[j]):
                    uf.union(i, j)
    index = {n: i for i, n in enumerate(names)}
    clusters: dict[int, list[dict]] = {}
    for m in mentions:
        if m.get("name"):
            clusters.setdefault(uf.find(index[m["name"].lower()]), []).append(m)
    cats = template.categories()
    cat_paths = [f"{lv.id}/{c.id}" for lv, c in cats]
    cat_vecs = embedder.encode([category_query(lv, c) for lv, c in cats])
    attributes, used_ids = [], set()
    for group in clusters.values():
        name = _majority([m["name"] for m in group])
        by_cat = Counter(m["category"] for m in group)
        top = max(by_cat.values())
        tied = [c for c, n in by_cat.items() if n == top]
        if len(tied) > 1:  # inconsistent categorisation: the category whose description fits the name best
            nv = vecs[index[name.lower()]]
            tied = [max(tied, key=lambda c: float(cat_vecs[cat_paths.index(c)] @ nv) if c in cat_paths else -1)]
        category = tied[0]
        effects = {m.get("effect") for m in group if m.get("effect")}
        effect = "both" if {"performance", "efficiency"} <= effects or "both" in effects else (effects.pop() if effects else "")
        papers = sorted({m["paper"] for m in group})
        titles = sorted({m.get("title") or m["paper"] for m in group})
        aid = slug(name)
        while aid in used_ids:
            aid += "-x"
        used_ids.add(aid)
        attributes.append({
            "id": aid, "name": name, "category": category,
            "recategorized": len(by_cat) > 1,
            "subcategory": _majority([m.get("subcategory") or "" for m in group if m["category"] == category]) or "general",
            "description": next((m["description"] for m in group if m["name"] == name and m.get("description")), ""),
            "effect": effect, "aliases": sorted({m["name"] for m in group} - {name}),
            "frequency": len(papers), "mentions": len(group),
            "over_specific": over_specific(name, titles) if len(papers) == 1 else None,
            "sources": [{"paper": m["paper"], "title": m.get("title"), "page": m.get("page"), "quote": m.get("quote"),
                         "offset": m.get("offset"), "length": m.get("length")} for m in group],
        })  # fmt: skip
    _merge_subcategories(attributes, embedder)
    filled = {a["category"] for a in attributes}
    return {
        "attributes": sorted(attributes, key=lambda a: (a["category"], -a["frequency"], a["name"])),
        "empty_categories": [p for p in cat_paths if p not in filled],
        "merged": len(mentions) - len(attributes), "confirmations": confirmations,
    }


def _merge_subcategories(attributes: list[dict], embedder: Embedder, at: float = 0.8) -> None:
    """Within a category, sub-categories that name the same group ('conv', 'convolutions') become one."""
    by_cat: dict[str, list[dict]] = {}
    for a in attributes:
        by_cat.setdefault(a["category"], []).append(a)
    for group in by_cat.values():
        subs = sorted({a["subcategory"] for a in group})
        if len(subs) < 2:
            continue
        v = embedder.encode(subs)
        uf = _Union(len(subs))
        s = v @ v.T
        for i in range(len(subs)):
            for j in range(i + 1, len(subs)):
                if s[i, j] >= at:
                    uf.union(i, j)
        counts = Counter(a["subcategory"] for a in group)
        canon = {}
        for i, sub in enumerate(subs):
            root = uf.find(i)
            members = [subs[k] for k in range(len(subs)) if uf.find(k) == root]
            canon[sub] = max(members, key=lambda x: (counts[x], -len(x)))
        for a in group:
            a["subcategory"] = canon[a["subcategory"]]
