"""Candidates from where papers say what they propose (knowledge/candidates.py), on the real papers, and
the naming step's checks (knowledge/extract.py) with a scripted answer for its logic."""

from __future__ import annotations

import dataclasses

import pytest

from fairnad.knowledge.candidates import design_terms, find_candidates
from fairnad.knowledge.evidence import span_is_at_its_offsets, split_sentences
from fairnad.knowledge.extract import extract_paper, judge
from fairnad.knowledge.template import load_template
from fairnad.llm import Completion, Usage

from conftest import ROOT, SHARED, NamingLLM

PAPERS = SHARED / "papers"
pytestmark = pytest.mark.skipif(not PAPERS.is_dir(), reason="../shared/papers is not here")


@pytest.fixture(scope="module")
def corpus(shared_papers):
    docs = shared_papers
    sentences = {n: split_sentences(d) for n, d in docs.items()}
    return docs, sentences


def _found(corpus, name):
    docs, sentences = corpus
    return find_candidates(docs[name], sentences[name])


@pytest.mark.parametrize("paper, phrase, kind", [
    ("densenet", "Composite function", "run-in"),  # section 3 names one design element per bold head
    ("densenet", "Compression", "run-in"),
    ("densenet", "growth rate", "term"),  # also a bold head: the term comes first, each phrase once
    ("densenet", "dense block", "term"),
    ("convnext", "Changing stem to \"Patchify\"", "run-in"),
    ("googlenet", "Inception module", "term"),  # missing from the old tree
    ("mobilenetv3", "h-swish", "term"),  # 32 mentions in the paper, missing from the old tree
    ("mobilenetv3", "ReLU6", "term"),
    ("swin", "shifted window", "term"),
    ("convnext", "GELU", "term"),
    ("densenet", "transition layers", "term"),
    ("densenet", "2 × 2 average pooling", "term"),  # the longer form the paper uses
    ("xception", "depthwise separable convolutions", "term"),
    ("mobilenetv3", "Large squeeze-and-excite", "heading"),
    ("swin", "shift windows between consecutive layers", "proposal"),
    ("swin", "Shifted Window based Self-Attention", "heading"),
    ("shufflenetv2", "simple operator called channel split", "proposal"),
])  # fmt: skip
def test_candidates_come_from_where_papers_say_what_they_propose(corpus, paper, phrase, kind):
    docs = corpus[0]
    found = {c.phrase: c for c in _found(corpus, paper)}
    assert phrase in found, sorted(found)
    c = found[phrase]
    assert c.kind == kind
    ev = c.evidence
    assert span_is_at_its_offsets(docs[paper], ev.page, ev.start, ev.end, ev.text)  # the paper's own words


def test_candidates_leave_out_what_every_paper_has(corpus):
    for name in ("densenet", "vit", "swin", "mobilenetv3"):
        phrases = [c.phrase.lower() for c in _found(corpus, name)]
        for generic in ("introduction", "related work", "experiments", "conclusion", "acknowledgements", "datasets",
                        "imagenet", "accuracy"):
            assert generic not in phrases, (name, generic)
        assert len(phrases) == len(set(phrases)) and len(phrases) <= 40
        # a design noun with a word that only places or counts it names no design
        for vague in ("feature-maps", "preceding layers", "l th layer", "building blocks", "later layers"):
            assert vague not in phrases, (name, vague)


def test_a_design_term_is_a_design_noun_said_twice_in_the_papers_own_sentences(corpus):
    docs, sentences = corpus
    terms = {c.phrase: c for c in design_terms(sentences["senet"])}
    assert "SE blocks" in terms and "reduction ratio" in terms and "global average pooling" in terms
    ev = terms["reduction ratio"].evidence
    assert ev.text == "reduction ratio" and "reduction ratio" in ev.sentence  # the phrase itself, in its sentence
    assert span_is_at_its_offsets(docs["senet"], ev.page, ev.start, ev.end, ev.text)
    assert not any(c.phrase.lower() in ("layers", "convolution", "block") for c in terms.values())  # bare nouns


def test_the_parts_a_paper_names_once_where_it_says_how_its_network_is_built_are_candidates(corpus):
    """ViT credits each part of its encoder and names it once ("Layernorm (LN) is applied before every block,
    and residual connections after every block (Wang et al., 2019; ...)"): design_terms, which wants two
    sentences that cite nothing, gave ViT 6 candidates. A sentence about another network (ShuffleNet V2's
    validation of ResNet's bottleneck), in the introduction or abstract, or one telling what the authors do
    with a design ("adopt batch normalization") gives none, or the design alone."""
    docs, sentences = corpus
    vit = {c.phrase: c for c in _found(corpus, "vit") if c.kind == "described"}
    assert {"Layernorm", "residual connections", "MLP blocks", "learned position embedding"} <= set(vit), sorted(vit)
    ev = vit["Layernorm"].evidence
    assert ev.sentence.startswith("Layernorm (LN) is applied before every block")
    assert span_is_at_its_offsets(docs["vit"], ev.page, ev.start, ev.end, ev.text)
    resnet = [c.phrase for c in _found(corpus, "resnet") if c.kind == "described"]
    assert "batch normalization" in resnet and not any(p.startswith("adopt") for p in resnet)
    every = [c for name in docs for c in _found(corpus, name) if c.kind == "described"]
    assert not any(c.evidence.sentence.startswith("Recent work has shown") for c in every)  # DenseNet's abstract
    assert len({(c.evidence.page, c.evidence.start) for c in every}) == len(every)  # each place once
    without = find_candidates(docs["vit"], sentences["vit"], describe=False)
    assert [c for c in _found(corpus, "vit") if c.kind != "described"] == without  # the other kinds as they were


def test_a_terms_evidence_is_a_sentence_about_the_papers_own_network(corpus):
    """The first sentence that says a term is often a figure's caption, another model's design or a
    negation; the evidence is the first that says how the paper's network uses it, else one that may stand,
    else the term is no candidate (the 8fcbc8d tree failed 26 of 60 in a strict check, most on such sentences)."""
    docs, sentences = corpus
    terms = {c.phrase: c.evidence.sentence for c in _found(corpus, "convnext") if c.kind == "term"}
    # ConvNeXt says self-attention only of Transformers or in comparisons ("similar to the weighted sum
    # operation in self-attention"): no sentence stands for it
    assert "self-attention" not in terms
    assert terms["residual block"].startswith("From now on, we will use one LayerNorm")  # not a FLOPs remark
    assert not any("layer scale is disabled" in t for t in terms.values())
    mnv2 = {c.phrase for c in _found(corpus, "mobilenetv2")}
    assert "classical residuals" not in mnv2  # said only in Figure 3's caption, of ResNet's block
    shuffle = {c.phrase: c.evidence.sentence for c in _found(corpus, "shufflenetv2")}
    # not the negation ("The ReLU and shortcut operations are removed"), and no other sentence stands for it:
    # "The element-wise "Add" operation in the shortcut connection is also undesirable ( G4 )" judges it
    # (ShuffleNet V2 concatenates instead)
    assert "shortcut" not in shuffle
    plain = {c.phrase: c.evidence.sentence for c in design_terms(sentences["convnext"])}  # without the check
    assert plain["self-attention"].startswith("attributed to the superior scaling behavior of Transformers")


def test_a_study_is_no_evidence_and_an_experiment_states_only_what_the_network_uses(corpus):
    """Sentences that compare, ablate or analyse name designs the paper's network does not have, or not as
    its design (v10 failed 19 of its 37 sources in experiments sections): SENet's ablated "SE-POST block",
    Swin's "sliding windows" it is faster than, ResNeXt's "effects of the residual (shortcut) connections".
    ResNet's experiments define its shortcuts, so a sentence there that says what the network uses stands."""
    senet = {c.phrase for c in _found(corpus, "senet")}
    assert "SE-POST block" not in senet and "tanh" not in senet
    assert "sliding windows" not in {c.phrase for c in _found(corpus, "swin")}
    resnext = {c.phrase: c.evidence.sentence for c in _found(corpus, "resnext")}
    assert "shortcut" not in resnext and "bottleneck width" not in resnext
    resnet = {c.phrase: c.evidence.sentence for c in _found(corpus, "resnet")}
    assert not any(e.startswith(("Next we investigate", "These results support")) for e in resnet.values())
    assert resnet["identity shortcuts"].startswith("On this dataset we use identity shortcuts")  # section 4.2
    said = [s.text for s in corpus[1]["resnet"]]
    assert any(t.endswith("(B) The projection shortcut in Eqn.(2) is used to match dimensions (done by 1 × 1 "
                          "convolutions).") for t in said)  # one sentence: pysbd had ended it at "Eqn."  # fmt: skip
    assert not any(t.endswith("Eqn.") for t in said)
    convnext = {c.phrase: c.evidence.sentence for c in _found(corpus, "convnext")}
    assert "spatial downsampling" not in convnext  # "We explore a similar strategy in which we use 2 × 2 conv ..."
    assert not convnext["inverted bottleneck"].startswith(("We then study a series of design decisions", "Here we explore"))
    densenet = {c.phrase for c in _found(corpus, "densenet")}  # a finding ("We find this design especially
    assert "bottleneck layer" not in densenet  # effective ... with such a bottleneck layer"), and cited elsewhere

def test_run_ins_headings_and_proposals_far_from_every_example_are_left_out(corpus):
    """The noisy kinds pass only near one of the template's examples (the real MiniLM embedder)."""
    from fairnad.knowledge.build import design_likeness
    from fairnad.knowledge.embed import Embedder

    docs, sentences = corpus
    template = load_template(ROOT / "templates" / "fairnad.yaml")
    like = design_likeness(template, Embedder())
    kept = {c.phrase for c in find_candidates(docs["xception"], sentences["xception"], design_likeness=like)}
    every = {c.phrase for c in find_candidates(docs["xception"], sentences["xception"])}
    assert {"Optimization configuration", "Future directions", "Size and speed"} <= every - kept
    assert "depthwise separable convolutions" in kept and "The continuum between convolutions and separable convolutions" in kept


def test_the_model_names_and_files_candidates_and_the_checks_after_it(corpus):
    docs = corpus[0]
    template = load_template(ROOT / "templates" / "fairnad.yaml")

    def answer(phrase):
        p = phrase.lower()
        if p == "growth rate":  # a name in the model's words, not the paper's: the paper's phrase is kept
            return {"idea": True, "name": "channel increment hyperparameter", "category": "network/scaling",
                    "description": "how many channels each layer adds"}
        if p == "dense block":  # a description in another script is dropped
            return {"idea": True, "name": "dense block", "category": "block/fusion-aggregation",
                    "description": "每一层连接到所有后续层"}
        if p == "resnets":  # a model's name is no idea, even in the paper's words
            return {"idea": True, "name": "ResNets", "category": "block/residual-multibranch", "description": "a model"}
        if p == "compression":  # the model's name for it is not in the paper's words there: the phrase is
            return {"idea": True, "name": "DenseNet-BC", "category": "network/scaling", "description": "fewer maps"}
        if p == "bottleneck layer":
            return {"idea": True, "name": "bottleneck layer", "category": "block/residual-multibranch",
                    "description": "1x1 convolution before each 3x3 convolution"}
        return {"idea": False, "name": phrase[:40] or "x", "category": "operation/activation", "description": ""}

    llm = NamingLLM(answer)
    res = extract_paper(docs["densenet"], template, llm)
    by = {m["candidate"]["phrase"]: m for m in res.mentions}
    assert res.stats["candidates"] == len(res.mentions) and len(llm.prompts) == -(-len(res.mentions) // 8)
    head = [p[: p.index("Phrases where")] for p in llm.prompts]
    assert len(set(head)) == 1  # the categories and the title first, the same for every batch (prefix reuse)
    g = by["growth rate"]
    assert g["verified"] and g["name"] == "growth rate" and g["category"] == "network/scaling"
    d = by["dense block"]
    assert d["verified"] and d["description"] == ""
    assert by["ResNets"]["reason"] == "a head in the paper's background or discussion"  # its related work
    resnets = next(c for c in _found(corpus, "densenet") if c.phrase == "ResNets")
    assert judge(dataclasses.replace(resnets, kind="term"), {"idea": True, "name": "ResNets", "description": ""},
                 [docs["densenet"].title])[2] == "a model's name, not an idea"  # never an idea, even in the paper's words
    assert by["Compression"]["verified"] and by["Compression"]["name"] == "Compression"
    named = ("growth rate", "dense block", "Compression", "ResNets")
    assert {m["reason"] for m in res.mentions if m["candidate"]["phrase"] not in named} == {"not a design idea"}
    for m in res.mentions:
        assert span_is_at_its_offsets(docs["densenet"], m["page"], m["offset"], m["offset"] + m["length"], m["quote"])
    assert res.stats["verified"] == 3 and res.stats["rejections"]["a head in the paper's background or discussion"] == 1


def test_heads_of_a_papers_background_and_names_of_what_it_measures_trains_or_implements_are_no_ideas(corpus):
    """The cold-built 13-paper tree held "ConvNet Accuracy." (EfficientNet's related work), "Implicit Deep
    Supervision." (DenseNet's discussion), "Swin-T", "stochastic depth rate" and "torch's built-in grouped
    convolution": even when the model says each is an idea, the checks after it refuse them; a description
    with none of its name's words (the model's answer drifted onto another idea) is dropped."""
    from fairnad.knowledge.consolidate import is_model_name
    from fairnad.knowledge.names import is_generic, not_an_idea

    docs = corpus[0]
    template = load_template(ROOT / "templates" / "fairnad.yaml")

    def answer(phrase):
        description = "a non-linear function between layers" if phrase == "pooling layers" else f"the {phrase}"
        return {"idea": True, "name": phrase, "category": "block/fusion-aggregation", "description": description}

    by = {m["candidate"]["phrase"]: m for m in extract_paper(docs["densenet"], template, NamingLLM(answer)).mentions}
    for head in ("Implicit Deep Supervision", "ResNets"):  # its discussion, its related work
        assert by[head]["reason"] == "a head in the paper's background or discussion", head
    for head in ("Composite function", "Compression"):  # section 3, DenseNets
        assert by[head]["verified"], (head, by[head]["reason"])
    assert by["Composite function"]["description"] == "the Composite function"
    assert by["pooling layers"]["verified"] and by["pooling layers"]["description"] == ""
    by = {m["candidate"]["phrase"]: m for m in extract_paper(docs["efficientnet"], template, NamingLLM(answer)).mentions}
    assert by["ConvNet Accuracy"]["reason"] == by["ConvNet Efficiency"]["reason"] \
        == "a head in the paper's background or discussion"
    for head in ("Compound Model Scaling", "Scaling Dimensions"):  # its section 3 (other checks may refuse them)
        assert by[head]["reason"] != "a head in the paper's background or discussion", head
    for name, why in [("ConvNet Accuracy", "what a paper measures"), ("linear computation complexity", "what a paper measures"),
                      ("interpretation of Inception modules in convolution", "an analysis"),
                      ("stochastic depth rate", "a training setting"), ("learning rate schedule", "a training setting"),
                      ("torch's built-in grouped convolution", "an implementation detail"),
                      ("more efficient batch computation approach", "an implementation detail"),
                      ("better results than going deeper or wider", "a finding"), ("results beyond ImageNet", "a finding"),
                      ("Residual Networks", "a family of models"), ("tensor fusion", "an implementation detail"),
                      ("this approach heavily in our architecture", "a pointer to what a sentence says"),
                      ("G4) Element-wise operations are non-negligible", "a statement")]:  # fmt: skip
        assert not_an_idea(name) == why, name
    for name in ("stochastic depth", "dropout", "growth rate", "efficient channel attention", "depthwise convolution",
                 "h-swish", "cardinality", "reduction ratio", "network width",
                 "residual connection"):  # the template's regularizers are ideas; rates of layers too
        assert not_an_idea(name) is None, name
    assert is_model_name("Swin-T") and is_model_name("ViT-B") and not is_model_name("h-swish")
    assert is_model_name("larger ConvNeXt-XL") and not is_model_name("larger kernel")
    for name in ("building blocks", "layer block", "activation functions", "feature transformation", "Different stages",
                 "normalization layer", "template", "modifications", "Scaling Dimensions", "different connectivity pattern",
                 "convolutional neural network architecture based on this", "intermediate stages", "repeated blocks",
                 "some modifications", "new scaling method"):  # named ideas in cold-built trees; none is one
        assert is_generic(name), name
    assert not_an_idea("batched window") == "an implementation detail"
    for name in ("layer normalization", "LayerNorm", "batch normalization", "basic block", "ReLU activation",
                 "residual connection", "element-wise addition", "layer scale", "stem", "dropout", "dense connectivity",
                 "patch merging", "stage compute ratio", "channel shuffle", "this block's shortcut",
                 "intermediate expansion layer", "doubling width when the spatial map is downsampled"):
        assert not is_generic(name), name


def test_an_idea_is_actionable_when_its_child_builds_and_is_another_network():
    """`knowledge check`'s unit (search/actionable.py) with scripted answers and the real sandbox: a child
    with the idea in it is actionable; the parent written back, or a child that does not build, is not."""
    from fairnad.evaluate.code import EvalRequest, run_request
    from fairnad.search.actionable import check_idea
    from fairnad.search.ideas import Idea
    from fairnad.space.reference import reference

    parent = reference("mnist1d-cnn").source()

    def probe(code):
        r = run_request(EvalRequest(source=code, dataset="mnist1d", checks_only=True, timeout=120)).report()
        return {"status": r["status"], "category": r.get("category"), "error": r.get("error"),
                "structure": (r.get("metrics") or {}).get("structure"), "params": (r.get("metrics") or {}).get("params")}

    parent_check = probe(parent)
    se = parent.replace("        self.act = nn.GELU()\n", "        self.act = nn.GELU()\n        self.gate = nn.Sequential("
                        "nn.AdaptiveAvgPool1d(1), nn.Conv1d(cout, cout, 1), nn.Sigmoid())\n").replace(
        "        return self.act(self.bn(self.conv(x)))", "        y = self.act(self.bn(self.conv(x)))\n        return y * self.gate(y)")
    broken = parent.replace("self.bn = nn.BatchNorm1d(cout)", "self.bn = nn.BatchNorm1d(cout * 3)")
    idea = Idea("se", "squeeze-and-excitation", "block/recalibration", "Adaptive feature recalibration",
                description="channel gating from global context")  # fmt: skip
    outcomes = {}
    for label, answer in (("applied", se), ("parent back", parent), ("broken", broken), ("no code", "I cannot.")):
        llm = NamingLLM(lambda phrase: {})  # (its complete is replaced: a code answer)
        llm.complete = lambda msgs, answer=answer, **kw: Completion(f"```python\n{answer}\n```" if "def " in answer
                                                                    else answer, None, Usage(9, 9), 0.0, "scripted")
        outcomes[label] = check_idea(llm, idea, parent, parent_check, "contract", probe)
    assert outcomes["applied"]["ok"] and outcomes["applied"]["changed"] and outcomes["applied"]["params"] > parent_check["params"]
    assert not outcomes["parent back"]["ok"] and outcomes["parent back"]["builds"]
    assert outcomes["parent back"]["why"] == "the child is its parent's network again"
    assert not outcomes["broken"]["ok"] and not outcomes["broken"]["builds"] and outcomes["broken"]["why"].startswith("shape")
    assert not outcomes["no code"]["ok"] and outcomes["no code"]["why"].startswith("no applicable code")


def test_contrasts_conditions_legends_and_framework_layers_read_as_papers_mean_them(corpus):
    """What the strict check of 8203a8f's tree still failed: a contrast with another design ("In contrast to
    ..."), a condition weighed where nothing is applied ("When the input is large, ..."), a symbol's legend
    ("N denotes ..."), a list cut off at ", or"; a framework's layer name is no model ("SeparableConvolution"
    made Xception's caption name "another model"); a pointer to a figure in parentheses leaves the sentence
    about the network; a name answered as a category's path is replaced by the paper's phrase."""
    from fairnad.knowledge.consolidate import model_names
    from fairnad.knowledge.extract import judge
    from fairnad.knowledge.names import is_vague
    from fairnad.knowledge.voice import STUDY, about_figure

    for said in ("In contrast to ResNet, we concatenate features.", "On the contrary, the block is slower.",
                 "When the input resolution is large, the cost grows.", "2.1. If the number of groups grows, MAC grows.",
                 "Here, N denotes the number of blocks.", "It helps, but only if the network is deep.",
                 "The layer is more expensive.", "Efficient implementations of depthwise convolution exist.",
                 "We optimize the accuracy and latency.", "The regularization parameters are tuned.",
                 "It uses dropout, or"):  # fmt: skip
        assert STUDY.search(said), said
    for design in ("When we downsample, we use a 2 × 2 convolution.", "If the stride is 2, BN is applied after it.",
                   "We use depthwise convolution in every block.", "Whenever a block downsamples, it doubles the width."):  # fmt: skip
        assert not STUDY.search(design), design
    assert model_names("all Convolution and SeparableConvolution layers, Conv2D, ResNet, ConvNeXt, ResNets") == [
        "ResNet", "ConvNeXt", "ResNets"]
    assert not about_figure("Each unit is a bottleneck block (see Fig. 2, right).")
    assert about_figure("As shown in Fig. 2, each unit is a bottleneck block.")
    assert is_vague("non-linearity") and not is_vague("hard swish")
    docs = corpus[0]
    inverted = next(c for c in _found(corpus, "mobilenetv2") if c.phrase.lower().startswith("inverted residual"))
    name, _, why = judge(inverted, {"idea": True, "name": "block/inverted-residual", "description": ""},
                         [docs["mobilenetv2"].title])  # fmt: skip
    assert why is None and name == inverted.phrase


def test_a_caption_that_draws_the_papers_own_network_states_its_design(corpus):
    """A figure's caption tells what a drawing shows, often another network's design, and is no evidence; one
    that names the paper's own network, says how it is built and tells no result is read as the text is."""
    from fairnad.knowledge.candidates import draws_own_network, figure_captions, network_names
    from fairnad.knowledge.voice import own_model_names

    docs, sentences = corpus
    drawn = set()
    for name, doc in docs.items():
        network, own = network_names(doc), own_model_names(doc.name, doc.title)
        for page in doc.pages:
            drawn |= {(name, c.split(".")[0].split(":")[0]) for c in page.captions
                      if c.startswith(("Fig", "fig")) and draws_own_network(c, network, own)}  # fmt: skip
    assert drawn == {("densenet", "Figure 2"), ("resnext", "Figure 3"), ("swin", "Figure 2"), ("xception", "Figure 5")}
    assert network_names(docs["swin"]) == {"swin"}  # "Transformer" names a family, not Swin's network
    in_caption = figure_captions(docs["densenet"])
    transition = next(s for s in sentences["densenet"] if s.text.startswith("The layers between two adjacent blocks"))
    curves = next(s for s in sentences["densenet"] if "Comparison of the DenseNets and ResNets" in s.text)
    assert not in_caption(transition.page, transition.start) and in_caption(curves.page, curves.start)


def test_a_sources_quote_never_names_another_idea(corpus):
    """The model may name another idea of the candidate's sentence (DenseNet's "2 × 2 average pooling" named
    "1 × 1 convolution" kept the pooling's words as its quote): the quote is that name's words in the
    sentence, else the whole sentence, always at its offsets."""
    from fairnad.knowledge.extract import quoted

    docs = corpus[0]
    pooling = next(c for c in _found(corpus, "densenet") if c.phrase == "2 × 2 average pooling")
    assert "1 × 1 convolutional layer" in pooling.evidence.sentence
    assert quoted(pooling, "2 × 2 average pooling") == pooling.evidence
    bn = quoted(pooling, "batch normalization layer")
    conv = quoted(pooling, "1 × 1 convolution")  # "convolutional" is not the name's word: the whole sentence
    assert bn.text == "batch normalization layer" and conv.text == pooling.evidence.sentence
    for q in (bn, conv):
        assert q.sentence == pooling.evidence.sentence
        assert span_is_at_its_offsets(docs["densenet"], q.page, q.start, q.end, q.text)


def test_another_tasks_sections_explanations_and_a_units_parts_read_as_papers_mean_them(corpus):
    """What the strict check of a8b0cad's tree failed: a detector's or segmenter's head built in a section on
    that task ("... separable convolutions ... in SSD prediction layers"), an explanation, a gain, an
    equality, a property weighed or an experiment's set-up stated as design; SENet's "two small FC layers in
    the excitation phase" filed as a classifier; a "counterpart" named as an idea."""
    from fairnad.knowledge.build import readable_papers
    from fairnad.knowledge.candidates import other_task_sections
    from fairnad.knowledge.consolidate import unit_of_part
    from fairnad.knowledge.names import not_an_idea
    from fairnad.knowledge.voice import STUDY

    docs, sentences = corpus
    rows = [{"path": str(PAPERS / f"{n}.pdf"), "name": n, "title": docs[n].title, "sha256": docs[n].sha256}
            for n in ("mobilenetv2", "vit")]  # fmt: skip
    papers = {p.name: p for p in readable_papers(rows, 200)}

    def stands(paper, start, name):
        s = next(s for s in sentences[paper] if s.text.startswith(start))
        return papers[paper].names_it(s, s.text.index(name), s.text.index(name) + len(name))

    ssd = next(s for s in sentences["mobilenetv2"] if "in SSD prediction layers" in s.text)
    assert other_task_sections(docs["mobilenetv2"])(ssd.page, ssd.start)
    assert not stands("mobilenetv2", "We replace all the regular convolutions with separable", "separable convolutions")
    assert stands("mobilenetv2", "We use ReLU6 as the non-linearity", "ReLU6")  # its own design section
    assert stands("vit", "After the projection, a learned position embedding", "learned position embedding")
    assert not stands("mobilenetv2", "In particular, in our case, when inner layer depth is 0", "shortcut connection")
    for said in ("We manage to obtain accuracy gains from increased depth.", "It can gain accuracy from depth.",
                 "The above approximate equality is valid between a bottleneck block and ours.",
                 "Only MLP layers are local and translationally equivariant.", "This gives an inductive bias.",
                 "In the experiments above, each SE block was placed outside the residual unit.",
                 "They are combined by summation, which may impede the information flow.",
                 "When ReLU collapses the channel, it inevitably loses information."):  # fmt: skip
        assert STUDY.search(said), said
    for design in ("We use ReLU6 as the non-linearity.", "The transition layers used in our experiments consist of "
                   "a batch normalization layer and an 1 × 1 convolutional layer."):  # fmt: skip
        assert not STUDY.search(design), design
    t = load_template(ROOT / "templates" / "fairnad.yaml")
    se = "the squeeze phase and two small FC layers in the excitation phase, followed by a scaling operation."
    assert unit_of_part("network/head", [se], t) == "block/recalibration"
    assert unit_of_part("network/scaling", [se], t) == "block/recalibration"
    assert unit_of_part("network/head", [se, "The network ends with 3 FC layers."], t) == "network/head"
    assert unit_of_part("operation/activation", [se], t) == "operation/activation"
    assert not_an_idea("counterpart residual") and not not_an_idea("residual connection")
