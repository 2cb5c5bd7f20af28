"""An idea found in one paper, looked up by name in every other paper of the tree.

A small model names about one idea per category and paper, so a tree built from its answers knows
"batch normalization" from the one paper where the model named it, not from the others that use it:
the tree's frequencies (FairNAD's Figure 2) and its recall per paper say less than the papers do.
Once an idea is in the tree with its own evidence, every other paper that states its name (or an
alias) in `min_sentences` of its own sentences, or in one that says how its network uses it, gets a
source: that sentence (else the first), the span being the name as it stands there (alignment "name").

What counts, chosen by reading a sample of the lookups in the 13 papers:
- the name verbatim, case, plurals, hyphens, how a size is written and normalization or pooling
  written short aside ("SE block" in "SE blocks", not in "SE-Net"; "1x1 convolution" in "1 × 1
  convolutions"; "layer normalization" in "LayerNorm"; "squeeze operation" not in "SqueezeNet"; a
  "fully connected classifier" is written "fully-connected layer"):
  content words alone linked "layer normalization" to a sentence about batch normalization;
- a sentence of the paper's own (voice.py): one that cites nothing (no "[12]", "et al." or year: a citing
  sentence is about other work, "ShuffleNet utilizes group convolution ..."), one in which the authors say
  what they do although it credits the idea ("We adopt batch normalization (BN) [16] right after each
  convolution"), says it adopts what it cites ("..., following [14]"), or says how the network is built
  and cites once to credit it ("Layernorm (LN) is applied before every block (Wang et al., 2019)"); never
  one that says the idea is not used ("Stochastic depth is not used in our smaller models"; a "not" in
  parentheses is an aside), nor, in the introduction, related work or discussion, one in which the
  authors do not speak ("... are followed by one or more fully-connected layers" in GoogLeNet's
  introduction is LeNet's design);
- two such sentences, or one that says how this network uses it (in the first person, or "is
  applied / performed / used", "ends with", "followed by", "consists of", "each", "every"...; a row of an
  architecture table, "3 × 3 max pool, stride 2"), not one about a figure, nor one naming another model
  while the authors do not speak ("The stem cell in standard ResNet contains ..." in the ConvNeXt
  paper): most papers state a classifier's global average pooling, their ReLU6 or their GELU once ("The
  network ends with a global average pooling and a fully-connected layer"); the source is the sentence
  that says how the network is built, when there is one, and never a figure's caption, a sentence about a
  figure or one about another model or earlier work in which the authors do not speak
  (voice.states_own_use: "Consider a Transformer block with ..." in the ConvNeXt paper), nor a study
  ("Table 4 shows comparisons of different position embedding approaches": voice.STUDY), and in a
  section of experiments or analysis only one that says how the network uses it;
- not through an alias that names a family of models ("Residual Network" finds ResNet, not the block),
  nor a pooling other than global in a sentence about the classifier (the head's pooling is no
  downsampling step);
- a name of two or more words, one written as a term (a capital after its first letter or a digit:
  ReLU, GELU, ReLU6, LayerNorm) or one that is a design on its own (dropout, swish, sigmoid:
  candidates.NAMED): "scale", "depth" or "attention" in a sentence says nothing.
No model is asked: the tree learns where its ideas are used. Ideas flagged as named after a model or
a paper are not looked up (they would stop being seen in one paper only).

The template's own examples are looked up the same way (`examples_found`): an example that a paper
states in its own sentences is an idea of that paper, grounded by construction and in the category
its author gave it, whether or not the model named it; one written as alternatives ("max or average
pooling") is looked up as either. The model's extraction remains the way to
ideas the template does not list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache

from fairnad.knowledge.candidates import NAMED
from fairnad.knowledge.consolidate import idea_words
from fairnad.knowledge.evidence import Sentence
from fairnad.knowledge.names import MODEL_FAMILY
from fairnad.knowledge.support import sizes_joined
from fairnad.knowledge.template import Template
from fairnad.knowledge.tree import example_attributes
from fairnad.knowledge.voice import (BUILT, TABLE_ROW, based_on, in_aside, is_own, located_in,
                                     own_model_names, says_it_uses, speaks_there, states_design_act, states_own_use)

MIN_SENTENCES = 2  # a paper that states a name once may only mention it; in two of its own sentences, it uses it
# a name that ends by naming models ("Residual Network", "Inception architecture") finds the model in a
# sentence, not the idea: not looked up
FAMILY = re.compile(rf"(?i){MODEL_FAMILY}s?\s*$")
# a pooling said beside the classifier is the head's ("average pooling before the classifier"), not a
# downsampling step between stages: a name of a pooling without "global" is not found there
HEAD = re.compile(r"(?i)\b(?:classifiers?|fully[- ]connected|softmax|logistic|final)\b")


# words a paper may write short, joined to the word before ("LayerNorm", "Layernorm", "BatchNorm", "max pool",
# "MaxPool"): the separator between two words of a name may be empty already
SHORT_FORMS = {"normalization": r"norm(?:ali[sz]ation)?", "normalisation": r"norm(?:ali[sz]ation)?",
               "pooling": r"pool(?:ing)?", "classifier": r"(?:classifier|layer)"}  # fmt: skip
# ("fully connected classifier" is written "fully-connected layer": a classifier is its last layer)


def _word_pattern(word: str) -> str:
    """One word of a name: a size written either way, a short form, a plural."""
    if m := re.fullmatch(r"(\d+)x(\d+)", word):
        return rf"{m[1]}\s*[x×]\s*{m[2]}"
    if (short := SHORT_FORMS.get(word.lower().rstrip("s"))) is not None:
        return rf"(?:{short})s?"
    return re.escape(re.sub(r"(?<=[a-z]{3})(?:es|s)$", "", word)) + r"(?:e?s)?"


@lru_cache(maxsize=4096)
def name_pattern(name: str, single_word: bool = False) -> re.Pattern | None:
    """The name as a phrase: its words in order, plurals, hyphens and the writing of sizes aside; None
    for a name that a sentence can hold without meaning the idea (one plain word that is no design),
    unless `single_word`: in its own paper, or said twice, "cardinality" is the paper's term."""
    words = [w for w in re.split(r"[\s\-]+", sizes_joined(name.strip())) if w]
    if not words:
        return None
    if not single_word and len(words) == 1 and not re.search(r"[A-Z0-9]", words[0][1:]) and words[0].lower() not in NAMED:
        return None
    parts = [_word_pattern(w) for w in words]
    return re.compile(r"(?<![A-Za-z0-9])(?<!non-)(?<!non )" + r"[\s\-]*".join(parts) + r"(?![A-Za-z0-9])",
                      re.IGNORECASE)  # "linear layers" is not in "non-linear layers"


def name_patterns(names: Iterable[str], but: Iterable[str] = (), single_word: bool = False) -> list[re.Pattern]:
    """name_pattern of each of `names` that is not one of `but` (any case): the names a sentence may state
    instead of the one looked up (`but`), or all that a lookup tries."""
    skip = {n.lower() for n in but}
    return [p for n in names if n.lower() not in skip and (p := name_pattern(n, single_word)) is not None]


class PaperIndex:
    """One paper's own body sentences (citing nothing, or saying in the first person what the authors do;
    none that says something is not used), for looking names up."""

    def __init__(self, name: str, title: str | None, sentences: list[Sentence],
                 background: Callable[[int, int], bool] | None = None,
                 captions: Callable[[int, int], bool] | None = None,
                 experiments: Callable[[int, int], bool] | None = None) -> None:  # fmt: skip
        """`background(page, offset)`: whether a place lies in a section about other work (introduction,
        related work, discussion: candidates.background_sections); there only the authors' first-person
        sentences are their own ("... are followed by one or more fully-connected layers" in GoogLeNet's
        introduction is LeNet's design). `captions(page, offset)`: whether a place lies in a figure's caption,
        which tells what a drawing shows, or in a section on another task (candidates.no_source_places): no source.
        `experiments(page, offset)`: whether it lies in a section of experiments
        (candidates.experiment_sections)."""
        self.name, self.title = name, title
        self._captions = captions or (lambda page, offset: False)
        self._experiments = experiments or (lambda page, offset: False)
        self._background = background or (lambda page, offset: False)
        self._at = {(s.page, s.start): s for s in sentences}
        sentences = [s for s in sentences if speaks_there(s, self._background(s.page, s.start))]
        self.own_names = own_model_names(name, title)
        self.own = [s for s in sentences if is_own(s, self.own_names)]

    def may_stand(self, s: Sentence, at: int | None = None) -> bool:
        """Whether a sentence may stand as the source (voice.states_own_use) of a name at `at` in it."""
        return states_own_use(s, self.own_names, self._captions(s.page, s.start),
                              in_experiments=self._experiments(s.page, s.start), at=at)

    def source_stands(self, src: dict) -> bool:
        """Whether a source (page, evidence_offset, offset, length) still stands by the rules of a lookup's
        source (`names_it`). A source that quotes its whole evidence (a proposal's or a heading's sentence,
        a run-in head and the sentence after it) stands only where it says the authors build with it or how
        the network is built (voice.states_design_act: not "Deeper Bottleneck Architectures. Next we
        describe our deeper nets"), or names the idea again to say what it is ("Depthwise separable
        convolution. A depthwise separable convolution factorizes ..."). A candidate's evidence was ranked
        by these rules, not required to pass them: the model was shown the best sentence there was ("Here
        we explore the inverted bottleneck design" for a ConvNeXt step). Evidence longer than the paper's
        sentence at its place (a run-in head and the sentence after it) is judged as it stands."""
        at_, evidence = (src.get("page"), src.get("evidence_offset")), src.get("evidence", "")
        s = self._at.get(at_)
        if s is None or len(s.text) < len(evidence):
            s = Sentence(0, at_[0], at_[1], at_[1] + len(evidence), evidence)
        at, length = src.get("offset", s.start) - s.start, src.get("length", 0)
        if not self.names_it(s, at, at + length):
            return False
        whole = at <= 0 and length >= len(evidence)
        return not whole or states_design_act(evidence) or _said_again(src.get("name", ""), evidence)

    def names_it(self, s: Sentence, start: int, end: int) -> bool:
        """Whether `s` stands as the source of the name at s.text[start:end]: the authors speak there
        (`speaks_there`), the sentence may stand (`may_stand`), and the name is not said in passing in an
        aside (voice.in_aside), as what a design starts from ("the recent swish nonlinearity",
        voice.based_on) or as where another idea goes ("in each residual block", voice.located_in). The
        lookups and `source_stands` both judge by it."""
        return (speaks_there(s, self._background(s.page, s.start)) and self.may_stand(s, start)
                and not in_aside(s.text, start, end) and not based_on(s.text, start)
                and not located_in(s.text, start))  # fmt: skip

    def restated(self, src: dict, others: list[re.Pattern] = ()) -> dict | None:
        """Where a source does not stand, the paper's first own sentence elsewhere that states the same name
        and says the authors build with it or how the network is built (voice.states_design_act, or an
        architecture table's row), as the source instead: "we argue that the dimension of cardinality
        controls ..." gives way to "... a new dimension, which we call "cardinality"". The sentence must
        stand for the name as a lookup's does (`names_it`, voice.says_it_uses), and the name must not be
        part of a longer name of `others` there ("swish" in "hard swish"). The name is the paper's term,
        so one plain word is looked up too (name_pattern's `single_word`). None when no sentence does."""
        at = (src.get("page"), src.get("evidence_offset"))
        hits = [h for h in self.stating([src.get("name", "")], single_word=True)
                if (h[0].page, h[0].start) != at and not _part_of_another(*h, others)
                and (states_design_act(h[0].text) or TABLE_ROW.match(h[0].text))
                and self.names_it(h[0], *h[1].span()) and says_it_uses(h[0], self.own_names)]  # fmt: skip
        if not hits:
            return None
        moved = {k: v for k, v in src.items() if k != "how"}  # how the model's candidate was found: not this sentence
        return {**moved, **_source(self, *hits[0])}

    def stating(self, names: Iterable[str], single_word: bool = False) -> list[tuple[Sentence, re.Match]]:
        """The paper's own sentences, in reading order, that state one of `names` (name_pattern)."""
        pats = name_patterns(names, single_word=single_word)
        out = []
        for s in self.own:
            m = next((m for p in pats if (m := p.search(s.text))), None)
            if m:
                out.append((s, m))
        return out


def _said_again(name: str, text: str) -> bool:
    """Whether `text` states the name twice: a run-in head (or a heading) and the sentence after it about
    the same thing (name_pattern: plurals and hyphens aside). A name of one plain word counts too."""
    pattern = name_pattern(name, single_word=True)
    return pattern is not None and len(pattern.findall(text)) >= 2


def _source(paper: PaperIndex, s: Sentence, m: re.Match) -> dict:
    return {"paper": paper.name, "title": paper.title, "page": s.page, "quote": m.group(0), "offset": s.start + m.start(),
            "length": m.end() - m.start(), "evidence": s.text, "evidence_offset": s.start, "alignment": "name"}  # fmt: skip


def _names(a: dict) -> list[str]:
    return [a["name"], *a.get("aliases", [])]


def _part_of_another(s: Sentence, m: re.Match, others: list[re.Pattern]) -> bool:
    """Whether the name found at `m` is part of another idea's longer name there: one that holds it or
    begins before it and runs into it ("bottleneck block" in "inverted bottleneck block", "average pooling" in "global average
    pooling"): the longer name is what the sentence states."""
    for p in others:
        for r in p.finditer(s.text):
            holds = r.start() <= m.start() and m.end() <= r.end() and r.end() - r.start() > m.end() - m.start()
            if holds or r.start() < m.start() < r.end():
                return True
    return False


def _head_pooling(s: Sentence, m: re.Match) -> bool:
    """A pooling other than global, named in a sentence about the classifier (HEAD)."""
    said = m.group(0).lower()
    return "pool" in said and "global" not in said and bool(HEAD.search(s.text))


def link_by_name(attributes: list[dict], papers: list[PaperIndex], min_sentences: int = MIN_SENTENCES,
                 known: list[dict] = ()) -> dict:  # fmt: skip
    """Add a name-found source to each attribute for each paper that states it (in place); returns
    {"papers_read", "sources_added", "attributes_linked"}. `known`: further ideas whose longer names a
    sentence may state instead (the tree's, when the template's examples are looked up)."""
    added = linked = 0
    everyone = [*attributes, *known]
    for a in attributes if min_sentences > 0 else []:
        if a.get("over_specific"):
            continue
        names = [n for n in _names(a) if not FAMILY.search(n)]
        others = name_patterns([n for b in everyone if b is not a for n in _names(b)], but=_names(a))
        have = {s["paper"] for s in a["sources"]}
        new = []
        for paper in papers:
            if paper.name not in have:
                hits = [h for h in paper.stating(names) if not _part_of_another(*h, others) and not _head_pooling(*h)]
                good = [h for h in hits if paper.names_it(h[0], *h[1].span())]
                uses = [h for h in good if says_it_uses(h[0], paper.own_names)]
                if (len(hits) >= min_sentences and good) or uses:
                    built = [h for h in uses if BUILT.search(h[0].text) or TABLE_ROW.match(h[0].text)]
                    new.append(_source(paper, *(built or uses or good)[0]))
        if new:
            a["sources"] = [*a["sources"], *new]
            a["frequency"] = len({s["paper"] for s in a["sources"]})
            a["mentions"] = a.get("mentions", 0) + len(new)
            added, linked = added + len(new), linked + 1
    return {"papers_read": len(papers), "sources_added": added, "attributes_linked": linked}


def alternatives(name: str) -> list[str]:
    """The names an example written as alternatives stands for, as papers write them: "max or average
    pooling" -> "max pooling", "average pooling"; "Swish / SiLU" -> "Swish", "SiLU"."""
    if "/" in name:
        return [p.strip() for p in name.split("/") if p.strip()]
    if m := re.fullmatch(r"(\S+) or (\S+) (.+)", name.strip()):
        return [f"{m[1]} {m[3]}", f"{m[2]} {m[3]}"]
    return []


def examples_found(template: Template, attributes: list[dict], papers: list[PaperIndex],
                   min_sentences: int = MIN_SENTENCES) -> list[dict]:  # fmt: skip
    """The template's examples that some paper states (as `link_by_name` counts it) and that no
    attribute already names: new attributes, each with a source per paper (`from_template` set) and
    an id none of `attributes` has."""
    named = {idea_words(n) for a in attributes for n in _names(a)}  # as consolidation merges names
    fresh = []
    for a in example_attributes(template):
        a["aliases"] = [*a["aliases"], *alternatives(a["name"])]
        if not any(idea_words(n) in named for n in _names(a)):
            fresh.append(a)
    link_by_name(fresh, papers, min_sentences, known=attributes)
    found, ids = [], {a["id"] for a in attributes}
    for a in fresh:
        if a["sources"]:
            while a["id"] in ids:
                a["id"] += "-x"
            ids.add(a["id"])
            found.append({**a, "from_template": True})
    return found
