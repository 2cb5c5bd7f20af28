"""Knowledge pipeline: template validation, quote verification, extraction (scripted LLM for the
logic, the real embedded model end to end), consolidation, tree files, incremental add, resume."""

import json

import networkx as nx
import pytest

from fairnad.errors import ConfigError
from fairnad.ingest.pdf import parse_pdf
from fairnad.knowledge.build import BuildOptions, assemble, mentions_from_tree, process_papers
from fairnad.knowledge.consolidate import consolidate
from fairnad.knowledge.embed import Embedder
from fairnad.knowledge.extract import extract_paper, verify_quote
from fairnad.knowledge.template import load_template
from fairnad.knowledge.tree import AttributeTree
from fairnad.llm import Completion, RecordingLLM, Usage
from fairnad.store import BuildStore

from conftest import ROOT
from pdfs import make_paper

TEMPLATE = ROOT / "templates" / "fairnad.yaml"
MINI = """name: mini
description: two categories, for fast tests
levels:
  - id: operation
    name: Operation level
    categories:
      - id: normalization
        name: Normalization
        description: Layers that normalise activations to stabilise training.
        examples: [batch normalization, layer normalization]
      - id: feature-extraction
        name: Feature extraction operators
        description: Operations that extract features, such as convolutions.
        examples: [depthwise separable convolution, self-attention]
"""


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


@pytest.fixture
def mini(tmp_path):
    p = tmp_path / "mini.yaml"
    p.write_text(MINI)
    return load_template(p)


class PromptLLM:
    """Answers a prompt with fn(prompt text): a scripted stand-in that makes the logic deterministic."""

    def __init__(self, fn):
        self.fn, self.prompts = fn, []

    def complete(self, messages, *, temperature=0.0, schema=None, max_tokens=None, seed=None, purpose=""):
        self.prompts.append(messages[-1]["content"])
        value = self.fn(messages[-1]["content"])
        return Completion(json.dumps(value), value, Usage(50, 20), 0.0, "scripted")


def _answer(prompt):
    if "Category: Operation level > Normalization" in prompt:
        return {"attributes": [
            {"name": "batch normalization", "subcategory": "normalization", "description": "normalise by batch statistics",
             "effect": "performance", "page": 1,
             "quote": "followed by batch normalization and a ReLU activation"},
            {"name": "weight standardization", "subcategory": "normalization", "description": "invented",
             "effect": "performance", "page": 1, "quote": "we standardize all weights to zero mean and unit variance"},
        ]}  # fmt: skip
    if "Feature extraction operators" in prompt:
        return {"attributes": [
            {"name": "depthwise separable convolution", "subcategory": "convolution", "description": "depthwise + pointwise",
             "effect": "efficiency", "page": 1,
             "quote": "factorizes a standard convolution into a depthwise step and a pointwise step"}]}  # fmt: skip
    return {"attributes": []}


# -- template -------------------------------------------------------------------------------------
def test_the_shipped_template_has_the_three_levels():
    t = load_template(TEMPLATE)
    assert [lv.id for lv in t.levels] == ["operation", "block", "network"]
    ids = [c.id for _, c in t.categories()]
    for needed in ("feature-extraction", "normalization", "activation", "input-encoding", "residual-multibranch",
                   "fusion-aggregation", "recalibration", "macro-structure", "downsampling", "scaling", "head"):
        assert needed in ids  # fmt: skip


@pytest.mark.parametrize(
    "change,expected",
    [
        (("      - id: normalization\n", "      - id: Normalization!\n"), ":7: levels.0.categories.0.id: String should match"),
        (("examples: [batch normalization, layer normalization]", "examples: []"), ":10: levels.0.categories.0.examples"),
        (("      - id: feature-extraction\n", "      - id: normalization\n"), "category id 'normalization' is used twice"),
        (("name: mini\n", "name: mini\ncolour: red\n"), ":2: colour: Extra inputs are not permitted"),
        (("    categories:\n", "    categories: [\n"), "not valid YAML"),
    ],
)
def test_malformed_templates_are_refused_with_line_and_reason(tmp_path, change, expected):
    p = tmp_path / "t.yaml"
    p.write_text(MINI.replace(*change))
    with pytest.raises(ConfigError) as e:
        load_template(p)
    assert str(p) in str(e.value) and expected in str(e.value)


# -- quotes and extraction ------------------------------------------------------------------------
@pytest.fixture
def paper(tmp_path):
    return parse_pdf(make_paper(tmp_path / "paper.pdf"))


def test_quote_verification(paper):
    ok = verify_quote(paper, "Our block uses a depthwise   separable convolution followed by BATCH normalization", 1)
    assert ok.ok and ok.page == 1 and ok.offset >= 0
    fabricated = verify_quote(paper, "we use a transformer with two thousand heads in every layer", 1)
    assert not fabricated.ok and fabricated.reason == "quote not found in the paper"
    assert verify_quote(paper, "batch normalization", 1).reason == "quote shorter than 5 words"
    moved = verify_quote(paper, "randomly drops residual branches during training", 1)
    assert moved.ok and moved.page == 2 and "found on page 2" in moved.reason


def test_extraction_asks_every_category_with_its_own_passages(paper, mini, embedder):
    llm = PromptLLM(_answer)
    res = extract_paper(paper, mini, llm, embedder, passages=2)
    assert len(llm.prompts) == 2  # one call per category
    norm_prompt = next(p for p in llm.prompts if "Normalization" in p.split("\n")[2])
    assert "batch normalization" in norm_prompt and "[page 1]" in norm_prompt
    by_name = {m["name"]: m for m in res.mentions}
    assert by_name["batch normalization"]["verified"] and by_name["depthwise separable convolution"]["verified"]
    assert not by_name["weight standardization"]["verified"]  # the invented one is rejected and counted
    assert res.stats["proposed"] == 3 and res.stats["verified"] == 2 and res.stats["rejected"] == 1
    assert res.stats["categories_filled"] == 2


# -- consolidation --------------------------------------------------------------------------------
def _m(paper, name, category="operation/feature-extraction", **kw):
    return {"paper": paper, "title": paper.upper(), "category": category, "subcategory": kw.pop("sub", "convolution"),
            "name": name, "description": kw.pop("description", name), "effect": kw.pop("effect", "efficiency"),
            "page": 1, "quote": f"{name} quote text here", "offset": 0, "length": 10}  # fmt: skip


def test_consolidation_merges_two_phrasings_and_fixes_categories(embedder):
    t = load_template(TEMPLATE)
    mentions = [
        _m("a", "depthwise separable convolution"),
        _m("b", "depth-wise separable convolutions"),
        _m("c", "depthwise separable convolution", category="block/residual-multibranch"),
        _m("a", "batch normalization", category="operation/normalization", sub="normalization", effect="performance"),
        _m("b", "MobileNetV2 block", category="block/residual-multibranch", sub="blocks"),
    ]
    out = consolidate(mentions, t, embedder)
    names = {a["name"]: a for a in out["attributes"]}
    assert set(names) == {"depthwise separable convolution", "batch normalization", "MobileNetV2 block"}
    dsc = names["depthwise separable convolution"]
    assert dsc["frequency"] == 3 and dsc["mentions"] == 3 and dsc["aliases"] == ["depth-wise separable convolutions"]
    assert dsc["category"] == "operation/feature-extraction" and dsc["recategorized"]  # one category per attribute
    assert names["MobileNetV2 block"]["over_specific"].startswith("named after a model")
    assert names["batch normalization"]["over_specific"] is None
    assert "operation/activation" in out["empty_categories"]


# -- tree -----------------------------------------------------------------------------------------
def _tree(embedder):
    t = load_template(TEMPLATE)
    out = consolidate([_m("a", "depthwise separable convolution"), _m("b", "self-attention", sub="attention")], t, embedder)
    return AttributeTree.build(t, out["attributes"], [{"name": "a", "title": "A"}, {"name": "b", "title": "B"}])


def test_tree_round_trip_graphml_and_quote_free_copies(tmp_path, embedder):
    tree = _tree(embedder)
    tree.save(tmp_path / "t.json")
    back = AttributeTree.load(tmp_path / "t.json")
    assert nx.utils.graphs_equal(tree.g, back.g)
    assert back.template.name == "fairnad" and len(back.attributes()) == 2
    h = nx.read_graphml(tree.export_graphml(tmp_path / "t.graphml"))
    assert h.number_of_nodes() == tree.g.number_of_nodes()
    tree.save(tmp_path / "nq.json", quotes=False)
    raw = (tmp_path / "nq.json").read_text()
    assert "quote text here" not in raw and '"offset": 0' in raw
    (tmp_path / "bad.json").write_text('{"nodes": []}')
    with pytest.raises(ConfigError, match="not a fairnad attribute tree"):
        AttributeTree.load(tmp_path / "bad.json")


def test_template_only_tree_and_stats(embedder):
    t = AttributeTree.from_template(load_template(TEMPLATE))
    assert len(t.attributes()) == sum(len(c.examples) for _, c in load_template(TEMPLATE).categories())
    assert all(not a["sources"] for a in t.attributes())
    tree = _tree(embedder)
    st = tree.stats()
    fe = next(r for r in st["categories"] if r["category"] == "operation/feature-extraction")
    assert fe["attributes"] == 2 and fe["share_by_frequency"] == 1.0 and fe["share_fair"] == 1.0
    assert tree.search("attention")[0]["name"] == "self-attention"


def test_build_resumes_and_add_extends_a_tree(tmp_path, mini, embedder):
    a = make_paper(tmp_path / "papers" / "a.pdf")
    b = make_paper(tmp_path / "b.pdf", title="Attention Everywhere", body=[
        ("1 Method", True),
        ("We normalize each token with layer normalization before the attention and the MLP. Layer normalization "
         "keeps the scale of the residual stream stable during training.", False)])  # fmt: skip
    llm_answers = PromptLLM(lambda p: _answer(p) if "Residual Blocks" in p else {"attributes": [
        {"name": "layer normalization", "subcategory": "normalization", "description": "per-token normalisation",
         "effect": "performance", "page": 1,
         "quote": "normalize each token with layer normalization before the attention"}]} if "Normalization" in p.split("\n")[2]
        else {"attributes": []})  # fmt: skip
    store = BuildStore.create(tmp_path / "build", {})
    llm = RecordingLLM(llm_answers, sink=store.add_llm_call)
    process_papers([a], mini, store, llm, embedder, BuildOptions())
    assert len(llm_answers.prompts) == 2
    rows = process_papers([a], mini, store, llm, embedder, BuildOptions())  # resumed: nothing redone
    assert rows[0]["resumed"] and len(llm_answers.prompts) == 2
    tree, report = assemble(mini, store, embedder, BuildOptions())
    assert {x["name"] for x in tree.attributes()} == {"batch normalization", "depthwise separable convolution"}
    store.close()
    # add: a fresh build folder that only knows paper b; the earlier tree's sources come along
    store2 = BuildStore.create(tmp_path / "build2", {})
    process_papers([b], mini, store2, RecordingLLM(llm_answers, sink=store2.add_llm_call), embedder, BuildOptions())
    tree2, _ = assemble(mini, store2, embedder, BuildOptions(), extra_mentions=mentions_from_tree(tree))
    names = {x["name"] for x in tree2.attributes()}
    assert names == {"batch normalization", "depthwise separable convolution", "layer normalization"}
    assert {p["name"] for p in tree2.papers} == {"a", "b"}
    store2.close()
