"""Where a paper says what it proposes: candidate ideas found in its own layout and words, before any
model is asked.

A small model asked "which attributes of this category do these sentences state?" names about one
idea per call, and two thirds of the ideas the 13 papers state again and again were missing from the
tree it built (hard-swish, shifted windows, ReLU6, the Inception module). Papers announce their ideas
in a few places; each gives candidates with the paper's own span as evidence:

- `run-in`    bold or italic paragraph heads ("Dense connectivity.", "Growth rate."): DenseNet's
              section 3 names one design element per head;
- `heading`   numbered section and subsection headings ("5.2. Nonlinearities", "3.2. Shifted Window
              based Self-Attention"), less the ones every paper has (Introduction, Experiments...);
- `caption`   figure and table captions ("Figure 2: Inception module");
- `proposal`  sentences where the authors say what they do ("we propose / introduce / use ...");
- `term`      phrases far more frequent in this paper than in the rest of the corpus (tf-idf over the
              papers of the build), at their first own sentence (one that cites nothing).

The model then names, describes and files each candidate, or says it is no design idea (extract.py).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from fairnad.ingest.pdf import Document
from fairnad.knowledge.evidence import Sentence, Span
from fairnad.knowledge.names import name_key

KINDS = ("run-in", "heading", "caption", "proposal", "term")
CITES = re.compile(r"\[\s*\d|\bet\s+al\b|\b(?:19|20)\d\d\b")
NUMBERED = re.compile(r"^(?:[A-Z]?\d+(?:\.\d+)*\.?)\s+(?=[A-Za-z])")
# section titles every paper has: they name no idea
GENERIC_HEADINGS = re.compile(
    r"(?i)^(?:abstract|introduction|related work|background|conclusions?|discussion|experiments?|experimental"
    r"|results?|acknowledge?ments?|references|appendix|datasets?|training|implementation details?|ablation"
    r"|evaluation|setup|method(?:ology)?|approach|overview|analysis|limitations|future work|motivation"
    r"|classification|detection|segmentation|object detection|semantic segmentation|image classification"
    r"|measurement|conclusion and future work|conclusions and future work)\b")  # fmt: skip
PROPOSES = re.compile(r"(?i)\b(?:we|our work|this paper|this work)\s+(?:also\s+|further\s+|then\s+)?"
                      r"(?:propose|introduce|present|design|develop|adopt|use|employ|call|term|name|replace|add|"
                      r"insert|apply|utilize|exploit|build)s?\b\s*(?:(?:a|an|the|to use|to)\b)?\s*")  # fmt: skip
# words of what a paper evaluates or reports, not of what it builds: a candidate made only of these (and
# stop words) is no design idea ("Datasets", "Accuracy vs. FLOPs", "Implementation Details")
NOT_DESIGN = {"dataset", "datasets", "imagenet", "cifar", "svhn", "coco", "ade20k", "cityscapes", "pascal", "voc",
              "accuracy", "flops", "madds", "latency", "speed", "inference", "metric", "metrics", "direct",
              "results", "implementation", "details", "experiments", "experimental", "settings", "setup",
              "acknowledgements", "acknowledgments", "abstract", "keywords", "remarks", "closing", "discussion",
              "comparisons", "comparison", "ablation", "study", "analysis", "pre-training", "fine-tuning",
              "optimizers", "optimizer", "quantized", "measurement", "benchmark", "ensemble", "ensembling",
              "guidelines", "practical", "efficiency", "overfitting", "capacity", "generalization", "vs",
              "trade-off", "quality", "specification", "specifications", "variants", "overall", "detailed",
              "large", "models", "detection", "segmentation", "classification", "ilsvrc", "challenge",
              "training", "compatibility", "methods", "proposal", "parameter", "hyperparameter", "settings",
              "run", "runs", "test", "set", "images", "performance", "impact", "effect", "effects", "net",
              "svhn", "jft", "vtab", "ilsvrc2012"}  # fmt: skip
STOP = {"a", "an", "the", "of", "for", "with", "and", "or", "in", "to", "on", "by", "as", "at", "is", "are", "be",
        "we", "our", "this", "that", "these", "which", "it", "its", "from", "can", "each", "all", "more", "than",
        "also", "such", "into", "not", "only", "both", "their", "other", "then", "when", "where", "while", "using",
        "used", "use", "based", "between", "has", "have", "was", "were", "been", "but", "so", "if", "one", "two",
        "three", "same", "different", "new", "shown", "show", "shows", "see", "fig", "figure", "table", "section",
        "eq", "i", "e", "g", "et", "al", "may", "would", "could", "will", "most", "much", "very", "many", "however",
        "thus", "here", "there", "they", "them", "first", "second", "number", "results", "result", "accuracy",
        "error", "performance", "imagenet", "cifar", "dataset", "datasets", "training", "trained", "train", "test",
        "top", "model", "models", "network", "networks", "paper", "method", "methods", "approach", "work",
        "experiments", "compared", "comparison", "state", "art", "set", "validation", "baseline", "ms", "coco",
        "respectively", "example", "small", "large", "higher", "lower", "better", "best", "times", "time",
        "image", "images", "proposed", "following", "note", "case", "order", "way"}  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    phrase: str  # what the paper calls it, as it stands there
    kind: str  # one of KINDS
    evidence: Span  # the paper's own words that state it (page offsets)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z][a-z0-9\-]*", text.lower())


def _span(sentence: Sentence, start: int | None = None, text: str | None = None) -> Span:
    """A sentence (or the piece of page text from `start` to its end) as a span of the page."""
    s = sentence.start if start is None else start
    body = text if text is not None else sentence.text
    return Span(sentence.page, s, s + len(body), body, "candidate", body, s)


_LEAVE_OUT = STOP | NOT_DESIGN | {w for word in STOP | NOT_DESIGN for w in name_key(word)}  # (as name_key stems them)


def design_words(phrase: str) -> frozenset[str]:
    """A phrase's content words that could name a design (not stop words, not what a paper evaluates)."""
    return frozenset(w for w in name_key(phrase) if w not in _LEAVE_OUT and not w.isdigit())


def _first_stating(phrase: str, sentences: list[Sentence], after: tuple[int, int] = (0, -1)) -> Sentence | None:
    """Of the next own sentences (no citation) after (page, offset), the first that has the most of the
    phrase's design words; None when none has any."""
    key = design_words(phrase)
    page, offset = after
    own = [s for s in sentences if (s.page, s.start) > (page, offset) and not CITES.search(s.text)][:12]
    scored = [(len(key & name_key(s.text)), -i, s) for i, s in enumerate(own)]
    best = max(scored, default=None, key=lambda t: t[:2])
    return best[2] if best is not None and best[0] > 0 else None


def run_ins(doc: Document, sentences: list[Sentence]) -> list[Candidate]:
    """Bold or italic paragraph heads, with the sentence that follows each as its evidence: the span runs
    from the head to the end of that sentence ("Growth rate. If each function H produces k feature-maps ...")."""
    out = []
    for page in doc.pages:
        cursor = 0
        for head in page.runins:
            at = page.text.find(head, cursor)
            if at < 0:
                continue
            cursor = at + len(head)
            nxt = next((s for s in sentences if s.page == page.number and s.start >= cursor
                        and "\n" not in page.text[cursor : s.start]), None)  # fmt: skip
            if nxt is None:
                continue
            text = page.text[at : nxt.end]
            out.append(Candidate(head.rstrip(".: "), "run-in", Span(page.number, at, nxt.end, text, "candidate", text, at)))
    return out


def headings(doc: Document, sentences: list[Sentence]) -> list[Candidate]:
    """Numbered section headings that are not the ones every paper has, each with the first own sentence
    after it that shares a word with it."""
    out = []
    for page in doc.pages:
        cursor = 0
        for h in page.headings:
            m = NUMBERED.match(h)
            if not m:
                continue
            title = h[m.end() :].strip()
            at = page.text.find(h, cursor)
            cursor = at + len(h) if at >= 0 else cursor
            if not title or GENERIC_HEADINGS.match(title) or len(title.split()) > 8 or not design_words(title):
                continue
            s = _first_stating(title, sentences, (page.number, at))
            if s is not None:
                out.append(Candidate(title, "heading", _span(s)))
    return out


def captions(doc: Document, sentences: list[Sentence]) -> list[Candidate]:
    """Figure and table captions: what the figure shows, the caption's first sentence as the evidence."""
    out = []
    for page in doc.pages:
        for cap in page.captions:
            m = re.match(r"(?i)^(?:fig\.?|figure|table|tab\.)\s*\d+\s*[.:]?\s*", cap)
            body = cap[m.end() :] if m else cap
            first = re.split(r"(?<=[a-z0-9)\]])\.\s", body, maxsplit=1)[0].strip().rstrip(".")
            at = page.text.find(cap)
            if at < 0 or not first or len(first.split()) > 14 or not design_words(first):
                continue
            start = at + (m.end() if m else 0)
            text = page.text[start : start + len(first)]
            out.append(Candidate(first, "caption", Span(page.number, start, start + len(text), text, "candidate", text, start)))
    return out


def proposals(sentences: list[Sentence]) -> list[Candidate]:
    """Sentences in which the authors say what they do: the words after "we propose / introduce / use ..."."""
    out = []
    for s in sentences:
        if CITES.search(s.text):
            continue
        m = PROPOSES.search(s.text)
        if not m:
            continue
        rest = re.split(r"[,;:.()]|\b(?:which|that|to|for|in order|instead|so)\b", s.text[m.end() :], maxsplit=1)[0]
        phrase = " ".join(rest.split()[:7]).strip()
        if len(phrase) >= 4 and design_words(phrase):
            out.append(Candidate(phrase, "proposal", _span(s)))
    return out


def terms(doc: Document, sentences: list[Sentence], df: Counter, n_docs: int, k: int = 8) -> list[Candidate]:
    """Phrases of one to three content words that this paper uses often and the corpus rarely (tf-idf
    over the build's papers: `df` counts the papers each phrase occurs in), at their first own sentence."""
    tf = phrase_counts(sentences)
    scored = []
    for phrase, n in tf.items():
        if n < 3 or (" " not in phrase and "-" not in phrase) or not design_words(phrase):
            continue  # a plain single word ("window", "mask") names no idea on its own
        idf = math.log((1 + n_docs) / (1 + df.get(phrase, 0))) + 1
        scored.append((n * idf * (1 + 0.5 * (phrase.count(" "))), phrase))  # a compound says more than a word
    out, taken = [], set()
    for _, phrase in sorted(scored, reverse=True):
        key = name_key(phrase)
        if any(key <= t or t <= key for t in taken):
            continue
        s = next((s for s in sentences if not CITES.search(s.text) and phrase in " ".join(words(s.text))), None)
        if s is None:
            continue
        taken.add(key)
        out.append(Candidate(phrase, "term", _span(s)))
        if len(out) == k:
            break
    return out


def phrase_counts(sentences: list[Sentence]) -> Counter:
    """How often each phrase of one to three content words occurs in a paper's own sentences."""
    c: Counter = Counter()
    for s in sentences:
        if CITES.search(s.text):
            continue
        ws = words(s.text)
        for n in (1, 2, 3):
            for i in range(len(ws) - n + 1):
                gram = ws[i : i + n]
                if gram[0] in STOP or gram[-1] in STOP or any(len(w) < 3 or w.isdigit() for w in gram):
                    continue
                c[" ".join(gram)] += 1
    return c


def find_candidates(doc: Document, sentences: list[Sentence], df: Counter | None = None, n_docs: int = 1,
                    limit: int = 32) -> list[Candidate]:  # fmt: skip
    """A paper's candidate ideas, each once (by content words), run-in heads first, then headings,
    captions, proposals and distinctive terms, at most `limit`."""
    found = [*run_ins(doc, sentences), *headings(doc, sentences), *captions(doc, sentences),
             *proposals(sentences)[:10], *terms(doc, sentences, df or Counter(), n_docs)]  # fmt: skip
    out, seen = [], set()
    for c in found:
        key = name_key(c.phrase)
        if not design_words(c.phrase) or key in seen:
            continue
        seen.add(key)
        out.append(c)
    return out[:limit]
