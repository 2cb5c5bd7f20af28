"""The tree browser page in real headless Chromium: loads offline without errors, search filters,
quotes are shown, and strings from papers or LLMs cannot inject markup or script."""

import pytest

from fairnad.knowledge.consolidate import consolidate
from fairnad.knowledge.embed import Embedder
from fairnad.knowledge.template import load_template
from fairnad.knowledge.tree import AttributeTree
from fairnad.report.tree_html import write_tree_html

from browser import CHROMIUM, page_for
from conftest import ROOT

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (scripts/setup.sh installs Debian's where it can)")

EVIL = '<img src=x onerror="window.__pwned=1">'
BREAKOUT = '</script><script>window.__pwned=2</script>'


def _m(paper, name, category, quote, sub="general", sentence=None):
    """A mention whose span `quote` sits inside its evidence `sentence` (at page offset 100 + its place)."""
    sentence = sentence or quote
    at = sentence.index(quote)
    return {"paper": paper, "title": f"Paper {paper.upper()}", "category": category, "subcategory": sub, "name": name,
            "description": f"about {name}", "effect": "performance", "page": 3, "quote": quote, "offset": 100 + at,
            "length": len(quote), "evidence": sentence, "evidence_offset": 100,
            "alignment": "exact" if sentence != quote else "sentence"}  # fmt: skip


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    t = load_template(ROOT / "templates" / "fairnad.yaml")
    mentions = [
        _m("a", "depthwise separable convolution", "operation/feature-extraction", "factorizes a standard convolution", "convolution"),
        _m("b", "self-attention", "operation/feature-extraction", "attention weighs every token against every other", "attention"),
        _m("a", "batch normalization", "operation/normalization", "normalizes each channel over the batch",
           sentence="Batch normalization normalizes each channel over the batch before every ReLU."),
        _m("b", "batch normalization", "operation/normalization", "batch normalization after every convolution",
           sentence="We put batch normalization after every convolution of the stem."),
        _m("b", EVIL, "block/recalibration", BREAKOUT),
    ]  # fmt: skip
    out = consolidate(mentions, t, Embedder())
    tree = AttributeTree.build(t, out["attributes"], [{"name": "a", "title": "Paper A"}, {"name": "b", "title": "Paper B"}])
    return write_tree_html(tree, tmp_path_factory.mktemp("html") / "tree.html")


def test_page_loads_offline_without_errors(page_file):
    with page_for(page_file) as (page, problems):
        assert page.locator("#count").inner_text() == "4 of 4 ideas"  # (one idea from two papers)
        assert page.locator("details.level").count() == 3
        assert problems == []


def test_search_box_filters_and_quotes_are_shown(page_file):
    with page_for(page_file) as (page, problems):
        page.fill("#q", "attention")
        assert page.locator("#count").inner_text() == "1 of 4 ideas"
        visible = page.locator(".attr:not(.hidden) .name")
        assert visible.all_inner_texts() == ["self-attention"]
        quote = page.locator(".attr:not(.hidden) blockquote").inner_text()
        assert "attention weighs every token against every other" in quote
        assert "Paper B, page 3" in page.locator(".attr:not(.hidden) .where").inner_text()
        page.fill("#q", "")
        page.select_option("#paper", "a")
        assert page.locator("#count").inner_text() == "2 of 4 ideas"
        page.select_option("#paper", "")
        page.select_option("#category", "operation/normalization")
        assert page.locator(".attr:not(.hidden) .name").all_inner_texts() == ["batch normalization"]
        assert problems == []


def test_evidence_is_its_sentence_with_the_span_highlighted_and_the_bias_plot_is_drawn(page_file):
    with page_for(page_file) as (page, problems):
        page.select_option("#category", "operation/normalization")
        quote = page.locator(".attr:not(.hidden) blockquote").first
        assert "Batch normalization normalizes each channel over the batch before every ReLU." in quote.inner_text()
        assert quote.locator("mark").inner_text() == "normalizes each channel over the batch"
        assert "Paper A, page 3" in page.locator(".attr:not(.hidden) .where").first.inner_text()
        page.click("#bias summary")
        # what sampling draws: the one category with two ideas or more (normalization holds one: its share goes
        # to feature extraction, where the closest template example put the injected name too)
        assert page.locator("#bias .row").count() == 3 and page.locator("#bias .fair").count() == 3
        assert page.locator("#bias .cat").all_inner_texts() == ["Feature extraction operators"]
        page.select_option("#category", "")
        assert page.locator(".attr:has(.tag:text-is('not drawn')) .name").all_inner_texts() == ["batch normalization"]
        assert problems == []


def test_a_paper_filter_shows_that_papers_quotes_and_every_tag_is_explained(page_file):
    with page_for(page_file) as (page, problems):
        bn = page.locator(".attr:has(.name:text-is('batch normalization'))")
        assert bn.locator(".src:not(.hidden)").count() == 2  # both papers state it
        page.select_option("#paper", "b")
        assert bn.locator(".src:not(.hidden)").count() == 1  # paper b's quote only, not paper a's on the card
        assert "after every convolution of the stem" in bn.locator(".src:not(.hidden) blockquote").inner_text()
        page.click("#legend summary")
        legend = page.locator("#legend").inner_text()
        for t in page.locator(".tag").all_inner_texts():
            key = "papers" if t.endswith(("paper", "papers")) else t.split(":")[0]
            assert key in legend, t  # every tag shown is in the legend, and has a tooltip
        assert all(page.locator(".attr .tag").evaluate_all("ts => ts.map(t => t.title.length > 0)"))
        assert problems == []


def test_strings_from_papers_cannot_inject(page_file):
    with page_for(page_file) as (page, problems):
        assert page.evaluate("window.__pwned") is None
        assert page.locator("img").count() == 0
        page.fill("#q", "onerror")
        assert page.locator(".attr:not(.hidden) .name").inner_text() == EVIL  # shown as text
        assert BREAKOUT in page.locator(".attr:not(.hidden) blockquote").inner_text()
        assert problems == []
