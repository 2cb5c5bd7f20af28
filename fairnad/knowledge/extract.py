"""Extract attributes from one paper: for every template category, the passages most relevant to it
(sentence embeddings), one structured LLM call, and a verbatim-quote check against the page text.

Asking about every category, each with its own best passages, is what keeps the space fair: a
paper's less fashionable ideas are asked about as often as its headline ones. The quote check is
the guard against invented attributes: an attribute whose quote is not in the paper is rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fairnad.ingest.pdf import Document, normalize
from fairnad.knowledge.chunks import Chunk, chunk_document
from fairnad.knowledge.embed import Embedder
from fairnad.knowledge.template import Category, Level, Template
from fairnad.llm import LLMOutputError
from fairnad.prompts import render

MIN_QUOTE_WORDS = 5


def category_query(level: Level, cat: Category) -> str:
    return f"{cat.name} ({level.name}): {cat.description} Examples: {'; '.join(cat.examples)}"


def attribute_schema(pages: list[int], max_items: int) -> dict:
    return {
        "type": "object",
        "properties": {
            "attributes": {
                "type": "array",
                "maxItems": max_items,
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "minLength": 2, "maxLength": 60},
                        "subcategory": {"type": "string", "maxLength": 40},
                        "description": {"type": "string", "maxLength": 150},
                        "effect": {"enum": ["performance", "efficiency", "both"]},
                        "page": {"enum": sorted(set(pages))},
                        "quote": {"type": "string", "maxLength": 220},
                    },
                    "required": ["name", "subcategory", "description", "effect", "page", "quote"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["attributes"],
        "additionalProperties": False,
    }


def _canon(text: str) -> str:
    """What quote matching compares: normalised text, lower case, spacing around punctuation unified."""
    t = normalize(text).lower()
    t = re.sub(r"\s*([(),.;:\[\]])\s*", r"\1", t)
    return re.sub(r"\s+", " ", t)


@dataclass
class QuoteCheck:
    ok: bool
    page: int | None = None
    offset: int | None = None  # character offset of the quote in the page's normalised text
    length: int | None = None
    reason: str = ""


def verify_quote(doc: Document, quote: str, page: int | None) -> QuoteCheck:
    """Is `quote` in the paper (whitespace, case and ligature differences aside)? Stated page first."""
    q = _canon(quote or "").strip(" \"'")
    if len(q.split()) < MIN_QUOTE_WORDS:
        return QuoteCheck(False, reason=f"quote shorter than {MIN_QUOTE_WORDS} words")
    order = ([page] if page else []) + [p.number for p in doc.pages if p.number != page]
    for number in order:
        p = doc.pages[number - 1] if 1 <= number <= len(doc.pages) else None
        if p is None:
            continue
        hay = _canon(p.text + "\n" + "\n".join(p.tables))
        i = hay.find(q)
        if i >= 0:
            return QuoteCheck(True, number, i, len(q), "" if number == page else f"found on page {number}, not {page}")
    return QuoteCheck(False, reason="quote not found in the paper")


@dataclass
class PaperResult:
    mentions: list[dict[str, Any]] = field(default_factory=list)  # every proposal, verified or not
    stats: dict[str, Any] = field(default_factory=dict)


def select_passages(chunks: list[Chunk], vecs: np.ndarray, query_vec: np.ndarray, k: int) -> list[Chunk]:
    if not chunks:
        return []
    scores = vecs @ query_vec
    top = np.argsort(-scores, kind="stable")[:k]
    return [chunks[i] for i in sorted(top, key=lambda i: (chunks[i].page, i))]


def extract_paper(
    doc: Document,
    template: Template,
    llm,
    embedder: Embedder,
    *,
    passages: int = 3,
    max_items: int = 5,
    temperature: float = 0.0,
    max_tokens: int = 800,
    on_category=None,
) -> PaperResult:
    chunks = chunk_document(doc)
    res = PaperResult()
    stats = {"chunks": len(chunks), "proposed": 0, "verified": 0, "rejected": 0, "failed_calls": 0,
             "categories_asked": 0, "categories_filled": 0, "rejections": {}}  # fmt: skip
    if not chunks:
        res.stats = stats
        return res
    vecs = embedder.encode([c.text for c in chunks])
    cats = template.categories()
    queries = embedder.encode([category_query(lv, c) for lv, c in cats])
    system = render("knowledge/extract_system.j2")
    for (level, cat), qv in zip(cats, queries):
        chosen = select_passages(chunks, vecs, qv, passages)
        user = render("knowledge/extract.j2", doc=doc, level=level, category=cat, passages=chosen, max_items=max_items)
        stats["categories_asked"] += 1
        try:
            out = llm.complete(
                [{"role": "system", "content": system}, {"role": "user", "content": user}],
                temperature=temperature, schema=attribute_schema([c.page for c in chosen], max_items),
                max_tokens=max_tokens, purpose=f"knowledge.extract:{level.id}/{cat.id}",
            )  # fmt: skip
            items = (out.parsed or {}).get("attributes", [])
        except LLMOutputError:
            stats["failed_calls"] += 1
            items = []
        filled = False
        for it in items:
            check = verify_quote(doc, it.get("quote", ""), it.get("page"))
            stats["proposed"] += 1
            name = normalize(it.get("name", ""))
            m = {
                "category": f"{level.id}/{cat.id}", "subcategory": normalize(it.get("subcategory", "")) or "general",
                "name": name, "description": normalize(it.get("description", "")), "effect": it.get("effect"),
                "page": check.page or it.get("page"), "quote": normalize(it.get("quote", "")), "verified": check.ok,
                "reason": check.reason, "offset": check.offset, "length": check.length,
            }  # fmt: skip
            if check.ok and len(name) < 2:
                m["verified"], m["reason"] = False, "empty name"
            if m["verified"]:
                stats["verified"] += 1
                filled = True
            else:
                stats["rejected"] += 1
                stats["rejections"][m["reason"]] = stats["rejections"].get(m["reason"], 0) + 1
            res.mentions.append(m)
        stats["categories_filled"] += int(filled)
        if on_category is not None:
            on_category(level, cat)
    res.stats = stats
    return res
