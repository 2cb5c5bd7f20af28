"""Extract attributes from one paper, each grounded in a sentence of it by construction.

The paper is split into sentences with page offsets (evidence.py). For every template category the
sentences closest to it (sentence embeddings) are chosen; their union is shown to the model once per
paper, numbered, and each category is asked about in turn with the same numbered list first, so a
llama.cpp server reuses the list's prompt evaluation from the previous call (only the question and
the answer cost time). The model answers with sentence numbers (an enum in the schema), so evidence
cannot be invented; a quote written instead is aligned back to the page and kept with its alignment
status. Each attribute must then be supported by its sentence (support.py), or it is rejected with
the reason.

Asking about every category is what keeps the space fair: a paper's less fashionable ideas are asked
about as often as its headline ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fairnad.ingest.pdf import Document, normalize
from fairnad.knowledge.consolidate import is_model_name
from fairnad.knowledge.embed import Embedder
from fairnad.knowledge.evidence import Sentence, Span, align_quote, cite, split_sentences
from fairnad.knowledge.names import is_vague
from fairnad.knowledge.support import check_support
from fairnad.knowledge.template import Category, Level, Template
from fairnad.llm import LLMOutputError
from fairnad.prompts import render


def category_query(level: Level, cat: Category) -> str:
    return f"{cat.name} ({level.name}): {cat.description} Examples: {'; '.join(cat.examples)}"


def attribute_schema(numbers: list[int], max_items: int) -> dict:
    """The answer: the evidence sentence's number first (the idea is then named from it)."""
    return {
        "type": "object",
        "properties": {
            "attributes": {
                "type": "array",
                "maxItems": max_items,
                "items": {
                    "type": "object",
                    "properties": {
                        "sentence": {"enum": sorted(set(numbers))},
                        "name": {"type": "string", "minLength": 2, "maxLength": 50},
                        "subcategory": {"type": "string", "maxLength": 30},
                        "description": {"type": "string", "maxLength": 100},
                        "effect": {"enum": ["performance", "efficiency", "both"]},
                    },
                    "required": ["sentence", "name", "subcategory", "description", "effect"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["attributes"],
        "additionalProperties": False,
    }


def select_sentences(sentences: list[Sentence], vecs: np.ndarray, queries: np.ndarray, k: int) -> list[Sentence]:
    """The k sentences closest to each category, as one list in reading order."""
    if not sentences:
        return []
    scores = vecs @ queries.T  # sentences x categories
    chosen: set[int] = set()
    for c in range(scores.shape[1]):
        chosen.update(int(i) for i in np.argsort(-scores[:, c], kind="stable")[:k])
    return [sentences[i] for i in sorted(chosen)]


@dataclass
class PaperResult:
    mentions: list[dict[str, Any]] = field(default_factory=list)  # every proposal, accepted or not
    stats: dict[str, Any] = field(default_factory=dict)


def _stating_sentence(name: str, claim_vec: np.ndarray, shown: dict[int, Sentence], vecs: np.ndarray):
    """The shown sentence that supports `name` with the closest meaning to the claim, with its support."""
    best = None
    for s, v in zip(shown.values(), vecs):
        sup = check_support(name, s.text, float(claim_vec @ v))
        if sup.ok and (best is None or (sup.coverage, sup.similarity) > (best[1].coverage, best[1].similarity)):
            best = (s, sup)
    return best


def _sentence_vec(item: dict, span: Span, shown_vecs: np.ndarray, embedder: Embedder) -> np.ndarray:
    """The embedding of the span's sentence: already computed when the item cites a shown sentence."""
    if span.alignment == "sentence":
        return shown_vecs[item["sentence"] - 1]
    return embedder.encode([span.sentence])[0]


def ground(item: dict, shown: dict[int, Sentence], doc: Document, sentences: list[Sentence]) -> Span | None:
    """The evidence span of one answer item: the sentence it cites, else its quote aligned back."""
    n = item.get("sentence")
    if isinstance(n, int) and n in shown:
        return cite(shown[n])
    if item.get("quote"):
        return align_quote(doc, str(item["quote"]), item.get("page"), sentences)
    return None


def extract_paper(
    doc: Document,
    template: Template,
    llm,
    embedder: Embedder,
    *,
    sentences_per_category: int = 5,
    max_items: int = 4,
    temperature: float = 0.0,
    max_tokens: int = 400,
    on_category=None,
) -> PaperResult:
    sentences = split_sentences(doc)
    res = PaperResult()
    stats = {"sentences": len(sentences), "shown": 0, "proposed": 0, "verified": 0, "rejected": 0, "failed_calls": 0,
             "categories_asked": 0, "categories_filled": 0, "rejections": {}, "alignment": {}}  # fmt: skip
    if not sentences:
        res.stats = stats
        return res
    vecs = embedder.encode([s.text for s in sentences])
    cats = template.categories()
    queries = embedder.encode([category_query(lv, c) for lv, c in cats])
    chosen = select_sentences(sentences, vecs, queries, sentences_per_category)
    shown = {i + 1: s for i, s in enumerate(chosen)}  # renumbered 1..n: short numbers for a small model
    shown_vecs = embedder.encode([s.text for s in chosen])
    stats["shown"] = len(shown)
    system = render("knowledge/extract_system.j2")
    for level, cat in cats:
        user = render("knowledge/extract.j2", doc=doc, sentences=shown, level=level, category=cat, max_items=max_items)
        stats["categories_asked"] += 1
        try:
            out = llm.complete(
                [{"role": "system", "content": system}, {"role": "user", "content": user}],
                temperature=temperature, schema=attribute_schema(list(shown), max_items),
                max_tokens=max_tokens, purpose=f"knowledge.extract:{level.id}/{cat.id}",
            )  # fmt: skip
            items = [it for it in (out.parsed or {}).get("attributes", []) if isinstance(it, dict)]
        except LLMOutputError:
            stats["failed_calls"] += 1
            items = []
        claims = [f"{normalize(str(it.get('name', '')))}: {normalize(str(it.get('description', '')))}" for it in items]
        claim_vecs = embedder.encode(claims) if items else np.zeros((0, queries.shape[1]))
        filled = False
        seen: set[str] = set()
        for it, cv in zip(items, claim_vecs):
            stats["proposed"] += 1
            name = normalize(str(it.get("name", "")))
            span = ground(it, shown, doc, sentences)
            sup = check_support(name, span.sentence, float(cv @ _sentence_vec(it, span, shown_vecs, embedder))) if span else None
            if span is not None and span.alignment == "sentence" and not sup.ok:
                # a small model's sentence number is a noisy pointer (often off by one, or 1 when unsure):
                # the shown sentence that states the claim best is taken, if one does
                better = _stating_sentence(name, cv, shown, shown_vecs)
                if better is not None:
                    span, sup = replace(cite(better[0]), alignment="resolved"), better[1]
            m = {
                "category": f"{level.id}/{cat.id}",
                "subcategory": normalize(str(it.get("subcategory", ""))) or "general", "name": name,
                "description": normalize(str(it.get("description", ""))), "effect": it.get("effect"),
                "page": span.page if span else it.get("page"), "quote": span.text if span else normalize(str(it.get("quote", ""))),
                "offset": span.start if span else None, "length": (span.end - span.start) if span else None,
                "alignment": span.alignment if span else None, "evidence": span.sentence if span else None,
                "evidence_offset": span.sentence_start if span else None, "cited": it.get("sentence"),
            }  # fmt: skip
            if span is None:
                reason = "quote not in the paper" if it.get("quote") else "no evidence sentence"
            elif len(name) < 2:
                reason = "empty name"
            elif name.lower() in seen:
                reason = "repeated in this answer"
            elif is_vague(name):
                reason = "too vague (names a category, not an idea)"
            elif is_model_name(name, [doc.title or ""]):
                reason = "a model's name, not an idea"
            else:
                m["support"] = {"coverage": sup.coverage, "similarity": sup.similarity, "missing": list(sup.missing)}
                reason = sup.reason
            seen.add(name.lower())
            m["verified"], m["reason"] = not reason, reason
            if reason:
                stats["rejected"] += 1
                stats["rejections"][reason] = stats["rejections"].get(reason, 0) + 1
            else:
                stats["verified"] += 1
                stats["alignment"][span.alignment] = stats["alignment"].get(span.alignment, 0) + 1
                filled = True
            res.mentions.append(m)
        stats["categories_filled"] += int(filled)
        if on_category is not None:
            on_category(level, cat)
    res.stats = stats
    return res
