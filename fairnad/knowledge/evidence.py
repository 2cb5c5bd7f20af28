"""Evidence by construction: a paper as numbered sentences with exact page offsets, and quotes
aligned back to those pages.

The model is shown sentences and answers with a sentence's number, so the evidence of an attribute
is a span of the paper by construction, never text the model wrote. A model that answers with a quote
instead (a server without schema support) has it aligned to the page text: exactly (case and spacing
aside), else fuzzily (rapidfuzz), and the span keeps how it was found. Page text excludes the
references section (the parser sets it apart), so a citation never serves as evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from fairnad.ingest.pdf import Document, normalize

MIN_SENTENCE_WORDS = 5  # shorter pieces are headings, labels and table debris
MIN_QUOTE_WORDS = 5
FUZZY_AT = 90.0  # rapidfuzz partial-ratio a quote must reach to count as found


@dataclass(frozen=True)
class Sentence:
    number: int  # 1-based, in reading order over the whole paper
    page: int
    start: int  # [start, end) in the page's text (Document.pages[page - 1].text)
    end: int
    text: str


@dataclass(frozen=True)
class Span:
    """Where an attribute's evidence is: `page_text[start:end] == text`; `sentence` is the whole
    sentence around it (the quotation a reader sees), starting at `sentence_start` on the page."""

    page: int
    start: int
    end: int
    text: str
    alignment: str  # "sentence" (cited by number), "resolved" (the shown sentence that states it), "exact" or "fuzzy" (a quote)
    sentence: str
    sentence_start: int
    score: float = 100.0


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def split_sentences(doc: Document, min_words: int = MIN_SENTENCE_WORDS) -> list[Sentence]:
    """Every sentence of the paper's body text (references excluded), with its page offsets.

    pysbd finds the boundaries (it knows "e.g.", "et al.", "Fig. 3" and decimals); a sentence never
    crosses a text block (blocks are paragraphs, headings and captions, joined by newlines)."""
    out: list[Sentence] = []
    seg = _segmenter()
    for page in doc.pages:
        text = page.text
        cursor = 0
        for piece in seg.segment(text):
            at = text.find(piece, cursor)
            if at < 0:  # pysbd changed the text (it should not, clean=False): fall back to its stripped form
                at = text.find(piece.strip(), cursor)
                if at < 0:
                    continue
                piece = piece.strip()
            cursor = at + len(piece)
            for m in re.finditer(r"[^\n]+", piece):
                raw = m.group(0)
                lead = len(raw) - len(raw.lstrip())
                body = raw.strip()
                words = body.split()
                if len(words) < min_words or sum(c.isalpha() for c in body) < 0.5 * len(body):
                    continue
                start = at + m.start() + lead
                out.append(Sentence(len(out) + 1, page.number, start, start + len(body), body))
    return out


def cite(sentence: Sentence) -> Span:
    """The span of a sentence the model cited by number."""
    return Span(sentence.page, sentence.start, sentence.end, sentence.text, "sentence", sentence.text, sentence.start)


def align_quote(doc: Document, quote: str, page: int | None = None,
                sentences: list[Sentence] | None = None) -> Span | None:  # fmt: skip
    """The span of `quote` in the paper's body text, or None: exact first (case and spacing aside),
    then fuzzy at FUZZY_AT or more. The stated page is tried first."""
    q = normalize(quote or "").strip(" \"'")
    words = q.split()
    if len(words) < MIN_QUOTE_WORDS:
        return None
    order = ([page] if page else []) + [p.number for p in doc.pages if p.number != page]
    texts = {p.number: p.text for p in doc.pages}
    pattern = re.compile(r"\s+".join(re.escape(w) for w in words), re.I)
    for number in order:
        m = pattern.search(texts.get(number, ""))
        if m:
            return _span(doc, number, m.start(), m.end(), "exact", 100.0, sentences)
    from rapidfuzz import fuzz

    best = None
    for number in order:
        text = texts.get(number, "")
        if not text:
            continue
        al = fuzz.partial_ratio_alignment(q.lower(), text.lower(), score_cutoff=FUZZY_AT)
        if al is not None and (best is None or al.score > best[1].score):
            best = (number, al)
    if best is None:
        return None
    number, al = best
    start, end = al.dest_start, al.dest_end
    text = texts[number]
    while start > 0 and text[start - 1].isalnum():  # whole words only
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    lines = [(start + m.start(), start + m.end()) for m in re.finditer(r"[^\n]+", text[start:end])]
    start, end = max(lines, key=lambda ab: ab[1] - ab[0])  # a span stays inside one text block
    if abs((end - start) - len(q)) > 0.3 * len(q):
        return None
    return _span(doc, number, start, end, "fuzzy", round(al.score, 1), sentences)


def _span(doc: Document, page: int, start: int, end: int, how: str, score: float,
          sentences: list[Sentence] | None) -> Span:  # fmt: skip
    """A span with the sentence(s) around it as its quotation."""
    text = doc.pages[page - 1].text
    around = [s for s in (sentences or split_sentences(doc)) if s.page == page and s.start < end and s.end > start]
    if around:
        s0, s1 = min(s.start for s in around), max(s.end for s in around)
        s0, s1 = min(s0, start), max(s1, end)
    else:
        s0, s1 = start, end
    return Span(page, start, end, text[start:end], how, text[s0:s1], s0, score)


def span_is_at_its_offsets(doc: Document, page: int, start: int, end: int, text: str) -> bool:
    """Is `text` exactly at [start, end) of the page? (what every stored span must satisfy)"""
    return 1 <= page <= len(doc.pages) and doc.pages[page - 1].text[start:end] == text
