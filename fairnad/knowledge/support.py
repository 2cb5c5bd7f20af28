"""Is an attribute supported by its evidence sentence? A found sentence is not a supported attribute:
a small model attaches real sentences to ideas the paper does not have (the prompt's examples,
listed back). Two signals, with thresholds chosen on a labelled set of model proposals
(knowledge/labels/support.yaml, benchmarks/knowledge_thresholds.py --support):

- coverage: the share of the name's content words that the sentence contains (stems and
  abbreviations such as "conv" for "convolution" count);
- similarity: the embedding cosine between "name: description" and the sentence.

An attribute is supported when the sentence has every content word of its name, or when it has some
of them and the meaning is close. Otherwise it is rejected, with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fairnad.knowledge.names import name_key

COVERAGE_AT = 0.5  # some of the name's words must be in the sentence ...
SIMILAR_AT = 0.6  # ... and the meaning close, unless all of them are


@dataclass(frozen=True)
class Support:
    ok: bool
    coverage: float
    similarity: float
    missing: tuple[str, ...]

    @property
    def reason(self) -> str:
        if self.ok:
            return ""
        if self.coverage == 0:
            return "name not in its sentence"
        return "name only partly in its sentence"


def sizes_joined(text: str) -> str:
    """Sizes written as one word, as in the sentences' words: "3 × 3 conv" -> "3x3 conv"."""
    return re.sub(r"(\d)\s*[x×]\s*(\d)", r"\1x\2", text)  # "3 × 3" is "3x3"


def sentence_words(text: str) -> set[str]:
    t = sizes_joined(text)
    t = re.sub(r"([a-z])([A-Z][a-z])", r"\1 \2", t)
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in re.findall(r"[a-z0-9]+", t.lower())}


# abbreviations papers write for a name's word: "conv" layers are convolutions, "norm" normalization
ABBREVIATIONS = {"conv": "convolution", "norm": "normalization", "attn": "attention", "avg": "average",
                 "param": "parameter", "params": "parameter", "dw": "depthwise", "pw": "pointwise"}  # fmt: skip
_SUFFIXES = ("izations", "isations", "ization", "isation", "ations", "ation", "izing", "ising", "ized", "ised", "izes",
             "ises", "ize", "ise", "ings", "ing", "ed", "es", "s", "al", "ly")  # fmt: skip


def stem(word: str) -> str:
    """A word without its inflection: "normalization", "normalizes" and "normalize" are "normal";
    "shuffling" and "shuffle" are "shuffl". Never shorter than 3 letters."""
    w = word.lower()
    for suffix in _SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            break
    return w[:-1] if w.endswith("e") and len(w) > 3 else w


def base_word(word: str) -> str:
    """A word as names and sentences are compared: abbreviation spelled out, inflection taken off."""
    return stem(ABBREVIATIONS.get(word, word))


def word_found(word: str, words: set[str]) -> bool:
    """Whether the sentence has the name's word itself: the word, an inflection of it ("convolutions"),
    or an abbreviation papers write for it ("conv"). Not a longer word that begins with it: "depth" is
    not "depthwise", "channel" not "channelwise" (the 13-paper tree cited sentences about network depth
    for depthwise convolution)."""
    if word in words:
        return True
    target = base_word(word)
    return any(base_word(w) == target for w in words)


def coverage(name: str, sentence: str) -> tuple[float, tuple[str, ...]]:
    """Share of the name's content words in the sentence, and the ones missing."""
    key = sorted(name_key(sizes_joined(name)))  # "1 × 1 convs" as the sentence's words are read
    if not key:
        return 0.0, ()
    words = sentence_words(sentence)
    missing = tuple(k for k in key if not word_found(k, words))
    return 1 - len(missing) / len(key), missing


def check_support(name: str, sentence: str, similarity: float,
                  coverage_at: float = COVERAGE_AT, similar_at: float = SIMILAR_AT) -> Support:  # fmt: skip
    cov, missing = coverage(name, sentence)
    ok = cov == 1.0 or (cov >= coverage_at and similarity >= similar_at)
    return Support(ok, round(cov, 3), round(similarity, 3), missing)
