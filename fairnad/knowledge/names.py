"""What an attribute's name says: its content words (shared by two phrasings of one idea) and its slug."""

from __future__ import annotations

import re
from functools import lru_cache

# words that name the kind of thing, not the idea: "ReLU activation" is "ReLU", "SE block" is "SE module"
GENERIC_WORDS = {"a", "an", "the", "of", "for", "with", "and", "in", "to", "via", "based", "using", "use", "block",
                 "blocks", "layer", "layers", "module", "modules", "unit", "units", "operation", "operations",
                 "operator", "mechanism", "structure", "design", "connection", "connections", "function",
                 "activation", "method", "technique", "strategy", "approach", "network", "wise", "connectivity",
                 "regularization", "regularizer", "hyperparameter", "parameter"}  # fmt: skip

def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "attribute"


def _stem(word: str) -> str:
    w = word.lower().replace("isation", "ization").replace("normalization", "norm").replace("normalisation", "norm")
    return w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w


def _words(name: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", re.sub(r"([a-z])([A-Z][a-z])", r"\1 \2", name).lower())  # LayerNorm


@lru_cache(maxsize=8192)  # consolidation compares every pair of names
def name_key(name: str) -> frozenset[str]:
    """The content words of a name, stemmed: what two phrasings of one idea share."""
    words = _words(name)
    stems = [_stem(w) for w in words]
    # "layer" says nothing in "ReLU layer", but is the idea in "layer normalization"
    keep = [s for i, (w, s) in enumerate(zip(words, stems))
            if w not in GENERIC_WORDS or (w in ("layer", "layers") and stems[i + 1 : i + 2] == ["norm"])]  # fmt: skip
    return frozenset(keep) or frozenset(stems)


# words that only say which part of a network a name is about: a name made of them alone ("macro design",
# "feature fusion", "activation", "downsampling") names a category, not a design idea
VAGUE_WORDS = {"feature", "extraction", "fusion", "aggregation", "design", "macro", "micro", "architecture",
               "architectural", "model", "network", "convolutional", "neural", "deep", "level", "input", "encoding",
               "downsampling", "scaling", "norm", "activation", "head", "stage", "operator", "wise", "efficient",
               "conv", "convolution", "nonlinearity", "non", "linearity"}  # fmt: skip


def is_vague(name: str) -> bool:
    return name_key(name) <= VAGUE_WORDS


# words any part of a network could be described with: with VAGUE_WORDS and GENERIC_WORDS, they make names
# that point at no idea ("building blocks", "layer block", "activation functions", "Different stages")
# a plan, a change or a pointer in place of a design ("template", "modifications", "Scaling Dimensions",
# "convolutional neural network architecture based on this"), or where or how often ("intermediate stages",
# "repeated blocks", "some modifications")
GENERAL_WORDS = {"building", "transformation", "different", "various", "template", "pattern", "scheme", "paradigm",
                 "principle", "guideline", "recipe", "variant", "modification", "change", "dimension", "on", "this",
                 "that", "these", "those", "it", "its", "some", "new", "several", "intermediate",
                 "alternating", "repeated", "repeating"}  # fmt: skip
_NAMING_NO_IDEA = {_stem(w) for w in VAGUE_WORDS | GENERAL_WORDS | GENERIC_WORDS}  # (as _stem gives them)


def is_generic(name: str) -> bool:
    """A name of vague, general and generic words only: no idea in it; every vague name is one. Checked on
    the model's names (the candidates are picked with the narrower is_vague, which the recorded builds were
    made with). "layer normalization" is the one pair of such words that names an idea."""
    stems = {_stem(w) for w in _words(name)}
    return not {"layer", "norm"} <= name_key(name) and stems <= _NAMING_NO_IDEA


# what a paper measures, analyses, trains with or implements: not what a search changes in an architecture.
# A name with one of these is no design idea (the cold-built 13-paper tree held "ConvNet Accuracy",
# "interpretation of Inception modules", "stochastic depth rate", "torch's built-in grouped convolution",
# "better results than going deeper or wider", "Residual Networks"), nor a pointer ("counterpart residual", from
# "... turn the network into its counterpart residual version").
# Regularizers a template files as ideas (dropout, stochastic depth) stay; their rates are settings.
MODEL_FAMILY = r"\b(?:network|net|model|architecture)"  # a name that ends in its plural names models, not an idea
NOT_AN_IDEA = (
    ("what a paper measures", re.compile(r"(?i)\b(?:accurac(?:y|ies)|efficiency|performance|latency|speed|flops"
                                         r"|error rates?|complexity|runtime|throughput)\b")),
    ("an analysis", re.compile(r"(?i)\b(?:interpretations?|hypothes[ie]s|analys[ie]s|understanding|visuali[sz]ations?"
                               r"|continuum|intuitions?|observations?|insights?|motivations?)\b")),
    ("a training setting", re.compile(r"(?i)\b(?:learning rates?|weight decay|label smoothing|warm-?up|epochs?"
                                      r"|batch sizes?|momentum|optimi[sz]ers?|augmentations?|mixup|cutmix|randaugment"
                                      r"|gradient clipping|(?:depth|drop|dropout|drop[- ]path) rates?|large[- ]scale)\b")),
    ("a finding", re.compile(r"(?i)\b(?:results?|better|outperforms?|improvements?|comparisons?|ablations?"
                             r"|experiments?)\b")),
    ("a family of models", re.compile(rf"(?i){MODEL_FAMILY}s\s*$")),
    ("a pointer to what a sentence says", re.compile(r"(?i)\b(?:this|these|those|our|counterparts?)\b")),
    ("a statement", re.compile(r"(?i)^\s*[A-Z]?\d+\)|\b(?:are|were)\b")),  # "G4) Element-wise ops are ..."
    ("an implementation detail", re.compile(r"(?i)(?:\b(?:torch|pytorch|tensorflow|keras|caffe|cuda|gpus?|tpus?|tensors?"
                                            r"|library|implementation|implemented|batch computation|batched)\b|built-in)")),
)  # fmt: skip


def not_an_idea(name: str) -> str | None:
    """Why a name is no design idea (what it measures, analyses, trains with or implements), or None."""
    return next((why for why, pattern in NOT_AN_IDEA if pattern.search(name)), None)
