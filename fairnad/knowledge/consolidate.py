"""Consolidation: merge near-duplicate attributes across papers, one category per attribute, flag
over-specific ones (modules of a single model), and list the categories left empty.

Two names are one idea when their content words are the same ("SE block", "SE module"), or when their
sentence embeddings are close (`merge_at`) and neither name is the other plus a qualifier: "depthwise
convolution" and "depthwise separable convolution" are close (cosine 0.89) but different ideas. The
rule and its threshold are chosen on a labelled set of pairs (knowledge/labels/merge_pairs.yaml,
benchmarks/knowledge_thresholds.py). Pairs in the uncertain band are confirmed by the LLM when it is
capable enough to be asked.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import networkx as nx
import numpy as np

from fairnad.knowledge.embed import Embedder
from fairnad.knowledge.names import name_key, slug
from fairnad.knowledge.support import base_word, sizes_joined
from fairnad.knowledge.template import Template

# a model's name: camel case, "-Net"/"-Former", a version ("V2"), a size ("ResNet-50") or a variant ("Swin-T", "ViT-B")
MODEL_NAME = re.compile(r"[A-Z][a-z]+[A-Z]\w*|\b[A-Z]{3,}[a-z]{2,}\w*|\w*(?:Net|net|Former|former)\b|\b[vV]\d\b|\w+-\d+\b"
                        r"|\b[A-Z]\w*-(?:[TSBLH]|Tiny|Small|Base|Large|Huge)\b")
# camel-case names that are general operations, not models: ReLU, GeLU, PReLU, LayerNorm, MaxPool, DropPath,
# and layers as frameworks name them ("SeparableConvolution", "Conv2D", "DepthwiseConv2D"; a plural stays a
# name of models, on purpose: "ResNets", "ConvNets")
GENERAL_OP = re.compile(r"(?i)^(?:p|leaky|hard|re|ge|si|se)?(?:re|ge|si|e|se)?lu\d*$|norm$|pool(?:ing)?$|"
                        r"^drop(?:path|block|connect|out)$|^softmax$|^conv\d*d?$"
                        r"|(?-i:[a-z])(?-i:Convolution|Conv\dD|Conv|Linear|Dense|Dropout|Attention|Embedding)$")  # fmt: skip
MERGE_AT = 0.85  # chosen on knowledge/labels/merge_pairs.yaml (benchmarks/knowledge_thresholds.py)
# what a tree keeps of each mention: where the span is, its text, the sentence around it, how it was found
SOURCE_KEYS = ("paper", "title", "page", "quote", "offset", "length", "evidence", "evidence_offset", "alignment", "how")


def idea_words(name: str) -> frozenset[str]:
    """A name's content words as the support check reads a sentence's: sizes joined ("1 × 1" is "1x1"),
    abbreviations and inflections undone ("1 × 1 convs", "1x1 convolutional layer" and "1 × 1 convolution"
    are one idea)."""
    return frozenset(base_word(w) for w in name_key(sizes_joined(name)))


def same_idea(a: str, b: str, cosine: float, merge_at: float = MERGE_AT) -> bool:
    """Are two attribute names one idea? Same content words, or close embeddings without one name
    being the other plus a qualifier (a qualifier makes a different, narrower idea)."""
    ka, kb = idea_words(a), idea_words(b)
    if ka == kb:
        return True
    return cosine >= merge_at and not (ka < kb or kb < ka)


def _components(n: int, pairs) -> list[int]:
    """A component id per item, from the pairs that join them (networkx connected components)."""
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(pairs)
    comp = [0] * n
    for k, nodes in enumerate(nx.connected_components(g)):
        for i in nodes:
            comp[i] = k
    return comp


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


def example_phrases(examples: list[str]) -> list[tuple[str, str]]:
    """(phrase, example) for a template's examples and the phrases inside each ("convolution variants
    (kernel size, dilated, grouped)" also gives "dilated", "grouped"): a name is closer to one phrase
    than to a list of them."""
    out = []
    for x in examples:
        out.append((x, x))
        out += [(p.strip(), x) for p in re.split(r"[(),/]", x) if len(p.strip()) > 2 and p.strip() != x]
    return out


def model_names(text: str) -> list[str]:
    """The models `text` names ("ResNet", "ShuffleNet-V2", "Swin-T"), not general operations written in
    camel case ("LayerNorm", "MaxPool")."""
    return [m for m in MODEL_NAME.findall(text) if not GENERAL_OP.search(m)]


def over_specific(name: str, titles: list[str]) -> str | None:
    """Why an attribute looks like one model's module rather than a general idea, or None."""
    if models := model_names(name):
        return f"named after a model ({models[0]!r})"
    words = {w.lower() for t in titles for w in re.findall(r"[A-Za-z][A-Za-z0-9-]{3,}", t)}
    generic = {"network", "networks", "neural", "deep", "learning", "convolutional", "image", "recognition", "model",
               "models", "efficient", "design", "transformer", "transformers", "residual", "convolutions", "scaling",
               "architecture", "vision", "mobile", "with", "for", "the", "and", "using"}  # fmt: skip
    own = [w for w in re.findall(r"[A-Za-z][A-Za-z0-9-]{3,}", name) if w.lower() in words - generic]
    if own and len(own) == len(name.split()):
        return f"named after its paper ({', '.join(own)})"
    return None


def unique_sources(sources) -> list[dict[str, Any]]:
    """One source per paper, the first in the mentions' order (a paper's candidates by kind: terms, run-ins,
    headings, proposals, described), not necessarily the sentence that best says the network uses it: the
    1.5B model names one idea with one sentence under several categories, and the merged idea showed that
    sentence once per category (69 of the 13-paper tree's 196 sources were exact repeats; one EfficientNet
    sentence 5 times on one card), or one sentence with two quotes in it."""
    out, seen = [], set()
    for src in sources:
        if src.get("paper") not in seen:
            seen.add(src.get("paper"))
            out.append(src)
    return out


def is_model_name(name: str, titles: list[str] = ()) -> bool:
    """A name that is only a model's name ("ResNeXt", "MobileNetV2", "ShuffleNet V2", "ResNet-50", or what
    a paper's title names before its colon: "Xception", "Swin Transformer"): never an attribute (the
    13-paper tree filed "ResNeXt" under activation). A model's module ("MobileNetV2 block") is an idea
    named after its model: kept, and flagged over-specific."""
    if name.strip().lower() in {t.split(":")[0].strip().lower() for t in titles if ":" in t}:
        return True
    # "larger ConvNeXt-XL": a size of the model is no idea
    rest = re.sub(r"(?i)\b(?:larger|smaller|bigger|deeper|wider|XL|XXL)\b", " ", MODEL_NAME.sub(" ", name))
    return bool(model_names(name)) and not re.search(r"[A-Za-z]{2,}", re.sub(r"(?i)\b(?:v\d+|\d+)\b", " ", rest))


# words after which a name only qualifies its head noun: "layer normalization before each attention block";
# not "with stride", which says what the element does ("2 x 2 conv layers with stride" downsamples)
POST_MODIFIER = re.compile(r" (?:before|after|in|of|for|with(?! stride)|without|between|at|on|into|when|only|to"
                           r"|from|by|per|across|instead|than) ")


def _plain(text: str) -> str:
    """Lower-case words and digits separated by single spaces, as names and terms are compared."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def category_by_terms(name: str, template: Template) -> str | None:
    """The category whose term ends last in the name's head (the longer term on a tie), or None.

    English puts a compound's head noun last ("grouped convolution" is a convolution; "SE block" is SE, as
    "block" is no term) and its qualifiers after a preposition ("dropout after each convolution" is
    dropout). Terms match whole words, plural or not. Filing by the closest template example alone put
    26% of the 13-paper tree's real ideas in a catch-all ("FC layers" under normalization, "MSA module"
    under activation)."""
    text = _plain(re.sub(r"\([^)]*\)?", " ", name))
    head = POST_MODIFIER.split(text, maxsplit=1)[0]
    best: tuple[tuple[int, int], str] | None = None
    for lv, c in template.categories():
        for term in c.terms:
            words = _plain(term)
            for m in re.finditer(rf"(?<![a-z0-9]){re.escape(words)}(?:s|es)?(?![a-z0-9])", head):
                rank = (m.end(), m.end() - m.start())
                if best is None or rank > best[0]:
                    best = (rank, f"{lv.id}/{c.id}")
    return best[1] if best else None


# a unit whose parts are named as layers of the network ("the squeeze phase and two small FC layers in the excitation
# phase, followed by an inexpensive channel-wise scaling operation"), and the categories those names file under
UNITS, PARTS_NAMED_AS = ("block/recalibration",), ("network/head", "network/scaling")


def _says_terms(text: str, terms: list[str]) -> bool:
    text = _plain(text)
    return any(re.search(rf"(?<![a-z0-9]){re.escape(_plain(t))}s?(?![a-z0-9])", text) for t in terms)


def unit_of_part(category: str, evidence: list[str], template: Template) -> str:
    """The unit (UNITS) an idea is a part of where its name files it as a layer of the network (PARTS_NAMED_AS:
    "FC layers" -> head, "channel-wise scaling operation" -> scaling) and every sentence that states it names
    that unit's terms (SENet's "two small FC layers in the excitation phase" are the SE block's, not a
    classifier); else `category`."""
    if category not in PARTS_NAMED_AS or not evidence:
        return category
    terms = {f"{lv.id}/{c.id}": c.terms for lv, c in template.categories()}
    found = [u for u in UNITS if terms.get(u) and all(_says_terms(e, terms[u]) for e in evidence)]
    return found[0] if len(found) == 1 else category


def attribute_order(a: dict[str, Any]) -> tuple:
    """How a tree lists its attributes: by category, the most frequent first, then by name."""
    return a["category"], -a["frequency"], a["name"]


def consolidate(
    mentions: list[dict[str, Any]],
    template: Template,
    embedder: Embedder,
    *,
    llm=None,
    merge_at: float = MERGE_AT,
    ask_from: float = 0.72,
) -> dict[str, Any]:
    """Verified mentions (each with paper, title, category, name, ...) -> attributes and a report."""
    names = sorted({m["name"].lower() for m in mentions if m.get("name")})
    if not names:
        return {"attributes": [], "empty_categories": [f"{lv.id}/{c.id}" for lv, c in template.categories()],
                "merged": 0, "confirmations": 0}  # fmt: skip
    written = {m["name"].lower(): m["name"] for m in mentions if m.get("name")}  # case tells "LayerNorm"'s words
    vecs = embedder.encode(names)
    sim = vecs @ vecs.T
    pairs, confirmations = [], 0
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if same_idea(written[names[i]], written[names[j]], float(sim[i, j]), merge_at):
                pairs.append((i, j))
            elif llm is not None and sim[i, j] >= ask_from:
                confirmations += 1
                if _confirm(llm, names[i], names[j]):
                    pairs.append((i, j))
    comp = _components(len(names), pairs)
    index = {n: i for i, n in enumerate(names)}
    clusters: dict[int, list[dict]] = {}
    for m in mentions:
        if m.get("name"):
            clusters.setdefault(comp[index[m["name"].lower()]], []).append(m)
    cats = template.categories()
    cat_paths = [f"{lv.id}/{c.id}" for lv, c in cats]
    examples = [(f"{lv.id}/{c.id}", x, parent) for lv, c in cats
                for x, parent in [(c.name, c.name), *example_phrases(c.examples)]]  # fmt: skip
    example_cats, example_vecs = [p for p, _, _ in examples], embedder.encode([x.lower() for _, x, _ in examples])
    attributes, used_ids = [], set()
    all_titles = sorted({m.get("title") or "" for m in mentions})
    for group in clusters.values():
        name = _majority([m["name"] for m in group])
        if is_model_name(name, all_titles):  # another paper's model, named by this one
            continue
        by_cat = Counter(m["category"] for m in group)
        # the category the name's own terms say ("SE-POST block" -> recalibration, "FC layers" -> head), else
        # that of the template example closest to the name ("self-attention" -> "self-attention (multi-head,
        # windowed, ...)"); the 1.5B's own choice was near chance ("dropout" under normalization)
        category = category_by_terms(name, template) or example_cats[int(np.argmax(example_vecs @ vecs[index[name.lower()]]))]
        category = unit_of_part(category, [m.get("evidence") or "" for m in group], template)
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
            "recategorized": len(by_cat) > 1 or category not in by_cat,
            "subcategory": _subcategory(category, vecs[index[name.lower()]], example_cats, examples, example_vecs,
                                        {c.name for _, c in cats}),
            "description": next((m["description"] for m in group if m["name"] == name and m.get("description")), ""),
            "effect": effect, "aliases": sorted({m["name"] for m in group} - {name}),
            "frequency": len(papers), "mentions": len(group),
            "over_specific": over_specific(name, titles) if len(papers) == 1 else None,
            # a template example the papers state, carried over from an earlier tree (knowledge add)
            **({"from_template": True} if all(m.get("from_template") for m in group) else {}),
            "sources": unique_sources({k: m[k] for k in SOURCE_KEYS if k in m} for m in group),
        })  # fmt: skip
    filled = {a["category"] for a in attributes}
    return {
        "attributes": sorted(attributes, key=attribute_order),
        "empty_categories": [p for p in cat_paths if p not in filled],
        "merged": len(mentions) - len(attributes), "confirmations": confirmations,
    }


SUBCATEGORY_AT = 0.5  # how close a name must be to a template example to be filed under it


def _subcategory(category: str, vec, example_cats: list[str], examples: list[tuple[str, str, str]], example_vecs,
                 category_names: set[str]) -> str:
    """The template's own group for an idea: the example of its category closest to its name ("convolution
    variants", "self-attention"), or "other". The model's sub-categories meant nothing ("convolution" under
    recalibration, "template examples", a truncated "non-linear functions between")."""
    best, at = "other", SUBCATEGORY_AT
    for cat, (_, _, example), v in zip(example_cats, examples, example_vecs):
        if cat == category and example not in category_names and float(v @ vec) >= at:
            best, at = re.split(r"\s*\(", example, maxsplit=1)[0].strip(), float(v @ vec)
    return best
