"""An idea in the tree, looked up by name in the other papers (fairnad/knowledge/crosslink.py), on PDFs
the tests make: a paper that states the name in two of its own sentences gets a source at exact
offsets; so does one sentence that says how its network uses it, sizes written either way, a citing
sentence in which the authors say what they do, and a single word that is a design (dropout); a passing
mention, another work's sentence, one that says the idea is not used, a longer word that starts like the
name ("SqueezeNet") or a plain single word do not count; the build links by itself and reports it."""

from __future__ import annotations

from pathlib import Path

from pdfs import make_paper

from fairnad.ingest.pdf import parse_pdf
from fairnad.knowledge.crosslink import PaperIndex, link_by_name, name_pattern
from fairnad.knowledge.evidence import span_is_at_its_offsets, split_sentences
from fairnad.knowledge.voice import states_own_use

USES = [
    ("2 Method", True),
    ("Each stage stacks depthwise separable convolutions with a wide kernel and few channels. We place the "
     "depthwise separable convolution before the normalization step in every block of the network. Compact "
     "models such as SqueezeNet reduce their parameters with small fire modules and squeeze layers. Stochastic "
     "depth was proposed by Huang et al. for very deep residual networks trained on images. Stochastic depth is "
     "not used in our smaller models because they train well without it. The scale of the first stage is kept "
     "small, and the scale of the last stage grows with the width of the data.", False),
]  # fmt: skip


def _attr(name, paper="a", **kw):
    return {"id": name, "name": name, "category": "operation/x", "aliases": [], "frequency": 1, "mentions": 1,
            "sources": [{"paper": paper, "page": 1}], **kw}  # fmt: skip


def test_a_paper_that_states_an_idea_in_its_own_sentences_gets_a_source_at_its_offsets(tmp_path):
    a, b = make_paper(tmp_path / "a.pdf"), make_paper(tmp_path / "b.pdf", title="Separable Stages", body=USES, extra_page=False)
    docs = {"a": parse_pdf(a), "b": parse_pdf(b)}
    papers = [PaperIndex(n, n.upper(), split_sentences(d)) for n, d in docs.items()]
    attrs = [_attr("depthwise separable convolution"), _attr("squeeze operation"), _attr("stochastic depth"),
             _attr("scale"), _attr("DSConv block", aliases=["depthwise separable convolutions"]),
             _attr("MobileNet block", over_specific="named after a model")]  # fmt: skip
    stats = link_by_name(attrs, papers)
    by = {x["name"]: x for x in attrs}
    dsc = by["depthwise separable convolution"]
    assert [s["paper"] for s in dsc["sources"]] == ["a", "b"] and (dsc["frequency"], dsc["mentions"]) == (2, 2)
    src = dsc["sources"][1]
    assert src["alignment"] == "name" and src["quote"].lower() == "depthwise separable convolutions"
    assert span_is_at_its_offsets(docs["b"], src["page"], src["offset"], src["offset"] + src["length"], src["quote"])
    assert src["quote"] in src["evidence"] and span_is_at_its_offsets(
        docs["b"], src["page"], src["evidence_offset"], src["evidence_offset"] + len(src["evidence"]), src["evidence"])
    assert src["evidence"].startswith("Each stage stacks")  # the first sentence that states it
    # found through an alias too
    assert [s["paper"] for s in by["DSConv block"]["sources"]] == ["a", "b"]
    # "SqueezeNet" and "squeeze layers" are not "squeeze operation"; a cited idea used once is not used;
    # a plain word is not looked up; an idea named after a model stays with its one paper
    for name in ("squeeze operation", "stochastic depth", "scale", "MobileNet block"):
        assert [s["paper"] for s in by[name]["sources"]] == ["a"], name
    assert stats == {"papers_read": 2, "sources_added": 2, "attributes_linked": 2}
    # a paper already a source is not added again
    assert link_by_name(attrs, papers)["sources_added"] == 0


USED_ONCE = [
    ("3 Network", True),
    ("The network ends with a global average pooling and a fully-connected layer. We adopt batch "
     "normalization (BN) [16] right after each convolution. ResNets [12] also use layer normalization in "
     "their stems. Each 1 × 1 convolution produces four times the growth rate of channels. Layer scale is "
     "not used in this design. We always apply dropout before the classifier. A squeeze layer is shown in "
     "Figure 2 with a channel attention module. Residual networks were trained with channel attention by "
     "Hu et al. on images.", False),
]  # fmt: skip


def test_one_sentence_that_says_how_the_network_uses_an_idea_is_enough(tmp_path):
    """Most papers state a classifier's pooling, their normalization or a 1x1 convolution once: one
    sentence that says how their network is built with it suffices; a mention in passing, about a figure,
    in another work's (citing) sentence, or one that says the idea is not used does not."""
    b = make_paper(tmp_path / "b.pdf", title="Once Each", body=USED_ONCE, extra_page=False)
    doc = parse_pdf(b)
    papers = [PaperIndex("b", "B", split_sentences(doc))]
    names = ["global average pooling", "batch normalization", "layer normalization", "1x1 convolution", "layer scale",
             "dropout", "channel attention", "squeeze layer"]  # fmt: skip
    attrs = [_attr(n) for n in names]
    link_by_name(attrs, papers)
    linked = {x["name"]: x["sources"][1] for x in attrs if len(x["sources"]) == 2}
    assert sorted(linked) == ["1x1 convolution", "batch normalization", "dropout", "global average pooling"]
    for src in linked.values():
        assert span_is_at_its_offsets(doc, src["page"], src["offset"], src["offset"] + src["length"], src["quote"])
    assert linked["1x1 convolution"]["quote"] == "1 × 1 convolution"  # the size as the paper writes it
    assert linked["batch normalization"]["evidence"].startswith("We adopt batch")  # it credits [16], but says what they do


CREDITED = [
    ("1 Introduction", True),
    ("Classic networks are followed by one or more fully-connected layers.", False),
    ("3 Architecture", True),
    ("Layernorm (LN) is applied before every block (Wang et al., 2019). Regularization such as maxout [10] or "
     "dropout [14] is applied to get the best results ([10, 25]). [58] introduced a gating module that is "
     "inserted between stages.", False),
    ("Layers Output Size Convolution 112 × 112 7 × 7 conv, stride 2 Pooling 56 × 56 3 × 3 max pool, stride 2 "
     "Dense Block Transition Layer", False),
    ("The network ends with average pooling and a 10-way fully-connected layer. Each residual network here "
     "is trained for 90 epochs.", False),
]  # fmt: skip


def test_a_credited_sentence_a_table_row_and_the_classifier_as_papers_write_them(tmp_path):
    """A sentence that says how the network is built and cites once to credit it is the authors' own
    (ViT's "Layernorm (LN) is applied before every block (Wang et al., 2019)"), not one with several
    citations or one that tells what a cited work did; a row of an architecture table says the network has
    it; "fully-connected layer" is the fully connected classifier. Not found: a pooling beside the classifier
    as a downsampling step, an alias that names a family of models ("Residual Network"), and an introduction's
    sentence in which the authors do not speak."""
    from fairnad.knowledge.candidates import background_sections

    doc = parse_pdf(make_paper(tmp_path / "b.pdf", title="Credited Parts", body=CREDITED, extra_page=False))
    papers = [PaperIndex("b", "B", split_sentences(doc), background_sections(doc, appendix=True))]
    attrs = [_attr("layer normalization"), _attr("dropout"), _attr("gating module"), _attr("max pooling"),
             _attr("fully connected classifier"), _attr("average pooling"),
             _attr("residual block", aliases=["Residual Network"])]  # fmt: skip
    link_by_name(attrs, papers)
    found = {x["name"]: x["sources"][1] for x in attrs if len(x["sources"]) == 2}
    assert sorted(found) == ["fully connected classifier", "layer normalization", "max pooling"]
    assert found["fully connected classifier"]["evidence"].startswith("The network ends with")  # not the introduction's
    assert found["max pooling"]["quote"] == "max pool"
    for src in found.values():
        assert span_is_at_its_offsets(doc, src["page"], src["offset"], src["offset"] + src["length"], src["quote"])
    # without the sections, the introduction's sentence would have been the source
    plain = [_attr("fully connected classifier")]
    link_by_name(plain, [PaperIndex("b", "B", split_sentences(doc))])
    assert plain[0]["sources"][1]["evidence"].startswith("Classic networks")


STUDIED = [
    ("3 Architecture", True),
    ("Each stage ends with a max pooling layer of stride two. The classifier is a linear layer.", False),
    ("4 Experiments", True),
    ("We compare channel shuffle against gating modules in the table below. Our shifted windows are "
     "faster than sliding windows. We add dropout after every linear layer. The attention distance increases "
     "with network depth.", False),
]  # fmt: skip


def test_a_study_or_an_experiments_remark_is_no_source(tmp_path):
    """In a section of experiments only a sentence that says how the network uses an idea is a source ("We
    add dropout after every linear layer"), not a remark ("The attention distance increases with network
    depth"), a comparison or what the network is faster than."""
    from fairnad.knowledge.candidates import experiment_sections

    doc = parse_pdf(make_paper(tmp_path / "s.pdf", title="Studied Parts", body=STUDIED, extra_page=False))
    papers = [PaperIndex("s", "S", split_sentences(doc), experiments=experiment_sections(doc))]
    attrs = [_attr("dropout"), _attr("max pooling"), _attr("channel shuffle"), _attr("sliding windows"),
             _attr("network depth"), _attr("gating module")]  # fmt: skip
    link_by_name(attrs, papers)
    found = {x["name"]: x["sources"][1]["evidence"] for x in attrs if len(x["sources"]) == 2}
    assert sorted(found) == ["dropout", "max pooling"] and found["dropout"] == "We add dropout after every linear layer."
    said = {s.text: s for s in split_sentences(doc)}
    remark = said["The attention distance increases with network depth."]
    assert states_own_use(remark) and not states_own_use(remark, in_experiments=True)  # the section decides

STANDS_OR_NOT = [
    ("3 Method", True),
    ("We find that ReLU can be substituted with a gating unit in our network. Here we explore the inverted "
     "bottleneck design. We use learnable position embeddings, since we have not observed gains from fixed ones. "
     "Each stage ends with a pooling step (such as max pooling) before the next. We replace the ReLU with GELU "
     "after each convolution. Several blocks with shifted windows (window blocks) are applied on the tokens.", False),
]  # fmt: skip


def test_a_candidates_sentence_stands_as_a_source_only_where_a_lookups_would(tmp_path):
    """The model names a candidate from the best sentence its paper had; the build keeps it as a source only
    where a lookup's would stand (build.sources_that_stand): not a finding, an exploration step, a name in
    passing inside an aside, or what a sentence says is replaced; a "not" in a clause of reason, or
    parentheses that only name what the sentence states, take nothing away."""
    from fairnad.knowledge.build import sources_that_stand
    from fairnad.knowledge.voice import in_aside, negates

    doc = parse_pdf(make_paper(tmp_path / "c.pdf", title="Standing Sources", body=STANDS_OR_NOT, extra_page=False))
    sentences = split_sentences(doc)
    paper = PaperIndex("c", "Standing Sources", sentences)
    mentions = []
    for name in ("ReLU can be substituted", "inverted bottleneck", "learnable position embeddings", "max pooling",
                 "GELU", "ReLU", "window blocks"):  # fmt: skip
        s = next(s for s in sentences if name in s.text)
        at = s.text.index(name)
        mentions.append({"paper": "c", "name": name, "page": s.page, "offset": s.start + at, "length": len(name),
                         "evidence": s.text, "evidence_offset": s.start})  # fmt: skip
    kept, dropped = sources_that_stand(mentions, [paper])
    assert [m["name"] for m in kept] == ["learnable position embeddings", "GELU", "window blocks"] and dropped == 4
    other = {**mentions[0], "paper": "not-read"}  # a paper that cannot be read again keeps what it had
    assert sources_that_stand([other], [paper]) == ([other], 0)
    assert negates("Stochastic depth is not used in our smaller models.") and not negates("We use X, since Y is not needed.")
    text = "We use 1D position embeddings, since we have not observed gains from 2D ones."
    assert not negates(text, text.index("1D")) and negates(text, text.index("2D"))
    text = "We replace the ReLU with GELU after each convolution."
    assert negates(text, text.index("ReLU")) and not negates(text, text.index("GELU"))
    text = "Each stage ends with a pooling step (such as max pooling) before the next."
    assert in_aside(text, text.index("max"), text.index("max") + 11) and not in_aside(text, 0, 4)
    assert not in_aside("Blocks (Swin blocks) are used.", 8, 19)
    from fairnad.knowledge.voice import STUDY  # an own experiment's setting is no study

    assert not STUDY.search("In our experiments, we let each 1 × 1 convolution produce 4k feature-maps.")
    assert STUDY.search("For validation, we experimented with the bottleneck unit in ResNet.")


FINDINGS_AND_RUN_INS = [
    ("3 Method", True),
    ("G1) Equal channel width minimizes memory access cost. To study the cost in practice, a benchmark network "
     "is built by stacking pointwise group convolution layers. We introduce hard swish, a modified version of the "
     "recent swish nonlinearity. Deeper Bottleneck Architectures. Next we describe our deeper nets. "
     "Compression. To improve compactness, we reduce the number of feature-maps at transition layers. "
     "Depthwise convolution. A depthwise convolution filters each channel on its own. "
     "Our idea is a wider stage with more channels.", False),
]  # fmt: skip


def test_findings_the_work_a_design_starts_from_and_run_in_heads_without_the_design_are_no_source(tmp_path):
    """A numbered guideline finding ("G1) ... minimizes ..."), a benchmark built to study a cost, and a name
    said as what a design modifies ("the recent swish nonlinearity") are no source; a run-in head and the
    sentence after it stand only where that sentence says the authors build with it."""
    from fairnad.knowledge.build import sources_that_stand

    doc = parse_pdf(make_paper(tmp_path / "f.pdf", title="Findings", body=FINDINGS_AND_RUN_INS, extra_page=False))
    sentences = split_sentences(doc)
    paper = PaperIndex("f", "Findings", sentences)
    page = doc.pages[0].text

    def named(name, after=""):
        s = next(s for s in sentences if name in s.text and after in s.text)
        at = s.text.index(name, s.text.index(after))
        return {"paper": "f", "name": name, "page": s.page, "offset": s.start + at, "length": len(name),
                "evidence": s.text, "evidence_offset": s.start}  # fmt: skip

    def run_in(head, body_end):
        at = page.index(head)
        text = page[at : page.index(body_end) + len(body_end)]
        return {"paper": "f", "name": head, "page": doc.pages[0].number, "offset": at, "length": len(text),
                "evidence": text, "evidence_offset": at}  # fmt: skip

    mentions = [named("Equal channel width"), named("pointwise group convolution"), named("swish", "recent"),
                named("hard swish"), run_in("Deeper Bottleneck", "deeper nets."),
                run_in("Compression", "transition layers."), run_in("Depthwise convolution", "its own."),
                run_in("Our idea is a wider stage", "more channels.")]  # fmt: skip
    kept, dropped = sources_that_stand(mentions, [paper])
    # the compression step says the authors build it; the depthwise head is named again to say what it is
    assert [m["name"] for m in kept] == ["hard swish", "Compression", "Depthwise convolution"] and dropped == 5

    from fairnad.knowledge.candidates import PROPOSES
    from fairnad.knowledge.voice import STUDY, based_on, states_design_act

    assert STUDY.search("G2) Excessive group convolution increases MAC.") and not STUDY.search("g2) a step")
    assert STUDY.search("To study the cost, we stack ten layers.") and STUDY.search("A benchmark network is built.")
    text = 'We introduce h-swish, a modified version of the recent "swish" nonlinearity.'
    assert based_on(text, text.index('swish"')) and not based_on(text, text.index("h-swish"))
    text = "We adopt the recently proposed squeeze-and-excitation block in each stage."
    assert not based_on(text, text.index("squeeze"))  # adopted: the network uses it
    verbs = ("propose", "introduce", "present", "design", "develop", "adopt", "use", "employ", "call", "term", "name",
             "replace", "add", "insert", "apply", "utilize", "exploit", "build")  # fmt: skip
    for verb in verbs:  # candidates.PROPOSES's verbs, each a design act (a proposal is never dropped for its verb)
        third = verb[:-1] + "ies" if verb == "apply" else verb + "s"
        for proposal in (f"We {verb} a channel split.", f"We also {verb} a channel split.",
                         f"Our work {third} a channel split.", f"This paper {third} a channel split."):  # fmt: skip
            assert states_design_act(proposal) or not PROPOSES.search(proposal), proposal
        assert PROPOSES.search(f"We {verb} a channel split.")
    for said in ("We note that adding layers hurts.", "We believe this makes training easier.",
                 "Next we describe the modified architecture.", "We denote the group size by g.",
                 "We additionally report the latency.", "Typically, the stem cell design is concerned with it."):  # fmt: skip
        assert not states_design_act(said), said


ARGUMENTS_SETUPS_AND_PLACES = [
    ("3 Method", True),
    ("We place a gate unit after each conv layer. The bottleneck can be seen as a low-rank gate unit. We argue "
     "that the gate unit controls more complex transformations. Despite the increased FLOPs for the gate unit, "
     "this change reduces the whole network FLOPs to 4.6G. The element-wise addition in the gate unit is also "
     "undesirable ( G4 ). To facilitate the training of VGG-16 from scratch, we add gate units after each conv "
     "layer. We train our models with RMSProp and momentum 0.9. We use dropout of 0.8 and weight decay 1e-5. "
     "Gate units act before summation with the identity branch. We use channel shuffle in each residual block. "
     "We argue that cardinality and the swish nonlinearity control complex transformations. We build every "
     "block with a cardinality of 32. We use the hard swish nonlinearity in every block.", False),
]  # fmt: skip


def test_arguments_training_setups_and_the_place_another_idea_goes_are_no_source(tmp_path):
    """An interpretation ("can be seen as"), an argument ("We argue"), a cost reported or judged ("Despite
    ... FLOPs to 4.6G", "undesirable ( G4 )") and the training's setup ("the training of VGG-16", "We train
    ... momentum") are no source; nor is a name said as where another idea goes ("in each residual block",
    "before summation with the identity branch"). A regularizer's setting is one ("dropout of 0.8"). A
    source that does not stand moves to the paper's sentence that builds with its name, one plain word
    too ("cardinality"), but not to one where the name is part of another's ("swish" in "hard swish")."""
    from fairnad.knowledge.build import sources_that_stand

    doc = parse_pdf(make_paper(tmp_path / "a.pdf", title="Arguments", body=ARGUMENTS_SETUPS_AND_PLACES, extra_page=False))
    sentences = split_sentences(doc)
    paper = PaperIndex("a", "Arguments", sentences)

    def named(name, after):
        s = next(s for s in sentences if after in s.text)
        at = s.text.index(name)
        return {"paper": "a", "name": name, "page": s.page, "offset": s.start + at, "length": len(name),
                "evidence": s.text, "evidence_offset": s.start}  # fmt: skip

    stands = [named("gate unit", "We place"), named("dropout", "dropout"), named("channel shuffle", "We use channel")]
    falls = [named("bottleneck", "seen as"), named("gate unit", "We argue"), named("gate unit", "Despite"),
             named("element-wise addition", "undesirable"), named("gate units", "VGG-16"),
             named("momentum", "We train"), named("identity branch", "summation"),
             named("residual block", "We use channel"), named("conv layer", "We place")]  # fmt: skip
    falls += [named("swish nonlinearity", "We argue that card")]
    moves = [{**named("cardinality", "We argue that card"), "how": "term"}] * 2  # moved once: one source
    stands += [named("hard swish", "We use the hard")]
    kept, dropped = sources_that_stand(stands + falls + moves, [paper])
    assert [(m["name"], m["evidence"][:8]) for m in kept] == [(m["name"], m["evidence"][:8]) for m in stands] + [
        ("cardinality", "We build")]
    assert dropped == len(falls) + 1
    moved = kept[-1]
    assert moved["quote"] == "cardinality" and moved["page"] == moves[0]["page"] and "how" not in moved
    assert span_is_at_its_offsets(doc, moved["page"], moved["offset"], moved["offset"] + moved["length"], moved["quote"])

    from fairnad.knowledge.voice import STUDY

    assert STUDY.search("We also note that other forms exist.") and not STUDY.search("We use dropout and weight decay.")
    for said in ("Both group convolutions and bottlenecks increase MAC ( G1 and G2 ).", "It is undesirable ( G4 ).",
                 "Typically, the stem cell design is concerned with the input.", "We argue that it helps.",
                 "It may be that the depth of the feature spaces is critical.", "One can see the filters.",
                 "A separable convolution can be understood as an Inception module.", "We train it for 90 epochs.",
                 "Despite the increased FLOPs, it is faster.", "There are two design considerations: a and b.",
                 "To facilitate the training of VGG-16, we add BN.", "We use momentum of 0.9.", "It uses momentum 0.99."):  # fmt: skip
        assert STUDY.search(said), said
    for design in ("Each stage of G2 blocks uses a 3 × 3 convolution.", "We use a momentum encoder.",
                   "We present a residual learning framework to ease the training of networks.",
                   "Despite its simplicity, our block uses a gate.", "We reduce the FLOPs to 300M with depthwise convolution.",
                   "To avoid undesirable aliasing, we use blur pooling."):  # fmt: skip
        assert not STUDY.search(design), design

    from fairnad.knowledge.voice import located_in

    for text, name in (("We add a gate in all the stages.", "stages"), ("A norm is used within each block.", "block"),
                       ("A gate acts inside every residual unit.", "unit"), ("Fewer blocks, to maintain residual connections.",
                       "residual"), ("A gate before addition with the shortcut.", "shortcut"),
                       ("One gate around each block.", "block")):  # fmt: skip
        assert located_in(text, text.index(name)), text
    text = "Each block in our network ends with a gate."
    assert not located_in(text, text.index("block")) and not located_in(text, text.index("gate"))


def test_name_patterns_take_plurals_and_hyphens_not_longer_words():
    p = name_pattern("feature-maps")
    assert p.search("the feature maps of a stage") and p.search("a feature-map") and p.search("featuremaps")
    assert name_pattern("SE blocks").search("an SE block") and not name_pattern("SE blocks").search("SE-Net")
    assert not name_pattern("group convolution").search("grouped convolutions")
    assert name_pattern("ReLU").search("BN-ReLU-Conv") and name_pattern("ReLU6").search("ReLU6 caps it")
    assert name_pattern("scale") is None and name_pattern("depth") is None and name_pattern("") is None
    assert name_pattern("dropout").search("no dropout") and not name_pattern("dropout").search("dropouts2")
    sizes = name_pattern("3 × 3 depthwise convolution")
    assert sizes.search("a 3x3 depthwise convolution") and sizes.search("3 ×3 depthwise convolutions")
    assert not sizes.search("5 × 5 depthwise convolution") and not sizes.search("13 × 3 depthwise convolution")
    assert not name_pattern("linear layers").search("using non-linear layers hurts") and not name_pattern(
        "linear layer").search("a non linear layer")  # fmt: skip
    assert name_pattern("linear layer").search("a single linear layer at fine-tuning time")
    # normalization and pooling written short, joined or not
    norm = name_pattern("layer normalization")
    assert norm.search("A LayerNorm (LN) layer") and norm.search("Layernorm is applied") and norm.search("layer norms")
    assert not norm.search("a normal layer") and not norm.search("layer normalizer")
    assert name_pattern("max pooling").search("3 × 3 max pool, stride 2") and name_pattern("max pooling").search("MaxPool")
    assert name_pattern("batch normalization").search("BatchNorm and ReLU")


WRITTEN_AS_PAPERS_DO = [
    ("3 Architecture", True),
    ("A LayerNorm (LN) layer is applied before each attention module. All convolution layers are followed by "
     "batch normalization (not included in the diagram). ReLU is performed right after each BN, following "
     "[14]. The stem ends with a 3 × 3 max-pooling layer of stride 2. ShuffleNet [21] utilizes channel "
     "shuffle in each unit. Group normalization [9] is not used in this network.", False),
]  # fmt: skip


def test_what_papers_write_short_adopt_or_set_aside_is_found(tmp_path):
    """"LayerNorm" is layer normalization; a sentence that adopts what it cites ("following [14]") is the
    authors' own; a "not" inside parentheses says nothing about the idea; "max or average pooling" is
    found as either; another work's sentence and a real negation still count for nothing."""
    from fairnad.knowledge.crosslink import alternatives

    doc = parse_pdf(make_paper(tmp_path / "b.pdf", title="Short Forms", body=WRITTEN_AS_PAPERS_DO, extra_page=False))
    papers = [PaperIndex("b", "B", split_sentences(doc))]
    assert alternatives("max or average pooling") == ["max pooling", "average pooling"]
    assert alternatives("Swish / SiLU") == ["Swish", "SiLU"] and alternatives("global average pooling") == []
    attrs = [_attr("layer normalization"), _attr("batch normalization"), _attr("ReLU"),
             _attr("max or average pooling", aliases=alternatives("max or average pooling")),
             _attr("channel shuffle"), _attr("group normalization")]  # fmt: skip
    link_by_name(attrs, papers)
    found = {x["name"]: x["sources"][1]["quote"] for x in attrs if len(x["sources"]) == 2}
    assert found == {"layer normalization": "LayerNorm", "batch normalization": "batch normalization", "ReLU": "ReLU",
                     "max or average pooling": "max-pooling"}  # fmt: skip
    for x in attrs:
        for src in x["sources"][1:]:
            assert span_is_at_its_offsets(doc, src["page"], src["offset"], src["offset"] + src["length"], src["quote"])


def test_a_name_inside_another_ideas_longer_name_is_that_idea_not_this_one(tmp_path):
    """"bottleneck block" in "an inverted bottleneck block" is the inverted bottleneck, when the tree has
    it; "hard swish" in "hard swish nonlinearity" is still hard swish beside an idea "swish nonlinearity"."""
    body = [("2 Design", True), ("We create an inverted bottleneck block in every stage. We use the hard swish "
                                 "nonlinearity in each stage.", False)]  # fmt: skip
    doc = parse_pdf(make_paper(tmp_path / "b.pdf", title="Longer Names", body=body, extra_page=False))
    papers = [PaperIndex("b", "B", split_sentences(doc))]
    attrs = [_attr("bottleneck block"), _attr("inverted bottleneck"), _attr("swish nonlinearity"), _attr("hard swish")]
    link_by_name(attrs, papers)
    assert {x["name"]: [s["paper"] for s in x["sources"]] for x in attrs} == {
        "bottleneck block": ["a"], "inverted bottleneck": ["a", "b"], "swish nonlinearity": ["a"], "hard swish": ["a", "b"]}
    # the tree's ideas stand in the way of the template's examples the same way (`known`)
    fresh = [_attr("bottleneck block", paper="t")]
    link_by_name(fresh, papers, known=[_attr("inverted bottleneck")])
    assert [s["paper"] for s in fresh[0]["sources"]] == ["t"]


def test_a_build_finds_its_ideas_by_name_in_its_other_papers(tmp_path, monkeypatch):
    """Through process_papers and assemble: the model names an idea in one paper (a scripted answer, so
    the test is about the lookup), the build adds the other paper that uses it; --find-by-name 0 does not.
    Extraction and both lookups parse each paper once."""
    from conftest import NamingLLM
    from pdfs import make_runin_paper
    from test_knowledge import MINI, _namer

    from fairnad.knowledge import build
    from fairnad.knowledge.build import BuildOptions, assemble, process_papers
    from fairnad.knowledge.embed import Embedder
    from fairnad.knowledge.template import load_template
    from fairnad.llm import RecordingLLM
    from fairnad.store import BuildStore

    parsed = []
    monkeypatch.setattr(build, "parse_pdf", lambda path, pages: parsed.append(Path(path).name) or parse_pdf(path, pages))

    a = make_runin_paper(tmp_path / "papers" / "a.pdf")
    b = make_paper(tmp_path / "papers" / "b.pdf", title="Separable Stages", body=USES, extra_page=False)
    (tmp_path / "mini.yaml").write_text(MINI)
    mini, embedder = load_template(tmp_path / "mini.yaml"), Embedder()
    with BuildStore.create(tmp_path / "build", {}) as store:
        # the model names paper a's run-in heads (b's one candidate, its squeeze-and-excitation module, is no idea here)
        llm = RecordingLLM(NamingLLM(_namer), sink=store.add_llm_call)
        process_papers([a, b], mini, store, llm, BuildOptions())
        tree, report = assemble(mini, store, embedder, BuildOptions())
        plain, plain_report = assemble(mini, store, embedder, BuildOptions(find_by_name=0))
    assert sorted(parsed) == ["a.pdf", "b.pdf"]
    dsc = next(x for x in tree.attributes() if x["name"] == "depthwise separable convolution")
    assert [(s["paper"], s["alignment"]) for s in dsc["sources"]] == [("a", "candidate"), ("b", "name")]
    assert dsc["frequency"] == 2
    assert report["found_by_name"] == {"papers_read": 2, "sources_added": 1, "attributes_linked": 1,
                                       "template_examples": 0}  # its example is the model's idea: not added twice
    doc = parse_pdf(b)
    src = dsc["sources"][1]
    assert span_is_at_its_offsets(doc, src["page"], src["offset"], src["offset"] + src["length"], src["quote"])
    dsc = next(x for x in plain.attributes() if x["name"] == "depthwise separable convolution")
    assert [s["paper"] for s in dsc["sources"]] == ["a"] and plain_report["found_by_name"]["sources_added"] == 0


def NOTHING(phrase):  # a model that sees no design idea anywhere
    return {"idea": False, "name": phrase, "category": "operation/normalization", "description": ""}


def test_the_templates_examples_that_papers_state_become_their_ideas(tmp_path):
    """A model that names nothing: the template example both papers state in two of their own sentences
    is an idea with a source in each, in its example's category; the ones no paper states are not."""
    from conftest import NamingLLM
    from test_knowledge import MINI

    from fairnad.knowledge.build import BuildOptions, assemble, process_papers
    from fairnad.knowledge.embed import Embedder
    from fairnad.knowledge.template import load_template
    from fairnad.llm import RecordingLLM
    from fairnad.store import BuildStore

    a = make_paper(tmp_path / "papers" / "a.pdf")
    b = make_paper(tmp_path / "papers" / "b.pdf", title="Separable Stages", body=USES, extra_page=False)
    (tmp_path / "mini.yaml").write_text(MINI)
    mini, embedder = load_template(tmp_path / "mini.yaml"), Embedder()
    with BuildStore.create(tmp_path / "build", {}) as store:
        llm = RecordingLLM(NamingLLM(NOTHING), sink=store.add_llm_call)
        process_papers([a, b], mini, store, llm, BuildOptions())
        tree, report = assemble(mini, store, embedder, BuildOptions())
        none, _ = assemble(mini, store, embedder, BuildOptions(template_examples=False))
    by = {x["name"]: x for x in tree.attributes()}
    assert sorted(by) == ["batch normalization", "depthwise separable convolution"]  # not layer norm, self-attention
    dsc, bn = by["depthwise separable convolution"], by["batch normalization"]
    assert (dsc["category"], dsc["from_template"]) == ("operation/feature-extraction", True)
    assert [(s["paper"], s["alignment"]) for s in dsc["sources"]] == [("a", "name"), ("b", "name")]
    assert dsc["frequency"] == 2 and report["found_by_name"]["template_examples"] == 2
    # a's one sentence on it says its block uses it ("Our block uses ... followed by batch normalization")
    assert [s["paper"] for s in bn["sources"]] == ["a"] and bn["sources"][0]["evidence"].startswith("Our block uses")
    docs = {"a": parse_pdf(a), "b": parse_pdf(b)}
    assert all(span_is_at_its_offsets(docs[s["paper"]], s["page"], s["offset"], s["offset"] + s["length"], s["quote"])
               for x in (dsc, bn) for s in x["sources"])  # fmt: skip
    assert not tree.stats()["empty_categories"]
    assert none.attributes() == []
    # knowledge add: a build folder that knows only a new paper carries the example over as it was
    from fairnad.knowledge.build import mentions_from_tree

    c = make_paper(tmp_path / "c.pdf", title="Another Paper", extra_page=False, body=[("1 Method", True), (
        "We train a plain convolutional network with a wide stem and no normalization at all.", False)])  # fmt: skip
    with BuildStore.create(tmp_path / "build2", {}) as store2:
        process_papers([c], mini, store2, RecordingLLM(NamingLLM(NOTHING), sink=store2.add_llm_call), BuildOptions())
        added, _ = assemble(mini, store2, embedder, BuildOptions(), extra_mentions=mentions_from_tree(tree),
                            extra_papers=tree.papers)  # fmt: skip
    by2 = {x["name"]: x for x in added.attributes()}
    assert sorted(by2) == sorted(by)
    dsc2 = by2["depthwise separable convolution"]
    assert dsc2["from_template"] and dsc2["sources"] == dsc["sources"] and dsc2["category"] == dsc["category"]
