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
- `proposal`  sentences where the authors say what they do ("we propose / introduce / use ...");
- `term`      design terms the paper says at least twice: qualifiers before a design noun ("depthwise
              convolution", "growth rate", "SE blocks") or a name that is a design alone ("h-swish"),
              at their first own sentence (one that cites nothing). A paper's candidates depend on that
              paper alone (tf-idf against the corpus, tried first, ranked "feature-maps" and "l-th layer"
              high and left out hard-swish's kin; it also made a paper's candidates change with the build);
- `described` design terms said even once where the paper says how its own network is built ("consists
              of", "followed by", "is applied", "we use"), crediting a citation or not, outside the
              abstract, introduction, related work and discussion (voice.py): ViT credits each part of
              its encoder and names it once, and gave 6 candidates without them. Last, so a paper's
              earlier candidates (and the model's recorded answers for them) stay as they were.

The model then names, describes and files each candidate, or says it is no design idea (extract.py).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from fairnad.ingest.pdf import Document
from fairnad.knowledge.evidence import Sentence, Span
from fairnad.knowledge.names import is_vague, name_key
from fairnad.knowledge.consolidate import model_names
from fairnad.knowledge.voice import (BUILT, CITES, FAMILY_WORD, model_key, others_named, own_model_names, says_it_uses,
                                    states_own_use)

KINDS = ("term", "run-in", "heading", "proposal", "described")
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
              "svhn", "jft", "vtab", "ilsvrc2012", "inductive", "reuse", "compactness", "supervision",
              "self-supervision", "pre-trained", "pretrained"}  # fmt: skip
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


# words that qualify a design's noun without naming a design ("preceding layers", "our module", "l-th layer")
NOT_QUALIFIER = {"learning", "error", "decay", "our", "its", "their", "standard", "original", "typical", "previous",
                 "following", "additional", "simple", "single", "multiple", "several", "various", "every",
                 "subsequent", "whole", "entire", "proposed", "existing", "conventional", "traditional", "modern",
                 "recent", "popular", "common", "above", "below", "remaining", "next", "corresponding", "certain",
                 "specific", "regular", "normal", "usual", "total", "big", "preceding", "later", "earlier", "early",
                 "lowest", "highest", "few", "expensive", "important", "novel", "own", "any", "building", "added",
                 "specialized", "elementary", "optimal", "loss", "information", "denotes", "denote", "produce",
                 "produces", "providing", "provide", "incorporating", "integrating", "replacing", "performing",
                 "consecutive", "successive", "th", "nd", "rd", "input", "output", "efficient", "lightweight",
                 "various", "deep", "deeper", "shallow", "design", "architecture", "architectures", "no", "last",
                 "final", "second-last", "weighted", "stacked", "nonlinear", "high"}  # fmt: skip


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


_NOT_NAMING = STOP | NOT_DESIGN | NOT_QUALIFIER
_LEAVE_OUT = _NOT_NAMING | {w for word in _NOT_NAMING for w in name_key(word)}  # (as name_key stems them)


def design_words(phrase: str) -> frozenset[str]:
    """A phrase's content words that could name a design (not stop words, not what a paper evaluates)."""
    return frozenset(w for w in name_key(phrase) if w not in _LEAVE_OUT and not re.fullmatch(r"\d+[a-z]?", w))


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
            if GENERIC_HEADINGS.match(head):  # "Implementation Details.", "Discussion."
                continue
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


TOKEN = re.compile(r"\d+\s*[×x]\s*\d+|[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")
# the nouns a design is named by ("depthwise convolution", "transition layer", "growth rate", "SE block")
HEADS = {"convolution", "conv", "normalization", "norm", "activation", "nonlinearity", "non-linearity", "pooling",
         "block", "module", "layer", "unit", "cell", "connection", "connectivity", "shortcut", "bottleneck", "attention",
         "excitation", "embedding", "stem", "head", "kernel", "stride", "window", "shuffle", "split", "scaling",
         "multiplier", "ratio", "coefficient", "depth", "width", "dropout", "branch", "path", "classifier", "projection",
         "encoding", "residual", "aggregation", "concatenation", "addition", "gating", "fusion", "token", "patch", "mlp",
         "transformation", "cardinality", "factorization", "filter", "merging", "partition", "shift", "scale", "rate",
         "function", "mechanism", "operation", "operator", "group", "channel", "resolution", "downsampling", "skip",
         "summation", "transition", "flow", "stage", "bias"}  # fmt: skip
# names that are a design on their own, with no qualifier
NAMED = {"relu", "relu6", "gelu", "swish", "hard-swish", "h-swish", "silu", "sigmoid", "hard-sigmoid", "h-sigmoid",
         "tanh", "elu", "prelu", "mish", "dropout", "batchnorm", "layernorm", "groupnorm", "mbconv",
         "cardinality", "self-attention", "squeeze-and-excitation", "squeeze-and-excite", "shortcut"}  # fmt: skip
# a hyphenated word that is only a prefix and a noun names no design on its own ("per-channel", "multi-head")
PREFIXES = {"non", "per", "cross", "multi", "half", "sub", "high", "low", "full", "single", "two", "three"}


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _token_key(token: str) -> str:
    low = token.lower()
    return re.sub(r"\s*[×x]\s*", "x", low) if low[0].isdigit() else _singular(low)


def _is_head(token: str) -> bool:
    return _singular(token.lower().split("-")[-1]) in HEADS


def _qualifies(token: str) -> bool:
    low = token.lower()
    if low in ("large", "small", "fully"):  # "large kernel", "fully connected layers"
        return True
    return not (low in STOP or low in NOT_DESIGN or low in NOT_QUALIFIER or low.isdigit() or len(low) < 2
                or low.endswith("ly"))  # "considerably increased depth", "uniformly scales"


LONGER_FORM = 0.6  # a term gives way to a longer form the paper says at least this often, relative to it


def _model_and_noun(key: tuple) -> bool:
    """A model's name before a plain noun ("DenseNet layers", "ConvNet modules", "ConvNet scaling"): no
    design of its own. A model's block or unit ("ConvNeXt block", "ShuffleNet unit") is one."""
    return key[-1] not in ("block", "unit", "cell") and all(re.fullmatch(r"\w*net\w*|\w+-\w+", k) for k in key[:-1]) \
        and len(key) > 1


def _terms_in(s: Sentence):
    """Each design term one sentence says, as (key, the words as written, its span): up to three qualifiers
    before a design noun, or a name that is a design on its own (see design_terms)."""
    toks = list(TOKEN.finditer(s.text))
    for i, t in enumerate(toks):
        named = t.group(0).lower() in NAMED
        if not named and not _is_head(t.group(0)):
            continue
        j = i
        while j > 0 and i - j < 3 and not s.text[toks[j - 1].end() : toks[j].start()].strip() and _qualifies(toks[j - 1].group(0)):
            j -= 1
        for a in range(j, i + 1):
            if a == i and not named and ("-" not in t.group(0) or not _qualifies(t.group(0).split("-")[0])
                                         or t.group(0).split("-")[0].lower() in PREFIXES):
                continue  # a bare noun ("layers", "convolution", "large-scale") names no design
            key = tuple(_token_key(x.group(0)) for x in toks[a : i + 1])
            said = s.text[toks[a].start() : t.end()]
            yield key, said, Span(s.page, s.start + toks[a].start(), s.start + t.end(), said, "candidate", s.text, s.start)


def design_terms(sentences: list[Sentence], k: int = 24,
                 evidence: Callable[[Sentence, int], int] | None = None) -> list[Candidate]:  # fmt: skip
    """Phrases that name a design the way papers do: up to three qualifiers before a design noun
    ("depthwise convolution", "2 × 2 average pooling", "SE blocks"), or a name that is a design on its
    own ("h-swish", "ReLU6", "self-attention"), said at least twice in the paper's own sentences (none
    that cites). The most frequent first; a phrase the paper mostly says in a longer form gives way to it.
    Each at the first own sentence that says it and may stand as its evidence: `evidence(sentence, at)` (at:
    where the term stands in it, so that "replace ... with" or a "not" is read there) is 2 for one that says
    how the network uses it, 1 for one that may stand (voice.states_own_use: no caption, another model's
    design or negation), 0 for none; the first of the best rank; none above 0, no candidate."""
    counts: Counter = Counter()
    forms: dict[tuple, Counter] = {}
    first: dict[tuple, Span] = {}
    best: dict[tuple, int] = {}
    for s in sentences:
        if CITES.search(s.text):
            continue
        for key, said, span in _terms_in(s):
            rank = 1 if evidence is None else evidence(s, span.start - s.start)
            counts[key] += 1
            forms.setdefault(key, Counter())[said] += 1
            if rank > best.get(key, 0):
                first[key], best[key] = span, rank
    qualified: Counter = Counter()  # the most a term is said with one more qualifier ("3 × 3 depthwise convolution")
    continued: Counter = Counter()  # the most it is said as the start of a longer term ("Equal channel" -> "... width")
    for key, n in counts.items():
        if len(key) > 1:
            qualified[key[1:]] = max(qualified[key[1:]], n)
        for cut in range(1, len(key)):
            continued[key[:cut]] = max(continued[key[:cut]], n)
    kept = []
    for key, n in counts.items():
        if n >= 2 and max(qualified[key], continued[key]) < LONGER_FORM * n and not _model_and_noun(key):
            kept.append((n * (1 + 0.3 * (len(key) - 1)), key))
    out, taken = [], set()
    for _, key in sorted(kept, key=lambda t: (-t[0], t[1])):
        phrase = forms[key].most_common(1)[0][0]
        nk = name_key(phrase)
        if nk in taken or not design_words(phrase) or is_vague(phrase) or key not in first:
            continue
        taken.add(nk)
        out.append(Candidate(phrase, "term", first[key]))
        if len(out) == k:
            break
    return out


# words that tell what the authors do with a design, or where or how fast it is, not which ("adopt batch
# normalization", "contain shorter connections", "search per layer", "slow layers"): a described term does not
# start with one
SAYING = {"adopt", "add", "apply", "contain", "present", "introduce", "propose", "use", "employ", "insert", "deploy",
          "call", "called", "search", "pronounced", "once", "even", "modified", "replace", "build", "define", "operator",
          "per", "slow", "fast", "before", "after", "table"}  # fmt: skip


def described(sentences: list[Sentence], own: Callable[[Sentence], bool], background: Callable[[int, int], bool],
              k: int = 16) -> list[Candidate]:  # fmt: skip
    """Design terms in the sentences where the paper says how its own network is built ("The network ends
    with a global average pooling layer and a 1000-way fully-connected layer", "Layernorm (LN) is applied
    before every block, and residual connections after every block (Wang et al., 2019)"), in reading order,
    the longest at each place; not a lone hyphenated word said once ("Large-Scale", "Light-Head"). design_terms wants a term said twice in sentences that cite nothing; a
    paper's account of its own network names most parts once, and ViT's credits each part it takes.
    `own(sentence)`: says how the paper's own network uses what it names (find_candidates' evidence rank 2);
    none from `background` sections."""
    out = []
    for s in sentences:
        if background(s.page, s.start) or not (BUILT.search(s.text) or PROPOSES.search(s.text)) or not own(s):
            continue
        terms = [(span, said) for key, said, span in _terms_in(s)
                 if not _model_and_noun(key) and key[0] not in SAYING and (len(key) > 1 or key[0] in NAMED)]
        for span, said in terms:
            if not any(o.start <= span.start and span.end <= o.end and (o.start, o.end) != (span.start, span.end)
                       for o, _ in terms):  # fmt: skip
                out.append(Candidate(said, "described", span))
    return out[:k]


# kinds whose phrases are often no design ("Optimization configuration", "SGD with momentum", "Future
# directions"): kept only when their phrase is this close to one of the template's examples (MiniLM cosine)
NOISY_KINDS, NOISY_AT = ("run-in", "heading", "proposal"), 0.45


# a phrase cut off before its noun: "Stochastic vs", "multipliers 0", "based entirely on", "SCALING STUDY"
CUT_SHORT = re.compile(r"(?i)\b(?:vs|versus|as|in|and|or|by|on|with|of|to|for|the|a|an|from|than)\.?$|\s\d+$"
                       r"|^(?:G\d\)|exploring|modernizing|compressing|revisiting|relation to|comparison|effect of|role of"
                       r"|importance of|the difference)\b|^(?-i:[A-Z()\-]+(?:\s+[A-Z()\-]+)+)$")  # fmt: skip


# top-level sections where a paper tells what others did or what it concluded: a run-in head or heading
# there names no idea of its own ("ConvNet Accuracy." in EfficientNet's related work, "Implicit Deep
# Supervision." in DenseNet's discussion, "1.2 The continuum between convolutions and separable
# convolutions" in Xception's introduction). Not the experiments: ResNet states its bottleneck block there.
BACKGROUND = re.compile(r"(?i)^(?:introduction|related work|prior work|previous work|background|discussion"
                        r"|conclusion|future|acknowledg|references)")
TOP_LEVEL = re.compile(r"^\d+\.?\s+(?=[A-Za-z])")  # "3. DenseNets", "4 Experiments"; not "3.2." nor "A1."


APPENDIX = re.compile(r"^(?:[A-Z]\d*\.?\s+[A-Z]|appendix\b)", re.IGNORECASE)  # "A1. Detailed Architectures", "Appendix"


# top-level sections where a paper reports what it measured: its sentences compare, ablate and analyse
# ("we consider three variants", "Table 4 shows comparisons of different position embedding approaches"),
# and only one that says how the network uses a part states its design ("we add a dropout layer after
# each convolutional layer"; ResNet defines its shortcuts and bottleneck block in its experiments)
EXPERIMENTS = re.compile(r"(?i)^(?:experiment|empirical|evaluation|ablation|analysis|results|role\s+of)")


def _in_sections(doc: Document, kind: re.Pattern, appendix: bool, front: bool,
                 numbered: re.Pattern = TOP_LEVEL) -> Callable[[int, int], bool]:  # fmt: skip
    """(page, offset) -> whether that place lies in a section whose title `kind` matches, by the last
    numbered heading (`numbered`: top-level by default) before it in reading order (see background_sections)."""
    starts = []
    for page in doc.pages:
        for h in page.headings:
            m, at = numbered.match(h), page.text.find(h)
            if m and at >= 0:
                starts.append((page.number, at, bool(kind.match(h[m.end() :].strip()))))
            elif appendix and at >= 0 and APPENDIX.match(h) and not re.match(r"(?i)^a\s+[a-z]", h):
                starts.append((page.number, at, False))
            elif front and at >= 0 and re.match(r"(?i)abstract\b", h):  # after affiliations numbered "1 Google Inc."
                starts.append((page.number, at, True))
    starts.sort()

    def inside(page: int, offset: int) -> bool:
        before = [b for p, o, b in starts if (p, o) <= (page, offset)]
        return before[-1] if before else front and bool(starts)

    return inside


def background_sections(doc: Document, appendix: bool = False, front: bool = False) -> Callable[[int, int], bool]:
    """(page, offset) -> whether that place of the paper lies in a background or closing section (BACKGROUND),
    by the last top-level numbered heading before it in reading order. `appendix`: an appendix heading ends a
    closing section (Swin's "A1. Detailed Architectures" after its conclusion); `front`: the title page and
    abstract before the first numbered heading are background too (both off for the candidates of the
    first kinds, which were chosen without them)."""
    return _in_sections(doc, BACKGROUND, appendix, front)


def experiment_sections(doc: Document) -> Callable[[int, int], bool]:
    """(page, offset) -> whether that place lies in a section of experiments or analysis (EXPERIMENTS); an
    appendix heading ends it."""
    return _in_sections(doc, EXPERIMENTS, appendix=True, front=False)


# a subsection, at any level, on another task than the classification network or on a reading of it ("6.2. Object
# Detection", "6.4. Semantic Segmentation", "3.4. Information flow interpretation"): what it builds is a
# detector's or segmenter's head ("We replace all the regular convolutions with separable convolutions ... in
# SSD prediction layers"), what it says an analysis ("when inner layer depth
# is 0 the underlying convolution is the identity function thanks to the shortcut connection")
OTHER_TASK = re.compile(r"(?i)^[\s\S]*?\b(?:detection|segmentation|localization|tracking|coco|ade20k|pascal"
                        r"|downstream|interpretation)\b")  # fmt: skip
NUMBERED = re.compile(r"^(?:[A-Z]?\d+(?:\.\d+)*\.?|[A-Z]\.?)\s+(?=[A-Za-z])")  # "6.2.", "4.3", "A2.2.", "B."


def other_task_sections(doc: Document) -> Callable[[int, int], bool]:
    """(page, offset) -> whether that place lies in a numbered section or subsection whose title is about
    another task or a reading of the network (OTHER_TASK), up to the next numbered heading of any level."""
    return _in_sections(doc, OTHER_TASK, appendix=False, front=False, numbered=NUMBERED)


def no_source_places(doc: Document) -> Callable[[int, int], bool]:
    """(page, offset) -> whether a sentence there never stands as a source: a figure's caption
    (figure_captions) or a section on another task (other_task_sections)."""
    captions, other_task = figure_captions(doc), other_task_sections(doc)
    return lambda page, offset: captions(page, offset) or other_task(page, offset)


def network_names(doc: Document) -> set[str]:
    """The names of the paper's own network (voice.model_key): its file's name and the models its title names
    ("xception.pdf"; "ShuffleNet V2: Practical Guidelines ..."), not every word of the title."""
    title = [m for m in model_names(doc.title or "") if not FAMILY_WORD.fullmatch(m)]  # "Swin Transformer": Swin's
    return {model_key(doc.name), *(model_key(m) for m in title)} - {""}


# a caption that draws how a network is built ("A deep DenseNet with three dense blocks. The layers between two
# adjacent blocks are referred to as transition layers ..."), and one that tells what was measured or compared
DRAWS_STRUCTURE = re.compile(r"(?i)\b(?:architecture|blocks?|layers?|flows?|stages?|modules?|units?|consists?"
                             r"|followed\s+by)\b")  # fmt: skip
TELLS_RESULTS = re.compile(r"(?i)\b(?:accuracy|error|errors|training|curves?|results?|performance|comparisons?|compar\w*"
                           r"|vs|versus|flops|latency|trade-?off|impact|activations?|profile|visuali[sz]\w*|measure\w*"
                           r"|examples?|timings?|similarity|distribution|trained|weights?|complexity)\b")  # fmt: skip


def draws_own_network(caption: str, network: set[str], own: set[str]) -> bool:
    """Whether a figure's caption draws the paper's own network: it names it (`network`, network_names), says
    how it is built (DRAWS_STRUCTURE), tells no result (TELLS_RESULTS) and names no other model (`own`: every
    name of the paper, voice.own_model_names). Its sentences then say how the network is built as the text
    does (DenseNet's Figure 2, ResNeXt's Figure 3, Swin's Figure 2, Xception's Figure 5)."""
    if not any(model_key(w) in network for w in re.findall(r"[\w-]+", caption)):
        return False
    return bool(DRAWS_STRUCTURE.search(caption)) and not TELLS_RESULTS.search(caption) and not others_named(caption, own)


def figure_captions(doc: Document) -> Callable[[int, int], bool]:
    """(page, offset) -> whether that place lies in a figure's caption ("Figure 3: The difference between
    residual block and inverted residual ... Note how classical residuals connects ..."): it tells what a
    drawing shows, often another network's design beside the paper's. Not a caption that draws the paper's
    own network (draws_own_network)."""
    network, own = network_names(doc), own_model_names(doc.name, doc.title)
    spans = []
    for page in doc.pages:
        for cap in page.captions:
            at = page.text.find(cap)
            if at >= 0 and re.match(r"(?i)fig(?:ure)?\.?\s*\d", cap) and not draws_own_network(cap, network, own):
                spans.append((page.number, at, at + len(cap)))
    return lambda page, offset: any(p == page and a <= offset < b for p, a, b in spans)


def find_candidates(doc: Document, sentences: list[Sentence], limit: int = 40,
                    design_likeness: Callable[[list[str]], list[float]] | None = None,
                    describe: bool = True) -> list[Candidate]:  # fmt: skip
    """A paper's candidate ideas, each once (by content words): the design terms it uses most first, then
    run-in heads, headings and proposals, then (`describe`) the parts it names where it says how its network
    is built, at most `limit`. `design_likeness(phrases)`: how close each phrase is to the template's
    examples, for the noisy kinds."""
    names, captions = own_model_names(doc.name, doc.title), no_source_places(doc)
    background, experiments = background_sections(doc, appendix=True, front=True), experiment_sections(doc)

    def evidence(s: Sentence, at: int | None = None) -> int:
        """2: says how the paper's network uses what it names (at `at` in it; never in the abstract,
        introduction, related work or discussion); 1: may stand; 0: not (see design_terms)."""
        aside = background(s.page, s.start)
        if not states_own_use(s, names, captions(s.page, s.start), aside, experiments(s.page, s.start), at):
            return 0
        return 1 + (not aside and says_it_uses(s, names))

    found = [*design_terms(sentences, evidence=evidence), *run_ins(doc, sentences), *headings(doc, sentences),
             *proposals(sentences)[:10]]  # fmt: skip
    if describe:
        found += described(sentences, lambda s: evidence(s) == 2, background)
    if design_likeness is not None:
        noisy = [c for c in found if c.kind in NOISY_KINDS]
        below = {id(c) for c, d in zip(noisy, design_likeness([c.phrase for c in noisy])) if d < NOISY_AT}
        found = [c for c in found if id(c) not in below]
    out, seen = [], set()
    for c in found:
        key = name_key(c.phrase)
        if not design_words(c.phrase) or is_vague(c.phrase) or key in seen or CUT_SHORT.search(c.phrase):
            continue
        seen.add(key)
        out.append(c)
    return out[:limit]
