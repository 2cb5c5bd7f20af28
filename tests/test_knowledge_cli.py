"""`fairnad knowledge ...` as a user runs it, with the real embedded model end to end."""

import json
import re
from pathlib import Path

import pytest

from pdfs import make_paper
from test_knowledge import MINI


@pytest.mark.llm
@pytest.mark.slow
def test_build_with_the_embedded_model_then_inspect(run_cli, tmp_path):
    papers = tmp_path / "papers"
    make_paper(papers / "residual.pdf")
    (papers / "broken.pdf").write_text("this is not a pdf")
    (papers / "empty.pdf").write_bytes(b"")
    (tmp_path / "mini.yaml").write_text(MINI)
    p = run_cli("knowledge", "build", "papers", "--template", "mini.yaml", "--out", "knowledge/t.json",
                "--candidates", "8", "--json")  # fmt: skip
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["papers"] == 1 and len(s["skipped"]) == 2
    assert any("not a PDF" in k["reason"] for k in s["skipped"]) and any("empty file" in k["reason"] for k in s["skipped"])
    a = s["attributes"]
    assert a["proposed"] == a["verified"] + a["rejected"]
    # the candidates are named in batches of 8: a one-page paper's fit in one call
    assert s["llm"]["calls"] == 1 and s["llm"]["tokens_in"] > 0 and 1 <= a["proposed"] <= 8
    assert (tmp_path / "knowledge" / "t.json").is_file() and (tmp_path / "knowledge" / "t.graphml").is_file()
    assert (tmp_path / "runs" / "knowledge-t" / "build.db").is_file()
    # a second build resumes: the paper is not read again, no new LLM call is made
    again = json.loads(run_cli("knowledge", "build", "papers", "--template", "mini.yaml", "--out", "knowledge/t.json",
                               "--json").stdout)  # fmt: skip
    assert again["llm"]["calls"] == 0
    shown = json.loads(run_cli("knowledge", "show", "knowledge/t.json", "--json").stdout)
    assert [c["path"] for lv in shown["levels"] for c in lv["categories"]] == ["operation/normalization",
                                                                                "operation/feature-extraction"]  # fmt: skip
    stats = json.loads(run_cli("knowledge", "stats", "knowledge/t.json", "--json").stdout)
    assert stats["papers"] == 1 and len(stats["categories"]) == 2
    html = json.loads(run_cli("knowledge", "browse", "knowledge/t.json", "-o", "t.html", "--json").stdout)
    assert (tmp_path / html["html"]).read_text().startswith("<!DOCTYPE html>")


@pytest.mark.llm
@pytest.mark.slow
def test_a_two_paper_build_with_the_default_model_stores_spans_at_their_offsets(run_cli, tmp_path, architect_server):
    """The default embedded model (Qwen2.5-Coder-1.5B), through the CLI: what it finds is grounded."""
    from fairnad.ingest.pdf import parse_pdf
    from fairnad.knowledge.evidence import span_is_at_its_offsets
    from fairnad.knowledge.tree import AttributeTree

    papers = tmp_path / "papers"
    make_paper(papers / "residual.pdf")
    make_paper(papers / "attention.pdf", title="Attention Everywhere", body=[
        ("1 Method", True),
        ("We normalize each token with layer normalization before the attention and the MLP. Layer normalization "
         "keeps the scale of the residual stream stable during training. Every block uses multi-head "
         "self-attention followed by a two-layer MLP with a GELU activation.", False)])  # fmt: skip
    (tmp_path / "mini.yaml").write_text(MINI)
    p = run_cli("knowledge", "build", "papers", "--template", "mini.yaml", "--out", "knowledge/t.json", "--llm",
                architect_server.base_url, "--model", architect_server.alias, "--json", timeout=1200)  # fmt: skip
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["papers"] == 2 and s["llm"]["calls"] == 2  # one batch of candidates per one-page paper
    assert s["attributes"]["verified"] >= 1, s
    tree = AttributeTree.load(tmp_path / "knowledge" / "t.json")
    docs = {n: parse_pdf(papers / f"{n}.pdf") for n in ("residual", "attention")}
    sources = [x for a in tree.attributes() for x in a["sources"]]
    assert sources and all(
        span_is_at_its_offsets(docs[x["paper"]], x["page"], x["offset"], x["offset"] + x["length"], x["quote"]) for x in sources
    )  # fmt: skip
    assert all(x["evidence"] and x["alignment"] in ("candidate", "name") for x in sources)
    assert any(x["alignment"] == "candidate" for x in sources)  # candidates the model named, not only lookups
    assert s["found_by_name"]["papers_read"] == 2  # both papers read again to look the ideas up by name


def test_knowledge_cli_errors(run_cli, tmp_path):
    (tmp_path / "bad.yaml").write_text(MINI.replace("examples: [batch normalization, layer normalization]", "examples: []"))
    (tmp_path / "papers").mkdir()
    make_paper(tmp_path / "papers" / "a.pdf")
    p = run_cli("knowledge", "build", "papers", "--template", "bad.yaml")
    assert p.returncode == 2 and "bad.yaml:10: levels.0.categories.0.examples" in p.stderr
    p = run_cli("knowledge", "build", "nowhere", "--template", "bad.yaml")
    assert p.returncode == 2
    (tmp_path / "empty").mkdir()
    (tmp_path / "ok.yaml").write_text(MINI)
    p = run_cli("knowledge", "build", "empty", "--template", "ok.yaml")
    assert p.returncode == 2 and "no .pdf files" in p.stderr
    p = run_cli("knowledge", "show", "missing.json")
    assert p.returncode == 2 and "missing.json: tree not found" in p.stderr
    # run from any folder, the default template is the packaged one (not ./templates/fairnad.yaml)
    p = run_cli("knowledge", "build", "empty")
    assert p.returncode == 2 and "no .pdf files" in p.stderr, p.stderr
    (tmp_path / "junk").mkdir()  # only files that are no papers: nothing to build a tree from
    (tmp_path / "junk" / "a.pdf").write_text("this is not a pdf")
    p = run_cli("knowledge", "build", "junk", "--template", "ok.yaml", "--out", "j.json", "--llm", "http://127.0.0.1:1/v1")
    assert p.returncode == 2 and "no paper could be read (junk/a.pdf: not a PDF" in p.stderr, p.stderr
    assert not (tmp_path / "j.json").exists()
    # `knowledge add` of a file that is no paper: refused before the tree is touched
    (tmp_path / "t.json").write_text(json.dumps(_template_tree_data()))
    before = (tmp_path / "t.json").read_bytes()
    (tmp_path / "table.csv").write_text("genotype,acc\na,1\n")
    p = run_cli("knowledge", "add", "table.csv", "--tree", "t.json", "--llm", "http://127.0.0.1:1/v1")
    assert p.returncode == 2 and "table.csv: not a PDF (no %PDF- header)" in p.stderr, p.stderr
    assert (tmp_path / "t.json").read_bytes() == before and not (tmp_path / "runs" / "knowledge-t").exists()


def test_search_and_show_on_the_template_tree(run_cli, tmp_path):
    from fairnad.knowledge.template import load_template
    from fairnad.knowledge.tree import AttributeTree

    from conftest import ROOT

    AttributeTree.from_template(load_template(ROOT / "templates" / "fairnad.yaml")).save(tmp_path / "t.json")
    hits = json.loads(run_cli("knowledge", "search", "t.json", "normalization", "--json").stdout)["hits"]
    assert {h["name"] for h in hits} >= {"batch normalization", "layer normalization"}
    p = run_cli("knowledge", "show", "t.json", "--depth", "2")
    assert p.returncode == 0 and "Normalization (4)" in p.stdout


def _template_tree_data():
    from fairnad.knowledge.template import load_template
    from fairnad.knowledge.tree import AttributeTree

    from conftest import ROOT

    tree = AttributeTree.from_template(load_template(ROOT / "templates" / "fairnad.yaml"))
    return json.loads(json.dumps(__import__("networkx").node_link_data(tree.g, edges="edges"), default=str))


def _first(data, kind):
    return next(n for n in data["nodes"] if n["kind"] == kind)


@pytest.mark.parametrize("damage, expected", [
    (lambda d: _first(d, "level").pop("kind"), r"node 'level:\w+' has kind None"),
    (lambda d: _first(d, "attribute").update(name=None), r"node 'attr:[\w-]+': name: Input should be a valid string"),
    (lambda d: _first(d, "attribute").update(sources="oops"), r"sources: Input should be a valid list"),
    (lambda d: _first(d, "category").pop("path"), r"node 'cat:[\w/-]+': path: Field required"),
    (lambda d: d["edges"].append({"source": "root", "target": "nowhere"}), r"node 'nowhere' has kind None"),
    (lambda d: d["edges"].append({"source": d["edges"][-1]["target"], "target": "root"}), r"do not form one tree"),
    (lambda d: d["graph"].update(version=99), r"tree format version 99, newer than this fairnad reads \(1\); upgrade"),
    (lambda d: _first(d, "attribute").update(mentions="3"), r"mentions: Input should be a valid integer"),
    (lambda d: _first(d, "attribute").update(mentions=float("nan")), r"mentions: Input should be a valid integer"),
    (lambda d: _first(d, "attribute").pop("frequency"), r"frequency: Field required"),
    (lambda d: _first(d, "attribute").update(aliases=None), r"aliases: Input should be a valid list"),
    (lambda d: _first(d, "attribute").update(description=5), r"description: Input should be a valid string"),
    (lambda d: _first(d, "attribute").update(sources=[{"paper": "p", "page": 1, "offset": "7"}]), r"sources.0.offset"),
    (lambda d: d["graph"].update(papers="resnet"), r"papers: Input should be a valid list"),
    (lambda d: d["graph"].pop("template"), r"template: Field required"),
    (lambda d: d.update(nodes="x"), r"it needs 'nodes' and 'edges', each a list of objects"),
])  # fmt: skip
def test_a_damaged_tree_is_one_line_naming_the_file_and_what_is_wrong(run_cli, tmp_path, damage, expected):
    data = _template_tree_data()
    damage(data)
    (tmp_path / "t.json").write_text(json.dumps(data))
    for args in (["knowledge", "stats", "t.json"], ["knowledge", "browse", "t.json", "-o", "b.html"],
                 ["search", "--space", "open", "-s", "fairnad", "-n", "1", "--knowledge", "t.json", "--run-dir", "r"]):
        p = run_cli(*args)
        assert p.returncode == 2 and re.search(r"t.json: (damaged tree file|tree format)", p.stderr), p.stderr
        assert re.search(expected, p.stderr) and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "r").exists()  # refused before a run folder was made


def test_a_tree_file_wins_over_a_shipped_name_in_search_and_knowledge_alike(run_cli, tmp_path, monkeypatch):
    """One rule for `search --knowledge` and the knowledge commands: a file that exists is that file
    (before, the search took the shipped tree where `knowledge show` took the file)."""
    from fairnad.knowledge.template import load_template
    from fairnad.knowledge.tree import AttributeTree
    from fairnad.lifecycle import load_tree

    (tmp_path / "mini.yaml").write_text(MINI)
    AttributeTree.from_template(load_template(tmp_path / "mini.yaml")).save(tmp_path / "papers13")
    monkeypatch.chdir(tmp_path)
    mine = load_tree("papers13")
    assert not mine.papers and len(mine.attributes()) == len(AttributeTree.load(tmp_path / "papers13").attributes())
    shown = json.loads(run_cli("knowledge", "stats", "papers13", "--json").stdout)
    assert shown["attributes"] == len(mine.attributes()) and len(load_tree(None).attributes()) > shown["attributes"]
    p = run_cli("search", "--space", "open", "--knowledge", "nothere.json", "-n", "1")
    assert p.returncode == 2 and "nothere.json" in p.stderr and "Traceback" not in p.stderr


def test_inspecting_shipped_trees_by_name_and_odd_inputs_in_one_line(run_cli, tmp_path):
    """show/search/stats/browse take papers13 and template as --knowledge does; names from papers are
    text, not terminal markup; a folder where a file belongs is one line."""
    for cmd in (["show", "papers13", "--json"], ["stats", "template", "--json"], ["search", "papers13", "conv", "--json"],
                ["browse", "template", "-o", "t.html", "--json"]):  # fmt: skip
        p = run_cli("knowledge", *cmd)
        assert p.returncode == 0 and json.loads(p.stdout), p.stderr
    p = run_cli("knowledge", "stats", "template")
    assert p.returncode == 0 and "no mentions in papers" in p.stdout
    # search: every match counted, the best --limit shown and the cut said; an empty query refused
    p = run_cli("knowledge", "search", "papers13", "convolution", "--limit", "2", "--json")
    found = json.loads(p.stdout)
    assert len(found["hits"]) == 2 and found["total"] > 2
    p = run_cli("knowledge", "search", "papers13", "convolution", "--limit", "2")
    assert p.returncode == 0 and f"the best 2 of {found['total']} matches (--limit)" in p.stderr
    p = run_cli("knowledge", "search", "papers13", " ")
    assert p.returncode == 2 and "give a word to look for" in p.stderr
    data = _template_tree_data()
    _first(data, "attribute").update(name="evil [/x] [bold]idea")  # an LLM's or a paper's text
    (tmp_path / "t.json").write_text(json.dumps(data))
    for cmd in (["show", "t.json"], ["search", "t.json", "evil"], ["stats", "t.json"]):
        p = run_cli("knowledge", *cmd, env={"COLUMNS": "200"})
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
        assert cmd[0] == "stats" or "evil [/x] [bold]idea" in p.stdout
    (tmp_path / "adir").mkdir()
    p = run_cli("knowledge", "show", "adir")
    assert p.returncode == 2 and "adir: a folder, not a tree file" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("knowledge", "browse", "t.json", "-o", "adir")
    assert p.returncode == 2 and "adir: a folder; give -o the HTML file" in p.stderr
    p = run_cli("knowledge", "build", "adir", "--max-pages", "0", "--llm", "http://127.0.0.1:1/v1")
    assert p.returncode == 2 and "--max-pages 0: give a whole number of 1 or more" in p.stderr


@pytest.mark.llm
@pytest.mark.slow
def test_a_tree_holds_the_papers_it_was_given_and_says_which_came_from_an_earlier_build(run_cli, tmp_path):
    """Two trees of the same file name in two folders once shared one build state (both defaulted to
    runs/knowledge-tree): the second held the first one's papers too, and nothing said so."""
    (tmp_path / "mini.yaml").write_text(MINI)
    make_paper(tmp_path / "a" / "residual.pdf")
    make_paper(tmp_path / "b" / "separable.pdf", title="Separable Convolutions Everywhere", extra_page=False)
    build = ["knowledge", "build", "--template", "mini.yaml", "--candidates", "4", "--json"]
    first = json.loads(run_cli(*build[:2], "a", *build[2:], "--out", "x/tree.json").stdout)
    p = run_cli(*build[:2], "b", *build[2:], "--out", "y/tree.json")
    assert p.returncode == 0, p.stderr
    second = json.loads(p.stdout)
    assert first["tree_papers"] == ["residual"] and second["tree_papers"] == ["separable"]
    assert second["earlier_papers"] == [] and second["build_dir"] != first["build_dir"]
    held = json.loads(run_cli("knowledge", "stats", "y/tree.json", "--json").stdout)
    assert held["papers"] == 1
    # the same build folder on purpose: the tree holds both, and the summary says which one it was not given
    p = run_cli(*build[:2], "b", *build[2:], "--out", "z/tree.json", "--build-dir", first["build_dir"])
    both = json.loads(p.stdout)
    assert both["tree_papers"] == ["residual", "separable"] and both["earlier_papers"] == ["residual"]
    p = run_cli(*build[:2], "b", *build[2:-1], "--out", "z/tree.json", "--build-dir", first["build_dir"])
    text = " ".join(p.stdout.split())  # (the table wraps long cells)
    assert "not given to this build, from an earlier one" in text and "residual" in text


def test_the_default_build_folder_belongs_to_one_output(tmp_path, monkeypatch):
    """runs/knowledge-<name> serves the output it was made for; another output of the same file name
    gets its own folder (the state records the output under its config)."""
    from fairnad.lifecycle import build_dir_for, open_build

    monkeypatch.chdir(tmp_path)
    first = build_dir_for(Path("x/tree.json"))
    assert first == Path("runs/knowledge-tree")
    open_build(first, {"out": str(Path("x/tree.json").resolve())}).close()
    assert build_dir_for(Path("x/tree.json")) == first  # the same output resumes its build
    other = build_dir_for(Path("y/tree.json"))
    assert other != first and other.name.startswith("knowledge-tree-")
    assert build_dir_for(Path("y/tree.json")) == other  # and keeps it
