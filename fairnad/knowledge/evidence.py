"""Evidence by construction: a paper as sentences with exact page offsets, and spans of its pages.

An idea's evidence is a span of the paper found before any model is asked (candidates.py), never text
a model wrote. Page text excludes the references section (the parser sets it apart), so a citation
never serves as evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from fairnad.ingest.pdf import Document

MIN_SENTENCE_WORDS = 5  # shorter pieces are headings, labels and table debris


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
    alignment: str  # how it was found: "candidate" (where the paper says what it proposes), "name" (looked up by name)
    sentence: str
    sentence_start: int



@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


# abbreviations pysbd ends a sentence at when a number in parentheses follows ("the projection shortcut in
# Eqn. (2) is used to match dimensions" came out as two sentences, the first without its verb)
_ABBREVIATION_END = re.compile(r"(?i)\b(?:eqn?s?|sec|secs|tab|no|vs|cf|resp|approx|ref|refs|app|alg|thm)\.\s*$")  # fmt: skip


def _pieces(text: str) -> list[str]:
    """pysbd's sentences of a page, a piece that ends with an abbreviation joined to the one after it."""
    out: list[str] = []
    for piece in _segmenter().segment(text):
        if out and _ABBREVIATION_END.search(out[-1]):
            out[-1] += piece
        else:
            out.append(piece)
    return out


def split_sentences(doc: Document, min_words: int = MIN_SENTENCE_WORDS) -> list[Sentence]:
    """Every sentence of the paper's body text (references excluded), with its page offsets.

    pysbd finds the boundaries (it knows "e.g.", "et al.", "Fig. 3" and decimals; _pieces joins "Eqn. (2)");
    a sentence never crosses a text block (blocks are paragraphs, headings and captions, joined by newlines)."""
    out: list[Sentence] = []
    for page in doc.pages:
        text = page.text
        cursor = 0
        for piece in _pieces(text):
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


def span_is_at_its_offsets(doc: Document, page: int, start: int, end: int, text: str) -> bool:
    """Is `text` exactly at [start, end) of the page? (what every stored span must satisfy)"""
    return 1 <= page <= len(doc.pages) and doc.pages[page - 1].text[start:end] == text
