"""An idea found in one paper, looked up by name in every other paper of the tree.

A small model names about one idea per category and paper, so a tree built from its answers knows
"batch normalization" from the one paper where the model named it, not from the others that use it:
the tree's frequencies (FairNAD's Figure 2) and its recall per paper say less than the papers do.
Once an idea is in the tree with its own evidence, every other paper that states its name (or an
alias) in at least `min_sentences` of its own sentences gets a source: the first such sentence, the
span being the name as it stands there (alignment "name").

What counts, chosen by reading a sample of the lookups in the 13 papers:
- the name verbatim, case, plurals and hyphens aside ("SE block" in "SE blocks", not in "SE-Net";
  "squeeze operation" not in "SqueezeNet"): content words alone linked "layer normalization" to a
  sentence about batch normalization;
- a sentence with no citation in it (no "[12]", "et al." or year): one that cites is about other
  work ("ShuffleNet utilizes group convolution ...");
- a name of two or more words, or one written as a term (a capital after its first letter or a digit:
  ReLU, GELU, ReLU6, LayerNorm): "scale", "depth" or "attention" in a sentence says nothing.
No model is asked: the tree learns where its ideas are used. Ideas flagged as named after a model or
a paper are not looked up (they would stop being seen in one paper only).

The template's own examples are looked up the same way (`examples_found`): an example that a paper
states in its own sentences is an idea of that paper, grounded by construction and in the category
its author gave it, whether or not the model named it. The model's extraction remains the way to
ideas the template does not list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from fairnad.knowledge.evidence import Sentence
from fairnad.knowledge.names import name_key
from fairnad.knowledge.template import Template
from fairnad.knowledge.tree import example_attributes

MIN_SENTENCES = 2  # a paper that states a name once may only mention it; in two of its own sentences, it uses it
CITES = re.compile(r"\[\s*\d|\bet\s+al\b|\b(?:19|20)\d\d\b")


@lru_cache(maxsize=4096)
def name_pattern(name: str) -> re.Pattern | None:
    """The name as a phrase: its words in order, plurals and hyphens aside; None for a name that a
    sentence can hold without meaning the idea (one plain word)."""
    words = [w for w in re.split(r"[\s\-]+", name.strip()) if w]
    if not words:
        return None
    if len(words) == 1 and not re.search(r"[A-Z0-9]", words[0][1:]):
        return None
    parts = [re.escape(re.sub(r"(?<=[a-z]{3})(?:es|s)$", "", w)) + r"(?:e?s)?" for w in words]
    return re.compile(r"(?<![A-Za-z0-9])" + r"[\s\-]*".join(parts) + r"(?![A-Za-z0-9])", re.IGNORECASE)


class PaperIndex:
    """One paper's body sentences that cite nothing (its own), for looking names up."""

    def __init__(self, name: str, title: str | None, sentences: list[Sentence]) -> None:
        self.name, self.title = name, title
        self.own = [s for s in sentences if not CITES.search(s.text)]

    def stating(self, names: Iterable[str]) -> list[tuple[Sentence, re.Match]]:
        """The paper's own sentences, in reading order, that state one of `names`."""
        pats = [p for p in map(name_pattern, names) if p is not None]
        out = []
        for s in self.own:
            m = next((m for p in pats if (m := p.search(s.text))), None)
            if m:
                out.append((s, m))
        return out


def _source(paper: PaperIndex, s: Sentence, m: re.Match) -> dict:
    return {"paper": paper.name, "title": paper.title, "page": s.page, "quote": m.group(0), "offset": s.start + m.start(),
            "length": m.end() - m.start(), "evidence": s.text, "evidence_offset": s.start, "alignment": "name"}  # fmt: skip


def link_by_name(attributes: list[dict], papers: list[PaperIndex], min_sentences: int = MIN_SENTENCES) -> dict:
    """Add a name-found source to each attribute for each paper that states it (in place); returns
    {"papers_read", "sources_added", "attributes_linked"}."""
    added = linked = 0
    for a in attributes if min_sentences > 0 else []:
        if a.get("over_specific"):
            continue
        names = [a["name"], *a.get("aliases", [])]
        have = {s["paper"] for s in a["sources"]}
        new = []
        for paper in papers:
            if paper.name not in have:
                hits = paper.stating(names)
                if len(hits) >= min_sentences:
                    new.append(_source(paper, *hits[0]))
        if new:
            a["sources"] = [*a["sources"], *new]
            a["frequency"] = len({s["paper"] for s in a["sources"]})
            a["mentions"] = a.get("mentions", 0) + len(new)
            added, linked = added + len(new), linked + 1
    return {"papers_read": len(papers), "sources_added": added, "attributes_linked": linked}


def examples_found(template: Template, attributes: list[dict], papers: list[PaperIndex],
                   min_sentences: int = MIN_SENTENCES) -> list[dict]:  # fmt: skip
    """The template's examples that some paper states (as `link_by_name` counts it) and that no
    attribute already names: new attributes, each with a source per paper (`from_template` set) and
    an id none of `attributes` has."""
    named = {name_key(n) for a in attributes for n in [a["name"], *a.get("aliases", [])]}
    fresh = [a for a in example_attributes(template) if name_key(a["name"]) not in named]
    link_by_name(fresh, papers, min_sentences)
    found, ids = [], {a["id"] for a in attributes}
    for a in fresh:
        if a["sources"]:
            while a["id"] in ids:
                a["id"] += "-x"
            ids.add(a["id"])
            found.append({**a, "from_template": True})
    return found
