"""Parsing PDFs: reading order over two columns, headings, captions, tables, references, front
matter; and one clear line for each kind of broken file."""

import pytest

from fairnad.ingest.pdf import PaperError, normalize, parse_pdf

from pdfs import make_encrypted, make_image_only, make_paper, make_truncated


@pytest.fixture
def paper(tmp_path):
    return parse_pdf(make_paper(tmp_path / "paper.pdf"))


def test_two_columns_read_left_then_right(paper):
    text = paper.pages[0].text
    left = text.index("depthwise step and a pointwise step")
    right = text.index("squeeze-and-excitation module")
    assert left < right  # the whole left column before the right one, although the right starts higher


def test_headings_sections_and_references(paper):
    titles = [s.title for s in paper.sections]
    assert "1 Introduction" in titles and "2 Method" in titles and "3 Experiments" in titles
    method = next(s for s in paper.sections if s.title == "2 Method")
    assert "batch normalization" in method.text and method.pages[0][0] == 1
    assert "Deep residual learning for image recognition" in paper.references
    assert "Deep residual learning" not in " ".join(s.text for s in paper.sections)  # set apart


def test_caption_table_and_front_matter(paper):
    assert any(c.startswith("Table 1.") for c in paper.pages[0].captions)
    table = paper.pages[0].tables[0]
    assert "|Model|Params|Top-1|" in table.replace(" ", "") and "74.9" in table
    assert paper.title == "Residual Blocks with Separable Convolutions"
    assert paper.authors == ["Ada Lovelace", "Alan Turing"]
    assert paper.year == 2024
    assert len(paper.sha256) == 64 and len(paper.pages) == 2


def test_hyphenation_and_ligatures_are_repaired():
    assert normalize("classiﬁcation  with   ﬂow") == "classification with flow"
    from fairnad.ingest.pdf import _join_lines

    assert _join_lines(["a deep archi-", "tecture works"]) == "a deep architecture works"
    assert _join_lines(["state-of-the-", "Art"]) == "state-of-the- Art"
    # a break inside a compound keeps its hyphen (DenseNet, SENet, ViT and Swin break "state-of-the-art" so)
    assert _join_lines(["the current state-of-", "the-art results"]) == "the current state-of-the-art results"
    assert _join_lines(["previous state-of-the-", "art by far"]) == "previous state-of-the-art by far"


@pytest.mark.parametrize(
    "maker,reason",
    [
        (lambda p, src: p.write_bytes(b"") or p, "empty file (0 bytes)"),
        (lambda p, src: p.write_text("<html><body>Not found</body></html>") or p, "not a PDF (it starts like HTML"),
        (lambda p, src: p.write_bytes(b"\x00\x01binary junk" * 20) or p, "not a PDF (it starts like binary data"),
        (lambda p, src: make_encrypted(p), "encrypted (it needs a password)"),
        (lambda p, src: make_image_only(p), "scanned pages with no text layer; run OCR"),
        (lambda p, src: make_truncated(p, src), "damaged or truncated PDF"),
    ],
)
def test_broken_files_get_one_line(tmp_path, maker, reason):
    src = make_paper(tmp_path / "good.pdf")
    bad = tmp_path / "bad.pdf"
    maker(bad, src)
    with pytest.raises(PaperError) as e:
        parse_pdf(bad)
    msg = str(e.value)
    assert msg.startswith(str(bad)) and reason in msg and "\n" not in msg


def test_page_cap(tmp_path):
    doc = parse_pdf(make_paper(tmp_path / "p.pdf"), max_pages=1)
    assert len(doc.pages) == 1 and doc.skipped_pages == 1


def test_a_failing_table_finder_costs_the_tables_and_says_so(tmp_path, monkeypatch):
    import pymupdf

    def broken(self, *args, **kwargs):
        raise RuntimeError("no cells\nhere")

    monkeypatch.setattr(pymupdf.Page, "find_tables", broken)
    doc = parse_pdf(make_paper(tmp_path / "paper.pdf"))
    assert doc.pages[0].tables == [] and "depthwise step" in doc.pages[0].text  # the rest is read
    assert doc.warnings and doc.warnings[0].startswith("page 1: tables not read")
    assert "RuntimeError: no cells here" in doc.warnings[0]
    monkeypatch.undo()
    assert parse_pdf(make_paper(tmp_path / "fine.pdf")).warnings == []
