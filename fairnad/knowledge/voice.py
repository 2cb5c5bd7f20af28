"""Whose design a sentence states: the authors' own network's, or another work's.

Both the candidates (what a paper proposes) and the lookups (which paper uses an idea of the tree) need
the paper's own sentences, not the ones that tell what others did: "ShuffleNet [21] utilizes channel
shuffle in each unit" is ShuffleNet's design in the ShuffleNet V2 paper. A sentence is the authors' own
when it cites nothing (no "[12]", "et al." or year), when they speak in the first person, when it says
it adopts what it cites ("..., following [14]"), or when it says how the network is built and cites once
to credit the idea ("Layernorm (LN) is applied before every block (Wang et al., 2019)"); never one that
says the idea is not used ("Stochastic depth is not used in our smaller models"; a "not" in parentheses
is an aside, one in a clause of reason a remark: "..., since we have not observed ...").
"""

from __future__ import annotations

import dataclasses
import re

from fairnad.knowledge.consolidate import model_names
from fairnad.knowledge.evidence import Sentence

CITES = re.compile(r"\[\s*\d|\bet\s+al\b|\b(?:19|20)\d\d\b")
FIRST_PERSON = re.compile(r"(?i)\b(?:we|our|us)\b")
# a citing sentence that says the authors adopt what it cites ("ReLU is performed right after each BN ...,
# following [14]"): theirs, as a first-person one is
ADOPTS = re.compile(r"(?i)\b(?:following|as\s+in)\s*(?:\[\s*\d|\(?[A-Z][A-Za-z-]+\s+et\s+al)")
ASIDE = re.compile(r"\([^()]*\)")  # "(not included in the diagram)" says nothing about the idea
NOT_USED = re.compile(r"(?i)\b(?:not|no|without|instead\s+of|unlike|rather\s+than|remov(?:e|es|ed|ing)|replac(?:e|es|ed|ing)"
                      r"|eliminat(?:e|es|ed|ing)|as\s+opposed\s+to|disabl(?:e|es|ed|ing))\b")  # fmt: skip
# what others built, named without a citation ("Group convolution and depth-wise convolution are crucial in
# these works"; "That is a design decision also evident in Transformers")
OTHERS_BUILT = re.compile(r"(?i)\b(?:these|those|previous|prior|existing|earlier)\s+(?:works?|methods|approaches|studies)\b")
FAMILIES = re.compile(r"\b(?:Transformers?|ViTs?)\b")  # model families model_names does not see
# a family's word, which names no one model ("convolution and Transformer" is no idea of a model's); wider
# than FAMILIES, whose words alone are counted as another's model (a CNN is everyone's)
FAMILY_WORD = re.compile(r"(?i)(?:CNNs?|ConvNets?|Transformers?|ViTs?|MLPs?|RNNs?)")
# a sentence that says how the network is built with the idea (BUILT), or in which the authors speak or say
# where it goes (USES), so that one suffices. Of the sentences that say so, a lookup's source is one of BUILT
# when there is one ("The network ends with ... a 1000-way fully-connected layer", not "We also note that the
# above notations are about fully-connected layers")
_APPLIED = r"\b(?:is|are)\s+(?:applied|performed|attached|used|inserted|added|placed|adopted|employed)\b"
_BUILT = (_APPLIED + r"|\bends?\s+with\b|\bfollowed\s+by\b|\bconsists?\s+of\b|\bcontains?\b")  # fmt: skip
BUILT = re.compile(_BUILT, re.IGNORECASE)
USES = re.compile(rf"\b(?:we|our|us|each|every|all)\b|{_BUILT}", re.IGNORECASE)
# about a figure, a table's caption, a footnote ("2 In some literature ..."), or numbers of a table read as text ("81.3 95.6 ...")
FIGURE = re.compile(r"(?i)\bfig(?:ure)?s?\b|^\s*table\s+\d+\s*[.:]|^\s*\d+\s+[A-Z]|^\s*\d+\.\d+\s+\d")
# a pointer to a figure in parentheses ("... a bottleneck block (Figure 5)", "(see Fig. 2, right)"): the sentence
# still says how the network is built, it does not tell what a drawing shows
FIGURE_POINTER = re.compile(r"(?i)\(\s*(?:see\s+)?fig(?:ure)?s?\.?\s*\d[^()]*\)")


def about_figure(text: str) -> bool:
    """Whether a sentence is about a figure or a table (FIGURE), parenthesised pointers to one left out."""
    return bool(FIGURE.search(FIGURE_POINTER.sub("", text)))


# numbers of a table read as text before its caption ("81.3 95.6 50.5 43.7 46.1 Table 4. Ablation study on ..."),
# or a table's legend (": absolute position embedding term of ViT; rel. ...")
TABLE_NUMBERS = re.compile(r"^\s*(?:(?:[\d.]+\s+){3}|[:;,])")
# a row of an architecture table ("3 × 3 max pool, stride 2", "7 × 7 global average pool 1000D fully-connected,
# softmax"): two sizes and a layer word; it states how the network is built, as a sentence that says so does
TABLE_ROW = re.compile(r"(?i)(?=(?:.*?\d+\s*[x×]\s*\d+){2}).*\b(?:stride|conv|pool|fully-connected|fc|softmax)\b")
# one citation in parentheses or brackets that credits what the sentence states ("Layernorm (LN) is applied
# before every block (Wang et al., 2019)")
CREDIT = re.compile(r"\((?:[^()]*?\bet\s+al\b[^()]*?|[^()]*?\b(?:19|20)\d\d[a-z]?)\)|\[\s*\d[\d,\s\-–]*\]")
# a citing sentence about what others did: it begins with the citation ("[58] introduced ...") or tells of work
# done before ("have previously been shown", "was proposed", "as noted in [37]")
OTHER_WORK = re.compile(r"(?i)^\W*(?:\[|\(?[A-Z][\w-]+\s+et\s+al)|\b(?:previously|proposed|introduced|reported|studied"
                        r"|shown|suggested|noted|inspired|motivated)\b")  # fmt: skip


# a sentence that tells of a study, not of the design: an experiment, comparison, ablation or analysis ("we
# consider three variants", "We first evaluate the trade-off between cardinality C and bottleneck width",
# "The following table shows the effects of the residual (shortcut) connections", "more efficient than
# those of sliding windows"), a finding or an exploration step ("We find that ReLU can be substituted with
# GELU", "Here we explore the inverted bottleneck design", "we also experimentally tested ...", "This
# suggests that the ratio ... should increase", "our aggregated transformations outperform ..."), a
# reading of the paper ("We present an interpretation of Inception modules"), a comparison with another
# design ("our module differs from all existing Inception modules"), a table's legend or a plot's title
# ("the number of 1 × 1 filters", "stands for"; "Inside the brackets are ..."; "each conv layer shown in
# the table"; "(b) Impact of variations in residual blocks"; "Relations between cardinality and width"), a
# numbered guideline finding ("G1) Equal channel width minimizes memory access cost") and a network built to
# measure one ("To study the affection in practice, a benchmark network is built by stacking ..."); an
# interpretation, an argument or a remark ("can be seen as", "we argue that", "One can see the number of
# ... filters"), design choices weighed ("two interesting design considerations"), a cost reported
# ("Despite the increased FLOPs ..., this change reduces the whole network FLOPs to 4.6G") or judged by a
# guideline ("is also undesirable ( G4 )", "... increase MAC ( G1 and G2 )"), a general remark or a guess
# ("Typically, the stem cell design is concerned with ...", "It may be that the depth ... is critical"),
# and the training's setup ("To facilitate the training of VGG-16 from scratch, we add ..."; "We train our
# EfficientNet models ...: RMSProp optimizer with ... momentum 0.9", "we optimize ..."); a contrast with
# another design ("In contrast to ...", "On the contrary"), a condition or a cost weighed ("When the
# input ... is large, ..." where the authors do not speak and nothing is applied; "but only if", "more
# expensive"), a symbol's legend ("N denotes the number of ...") and a list cut off at ", or"; an explanation
# ("... is the identity function thanks to the shortcut connection"), a weakness ("which may impede the
# information flow"; "it inevitably loses information"), a gain ("we manage to obtain accuracy gains from
# increased depth"), an equality between designs, a property weighed ("only MLP layers are local and
# translationally equivariant"; inductive bias) and an experiment's set-up ("In the experiments above, each SE
# block was placed outside ..."). Not "to ease the training of
# networks" (ResNet's framework), nor a regularizer's setting: "We use dropout of 0.8, and l2 weight decay
# 1e-5" states dropout
STUDY = re.compile(r"(?i)\b(?:we|this\s+section)\s+(?:also\s+|first\s+|next\s+|further\s+|then\s+|now\s+"
                   r"|empirically\s+|experimentally\s+)?"
                   r"(?:consider|study|investigate|evaluate|compare|examine|report|test|ablate|analy[sz]e"
                   r"|expect|begin|measure|observe|find|found|show|explore|experiment|were\s+able|demonstrate"
                   r"|conclude|recall)\w*|\bcompar(?:e|es|ed|ing|isons?)\b|\bvariants?\b"
                   r"|\btrade-?offs?\b|\bablat\w*|\beffects?\s+of\b|\btables?\s+\d+\s+(?:shows?|lists?|reports?)"
                   r"|\bresults?\b|\bfollowing\s+table\b"
                   r"|\b(?:faster|slower|better|worse|cheaper|more\s+\w+|less\s+\w+)\s+than\b"
                   r"|\bexperiment(?:ed|ally)\b|\bsuggests?\b|\bimpact\s+of\b|\brelations?\s+between\b"
                   r"|\boutperform\w*|\bfor\s+validation\b|\binterpretation\b|\bsubstitut\w*"
                   r"|\bsimilar\s+to\b|\bdiffers?\s+from\b"
                   r"|\bshown\s+in\s+the\s+table\b|\bbrackets\b|\bstands?\s+for\b"
                   r"|\bto\s+study\b|\bbenchmark\s+networks?\b|^\W*(?-i:G)\d+\)"
                   r"|\(\s*(?-i:G)\d+(?:\s*(?:,|and|&)\s*(?-i:G)\d+)*\s*\)|^\W*typically\b|\bit\s+may\s+be\s+that\b"
                   r"|\bcan\s+be\s+(?:seen|viewed|regarded|interpreted|understood|thought\s+of)\s+as\b|\bone\s+can\s+see\b"
                   r"|\bwe\s+(?:also\s+|further\s+)?(?:argue|remark|note|believe|hypothesi[sz]e|conjecture|speculate)\b"
                   r"|\bdespite\s+the\s+(?:increased|higher|larger|extra|additional)\b|\bdesign\s+considerations?\b"
                   r"|\bto\s+facilitate\s+the\s+training\b|\bwe\s+train\b|\bmomentum\s+(?:of\s+)?[\d.]"
                   r"|\bin\s+contrast\s+(?:to|with)\b|\bon\s+the\s+contrary\b|\bbut\s+only\s+if\b|\bmore\s+expensive\b"
                   r"|\bimplementations?\s+of\b|\bwe\s+optimi[sz]e\b|\bregularization\s+parameters\b|,\s*or\W*$"
                   r"|(?:^|,)\s*(?:here\s*,?\s*)?(?-i:[A-Z]{1,4})\s+denotes\b"
                   r"|\bthanks\s+to\b|\bmay\s+(?:impede|hamper|hinder|hurt|harm)\b|\binevitabl\w*"
                   r"|\baccuracy\s+gains?\b|\bgains?\s+(?:in\s+)?accuracy\b|\bequality\b|\bequivariant\b|\binductive\s+bias"
                   r"|\b(?:the\s+experiments\s+above|above\s+experiments)\b"
                   rf"|^(?![\s\S]*\b(?:we|our|us)\b)(?![\s\S]*{_APPLIED})\W*(?:\d+(?:\.\d+)*\.?\s+)?(?:if|when)\b")  # fmt: skip
# a name said as the work a design starts from, not as the design ("a modified version of the recent swish
# nonlinearity" in MobileNetV3, which uses h-swish): the words just before the name. Not "recent" or
# "popular" alone: "We adopt the recently proposed squeeze-and-excitation block" uses it
BASED_ON = re.compile(r"(?i)\b(?:modified\s+)?(?:version|extension)\s+of(?:\s+the)?(?:\s+recent(?:ly\s+\w+)?)?"
                      r"\s+[\"“]?$")  # fmt: skip
# a whole sentence (or a run-in head and the sentence after it) stands as a source only where it says the
# authors build with it, with every verb of a proposal (candidates.PROPOSES) among others ("we propose to
# compute self-attention within local windows", "we can reduce the number of feature-maps at transition
# layers"), or how the network is built (BUILT): not a run-in head whose next sentence says something else
# ("Deeper Bottleneck Architectures. Next we describe our deeper nets"). Between the subject and the verb
# only an adverb or a modal ("we then apply", "we can reduce"), so that "we" reaches no verb of a later
# clause ("We note that adding ...")
_BETWEEN = (r"(?:also|further|then|first|can|could|will|would|may|might|should|instead|additionally|simply"
            r"|only|directly|here|now|therefore|thus|finally|next|mainly|still|do|did|just|is|are|was|were|be)")  # fmt: skip
DESIGN_ACT = re.compile(rf"(?i)\b(?:we|our\s+[\w-]+|this\s+(?:paper|work))\s+(?:{_BETWEEN}\s+){{0,2}}"
                        r"(?:(?:us|adopt|propos|add|replac|mov|reduc|introduc|employ|design|build|construct|stack"
                        r"|insert|chang|increas|decreas|mak|tak|turn|switch|comput|incorporat|group|shuffl"
                        r"|concatenat|shar|present|develop|call|term|nam|utili[sz]|exploit|defin|adapt)"
                        r"(?:e|es|ed|ing|s|d)?|appl(?:y|ies|ied|ying)|modif(?:y|ies|ied|ying)|set(?:s|ting)?"
                        r"|split(?:s|ting)?|built)\b")  # fmt: skip


# a name said as the place where another idea goes, not as the design ("we will use one LayerNorm as our
# choice of normalization in each residual block"; "Squeeze and Excitation both act before summation with
# the identity branch"; "Reduce bottleneck in all blocks ... to maintain residual connections"): the words
# just before the name, one word of the name's phrase between at most
LOCATED_IN = re.compile(r"(?i)\b(?:(?:in|within|inside|after|before|around)\s+(?:each|every|all(?:\s+the)?)"
                        r"|(?:summation|addition)\s+with\s+the|to\s+maintain)\s+(?:[\w-]+\s+)?$")  # fmt: skip


def located_in(text: str, at: int) -> bool:
    """Whether the name at `at` is said as where another idea goes (LOCATED_IN)."""
    return bool(LOCATED_IN.search(text[:at]))


def based_on(text: str, at: int) -> bool:
    """Whether the name at `at` is said as the work a design starts from (BASED_ON)."""
    return bool(BASED_ON.search(text[:at]))


def states_design_act(text: str) -> bool:
    """Whether a sentence says the authors build with what it names, or how the network is built
    (DESIGN_ACT, BUILT)."""
    return bool(DESIGN_ACT.search(text) or BUILT.search(text))


# a clause after the statement that gives its reason or a concession: a "not" there does not negate what
# the sentence states ("We use standard learnable 1D position embeddings, since we have not observed ...")
REASON = re.compile(r"(?i),\s*(?:since|because|although|though|whereas)\b.*$")
REPLACED_WITH = re.compile(r"(?i)\breplac(?:e|es|ed|ing)\b[^;]*?\b(?:with|by)\b")


def negates(text: str, at: int | None = None) -> bool:
    """Whether a sentence says that what it names is not used (NOT_USED), asides and a trailing clause of
    reason or concession (REASON) left out unless the name (at `at`) stands in that clause ("... since we
    have not observed gains from 2D-aware position embeddings"); a name after "replace ... with" is what
    the network uses ("We replace the ResNet-style stem cell with a patchify layer")."""
    if at is not None and (m := REPLACED_WITH.search(text)) and m.end() <= at:
        text, at = text[m.end() :], at - m.end()
    reason = REASON.search(text)
    if reason is not None and (at is None or at < reason.start()):
        text = text[: reason.start()]  # the name is stated before the reason: a "not" there is about another
    return bool(NOT_USED.search(ASIDE.sub("", text)))


def in_aside(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is said in passing, inside parentheses that hold more than it ("(such as
    residual connection)", "(ReLU/addition)"); parentheses that hold only it name what the sentence
    states ("... blocks with modified self-attention computation (Swin Transformer blocks)", "(BN)")."""
    for m in ASIDE.finditer(text):
        if m.start() < start and end <= m.end():
            return re.sub(r"\W", "", m.group(0)).lower() != re.sub(r"\W", "", text[start:end]).lower()
    return False


def model_key(word: str) -> str:
    """A model's name as compared: "ShuffleNet-V2" ~ "shufflenetv2", "Transformers" ~ "Transformer"."""
    return re.sub(r"s$", "", re.sub(r"\W", "", word.lower()))


def own_model_names(name: str, title: str | None) -> set[str]:
    """A paper's own model names (model_key): its file's and its title's words ("convnext.pdf"; "ShuffleNet V2: ...")."""
    return {model_key(w) for w in re.findall(r"[\w-]+", f"{name} {title or ''}")}


def says_it_uses(s: Sentence, own_names: set[str] = frozenset()) -> bool:
    """One sentence enough to say the paper's network has what it names: a row of an architecture table, or
    a sentence of USES not about a figure and not naming another model unless the authors speak ("The stem
    cell in standard ResNet contains ...": ResNet's network, in the ConvNeXt paper)."""
    if TABLE_ROW.match(s.text):
        return True
    if not USES.search(s.text) or about_figure(s.text):
        return False
    return not others_named(s.text, own_names) or bool(FIRST_PERSON.search(s.text))


def others_named(text: str, own_names: set[str] = frozenset()) -> list[str]:
    """The models and model families `text` names that are not the paper's own."""
    return [m for m in [*model_names(text), *FAMILIES.findall(text)] if model_key(m) not in own_names]


def credits_only(s: Sentence, own_names: set[str] = frozenset()) -> bool:
    """A citing sentence that states how this network is built and cites once, to credit it: with the citation
    taken out it says how the network uses what it names (`says_it_uses`), and it tells of no earlier work."""
    bare, credits = CREDIT.subn("", s.text)
    return (credits == 1 and not OTHER_WORK.search(s.text) and not CITES.search(bare)
            and says_it_uses(dataclasses.replace(s, text=bare), own_names))  # fmt: skip


def is_own(s: Sentence, own_names: set[str] = frozenset(), at: int | None = None) -> bool:
    """The authors' own sentence (see the module's docstring), one that does not say the idea is not used
    and is no table's numbers."""
    text = s.text
    if TABLE_NUMBERS.match(text) or negates(text, at):
        return False
    return (not CITES.search(text) or bool(FIRST_PERSON.search(text) or ADOPTS.search(text))
            or credits_only(s, own_names))  # fmt: skip


def speaks_there(s: Sentence, in_background: bool) -> bool:
    """In the introduction, related work or discussion (`in_background`) only the authors' first-person
    sentences are about their network ("... are followed by one or more fully-connected layers" in
    GoogLeNet's introduction is LeNet's design); elsewhere any."""
    return not in_background or bool(FIRST_PERSON.search(s.text))


def states_own_use(s: Sentence, own_names: set[str] = frozenset(), in_caption: bool = False,
                   in_background: bool = False, in_experiments: bool = False, at: int | None = None) -> bool:  # fmt: skip
    """A sentence that can stand as evidence that the paper's network has what it names: the authors' own
    (is_own), not a figure's caption nor about a figure, about no other model or earlier work unless the
    authors speak, in a background section only in the first person (speaks_there), no study (STUDY), and
    in a section of experiments only one that says how the network uses it (says_it_uses). The first
    sentence that says a term is often none of these ("Note how classical residuals connects ...", in a
    caption; "Consider a Transformer block with ...", in the ConvNeXt paper)."""
    if in_caption or not speaks_there(s, in_background) or about_figure(s.text) or OTHERS_BUILT.search(s.text):
        return False
    if STUDY.search(s.text) or (in_experiments and not says_it_uses(s, own_names)):
        return False
    return is_own(s, own_names, at) and (not others_named(s.text, own_names) or bool(FIRST_PERSON.search(s.text)))
