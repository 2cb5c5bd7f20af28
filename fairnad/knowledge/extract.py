"""Extract a paper's design ideas from where it says what it proposes, each grounded in its own words.

Candidates come from the paper's layout and words before any model is asked (candidates.py: design
terms the paper says at least twice, run-in paragraph heads, numbered headings, "we propose / use ..."
sentences), each with the span of the paper that states it. The model is then shown the
candidates in numbered batches and answers, for each, whether it is a design idea, a short name in the
paper's words, the template category it belongs to and a short description (one constrained answer per
batch). What the model cannot do: cite anything else, or invent evidence. What is checked after it:

- the name's words must be in the candidate's span, word by word (support.py); a name that is not (the
  model's own paraphrase) is replaced by the paper's phrase when that is in the span, else rejected;
- a description in another script than the paper's (the 1.5B wrote Chinese into 4 descriptions), or one
  that has none of the name's words (the answers for a batch drift onto a neighbour's idea), is dropped;
- a name of vague and generic words only ("building blocks", "activation functions"; names.is_generic);
- a name that is only a model's ("ResNeXt", "Swin-T") is no idea, nor one of what a paper measures,
  analyses, trains with or implements ("ConvNet Accuracy", "stochastic depth rate"), nor a finding or a family
  of models ("better results than going deeper", "Residual Networks"; names.not_an_idea);
- a run-in head or heading in the paper's introduction, related work or discussion names others' work or
  an analysis ("ConvNet Efficiency.", "Implicit Deep Supervision."), not the paper's own idea.

The old way asked the model, for each category, which attributes a list of sentences stated: it named
about one idea per call, and two thirds of the papers' ideas were missing from the tree.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fairnad.ingest.pdf import Document, normalize
from fairnad.knowledge.candidates import Candidate, background_sections, find_candidates
from fairnad.knowledge.consolidate import is_model_name
from fairnad.knowledge.crosslink import name_pattern
from fairnad.knowledge.evidence import Span, split_sentences
from fairnad.knowledge.names import is_generic, not_an_idea
from fairnad.knowledge.support import coverage
from fairnad.knowledge.template import Template
from fairnad.knowledge.voice import FAMILY_WORD
from fairnad.llm import LLMOutputError
from fairnad.prompts import render

BATCH = 8  # candidates per call: one constrained answer of about 45 tokens each
# a name answered as a category's path ("block/inverted-residual"): the paper's phrase names it instead
CATEGORY_PATH = re.compile(r"^\s*[\w-]+\s*/\s*[\w-]+\s*$")
OTHER_SCRIPT = re.compile(r"[^\x00-\u024f\u2000-\u206f\u2190-\u22ff]")  # letters outside Latin (and punctuation, arrows, maths)


def naming_schema(numbers: list[int], categories: list[str]) -> dict:
    """One answer per candidate of a batch: its number, whether it is an idea, name, category, description."""
    item = {
        "type": "object",
        "properties": {
            "n": {"enum": numbers},
            "idea": {"type": "boolean"},
            "name": {"type": "string", "minLength": 2, "maxLength": 50},
            "category": {"enum": categories},
            "description": {"type": "string", "maxLength": 100},
        },
        "required": ["n", "idea", "name", "category", "description"],
        "additionalProperties": False,
    }
    return {"type": "object", "properties": {"ideas": {"type": "array", "items": item, "minItems": len(numbers),
            "maxItems": len(numbers)}}, "required": ["ideas"], "additionalProperties": False}  # fmt: skip


@dataclass
class PaperResult:
    mentions: list[dict[str, Any]] = field(default_factory=list)  # every candidate the model answered for
    stats: dict[str, Any] = field(default_factory=dict)


def _reject(stats: dict, reason: str) -> str:
    stats["rejected"] += 1
    stats["rejections"][reason] = stats["rejections"].get(reason, 0) + 1
    return reason


def idea_part(name: str, titles: list[str]) -> str:
    """The idea a name holds where it also says how the paper calls it or which model has it: "simple
    operator called channel split" -> "channel split", "channel split and ShuffleNet V2" (a run-in head)
    -> "channel split". Not "named entity" nor "operator named after ...", and a family's word is no
    model here ("convolution and Transformer" stays)."""
    name = re.sub(r"(?i)^(?:\S+\s+)+?(?:called|named|termed|dubbed)\s+(?!after\b)(?=\w)", "", name)
    parts = [p.strip() for p in re.split(r"(?i)\s+and\s+", name)]
    if len(parts) != 2:
        return name
    model = [is_model_name(p, titles) and bool(re.search(r"[A-Z0-9]", p[1:])) and not FAMILY_WORD.fullmatch(p)
             for p in parts]  # fmt: skip
    return parts[model.index(False)] if sum(model) == 1 and all(parts) else name


def judge(cand: Candidate, answer: dict, titles: list[str], in_background: bool = False) -> tuple[str, str, str | None]:
    """(name, description, why it is no accepted idea or None) of one candidate and the model's answer.
    `in_background`: the candidate stands in the paper's introduction, related work or discussion."""
    name = normalize(str(answer.get("name", "")))
    description = normalize(str(answer.get("description", "")))
    if OTHER_SCRIPT.search(description):
        description = ""  # not in the paper's language: dropped, the span stays the idea's description
    if not answer.get("idea"):
        return name, description, "not a design idea"
    if in_background and cand.kind in ("run-in", "heading"):
        return name, description, "a head in the paper's background or discussion"
    span = cand.evidence.sentence
    if OTHER_SCRIPT.search(name) or CATEGORY_PATH.match(name) or coverage(name, span)[0] < 1.0:
        phrase = normalize(cand.phrase)
        if coverage(phrase, span)[0] < 1.0:  # neither the model's name nor the paper's phrase is in its words
            return name, description, "name not in its sentence"
        name = phrase  # the paper's own words
    name = idea_part(name, titles)
    if len(name) < 2:
        return name, description, "empty name"
    if description and coverage(name, description)[0] == 0:
        description = ""  # about another idea of the batch (the 1.5B's answers drift): the span describes it
    if is_generic(name):
        return name, description, "too vague (names a category or any part, not an idea)"
    if is_model_name(name, titles):
        return name, description, "a model's name, not an idea"
    if why := not_an_idea(name):
        return name, description, f"{why}, not an idea"
    return name, description, None


def quoted(cand: Candidate, name: str) -> Span:
    """The span a source quotes: the candidate's own words, or where the model named another idea of the same
    sentence ("1 × 1 convolution" for the candidate "2 × 2 average pooling" in "... an 1 × 1 convolutional layer
    followed by a 2 × 2 average pooling layer"), that name's words in it, else the whole sentence: a quote
    never names another idea."""
    span = cand.evidence
    if coverage(name, span.text)[0] == 1.0:
        return span
    pattern = name_pattern(name, single_word=True)
    m = pattern.search(span.sentence) if pattern is not None else None
    start, end = (m.start(), m.end()) if m else (0, len(span.sentence))
    at = span.sentence_start + start
    return Span(span.page, at, span.sentence_start + end, span.sentence[start:end], span.alignment, span.sentence,
                span.sentence_start)  # fmt: skip


def extract_paper(
    doc: Document,
    template: Template,
    llm,
    *,
    candidates: int = 40,
    design_likeness=None,
    temperature: float = 0.0,
    on_batch=None,
) -> PaperResult:
    """Every candidate of the paper (at most `candidates`), named, filed and checked. `design_likeness`:
    phrases -> closeness to the template's examples (candidates.find_candidates), None to keep all."""
    sentences = split_sentences(doc)
    found = find_candidates(doc, sentences, limit=candidates, design_likeness=design_likeness)
    res = PaperResult()
    stats = {"sentences": len(sentences), "candidates": len(found), "by_kind": dict(Counter(c.kind for c in found)),
             "proposed": 0, "verified": 0, "rejected": 0, "failed_calls": 0, "rejections": {}}  # fmt: skip
    paths = [f"{lv.id}/{c.id}" for lv, c in template.categories()]
    background = background_sections(doc)
    system = render("knowledge/name_system.j2")
    context = render("knowledge/name_context.j2", doc=doc, template=template)
    for b in range(0, len(found), BATCH):
        batch = found[b : b + BATCH]
        numbers = list(range(b + 1, b + 1 + len(batch)))
        user = context + "\n\n" + render("knowledge/name_batch.j2", candidates=list(zip(numbers, batch)))
        try:
            out = llm.complete(
                [{"role": "system", "content": system}, {"role": "user", "content": user}], temperature=temperature,
                schema=naming_schema(numbers, paths), max_tokens=60 * len(batch) + 40,
                purpose=f"knowledge.name:{doc.name}:{b // BATCH + 1}",
            )  # fmt: skip
            answers = {a.get("n"): a for a in (out.parsed or {}).get("ideas", []) if isinstance(a, dict)}
        except LLMOutputError:
            stats["failed_calls"] += 1
            answers = {}
        for n, cand in zip(numbers, batch):
            a = answers.get(n)
            if a is None:
                continue
            stats["proposed"] += 1
            found_at = cand.evidence
            name, description, reason = judge(cand, a, [doc.title or ""], background(found_at.page, found_at.start))
            span = quoted(cand, name)
            category = a.get("category") if a.get("category") in paths else paths[0]
            m = {
                "category": category, "subcategory": "", "name": name, "description": description,
                "effect": None, "page": span.page, "quote": span.text, "offset": span.start, "length": span.end - span.start,
                "alignment": "candidate", "how": cand.kind, "evidence": span.sentence, "evidence_offset": span.sentence_start,
                "candidate": {"kind": cand.kind, "phrase": cand.phrase, "number": n},
                "support": {"coverage": coverage(name, span.sentence)[0]},
            }  # fmt: skip
            if reason:
                _reject(stats, reason)
            else:
                stats["verified"] += 1
            m["verified"], m["reason"] = reason is None, reason or ""
            res.mentions.append(m)
        if on_batch is not None:
            on_batch(b // BATCH + 1, (len(found) + BATCH - 1) // BATCH)
    res.stats = stats
    return res
