"""Parse a paper PDF with PyMuPDF into a Document the knowledge pipeline can cite.

Per page: text in reading order (two columns handled: full-width blocks break the page into
bands, each read left column then right), section headings (font size and weight), figure and
table captions, tables (`find_tables`, kept as markdown), hyphenation repaired, ligatures
unfolded. The references section is set apart. Title, authors and year when the PDF says them.
A file that cannot be read gets a `PaperError` with one line naming the file and the reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import statistics
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("PYMUPDF_SUGGEST_LAYOUT_ANALYZER", "0")
import pymupdf  # noqa: E402

pymupdf.TOOLS.mupdf_display_errors(False)  # damaged files are reported by us, in one line, not by MuPDF on stderr

CAPTION = re.compile(r"^(fig\.?|figure|table|tab\.)\s*\d+", re.I)
REFERENCES = re.compile(r"^(\d+\.?\s*)?(references|bibliography|literature cited)\s*$", re.I)
NUMBERED = re.compile(r"^(\d+(\.\d+)*\.?|[A-Z]\.(\d+\.?)*)\s+\S")


class PaperError(Exception):
    """A paper that cannot be used; str() is one line naming the file and the reason."""


@dataclass
class Section:
    title: str
    level: int
    pages: list[tuple[int, str]] = field(default_factory=list)  # (page number, text) segments

    @property
    def text(self) -> str:
        return "\n".join(t for _, t in self.pages)


@dataclass
class Page:
    number: int  # 1-based
    text: str
    headings: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)  # markdown
    runins: list[str] = field(default_factory=list)  # bold or italic paragraph heads ("Growth rate."), as in the text


@dataclass
class Document:
    path: str
    sha256: str
    title: str
    authors: list[str]
    year: int | None
    pages: list[Page]
    sections: list[Section]
    references: str
    skipped_pages: int = 0  # past max_pages
    warnings: list[str] = field(default_factory=list)  # what was read only in part, e.g. a page's tables

    @property
    def name(self) -> str:
        return Path(self.path).stem

    def page_text(self, number: int) -> str:
        return self.pages[number - 1].text if 1 <= number <= len(self.pages) else ""


def normalize(text: str) -> str:
    """NFKC (unfolds ligatures such as 'ﬁ'), one kind of dash and quote, single spaces."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text)
    text = re.sub(r"[\u2018\u2019\u201b\u2032]", "'", text)
    text = re.sub(r"[\u201c\u201d\u201f\u2033]", '"', text)
    return re.sub(r"\s+", " ", text).strip()


def _join_lines(lines: list[str]) -> str:
    """Join a block's lines, repairing 'archi-' + 'tecture' breaks that PyMuPDF left. A break inside a
    compound ('state-of-' + 'the-art', 'state-of-the-' + 'art') keeps its hyphen: the word before the
    break or the one after it already has one."""
    out = ""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if out.endswith("-") and len(out) > 1 and out[-2].isalpha() and line[:1].islower():
            before, after = out[:-1].rsplit(" ", 1)[-1], line.split(" ", 1)[0]
            out = out + line if "-" in before or "-" in after else out[:-1] + line
        else:
            out = f"{out} {line}" if out else line
    return out


@dataclass
class _Block:
    x0: float
    y0: float
    x1: float
    y1: float
    text: str
    size: float
    bold: bool
    lines: int
    spans: list[str] = field(default_factory=list)
    runin: str | None = None  # a bold or italic head the paragraph starts with ("Dense connectivity.")
    raw: str = ""  # the lines as the PDF spells them (spans joined as they are: small capitals stay words)


def _blocks(page, margin: list[str] | None = None) -> list[_Block]:
    """Horizontal text blocks; rotated text (arXiv stamps in the margin) goes to `margin`."""
    d = page.get_text("dict", flags=pymupdf.TEXT_DEHYPHENATE | pymupdf.TEXT_PRESERVE_WHITESPACE)
    out = []
    for b in d["blocks"]:
        if b.get("type") != 0:
            continue
        rows = [line for line in b["lines"] if abs(line.get("dir", (1, 0))[0]) > 0.9]
        if len(rows) < len(b["lines"]) and margin is not None:
            margin.append(normalize(" ".join(s["text"] for line in b["lines"] for s in line["spans"])))
        spans = [s for line in rows for s in line["spans"] if s["text"].strip()]
        if not spans:
            continue
        lines = [" ".join(s["text"] for s in line["spans"]) for line in rows]
        chars = sum(len(s["text"]) for s in spans)
        size = sum(s["size"] * len(s["text"]) for s in spans) / max(1, chars)
        bold = sum(len(s["text"]) for s in spans if s["flags"] & 16 or "bold" in s["font"].lower()
                   or s["font"].endswith(("-Medi", "-Bold", ".B"))) > chars / 2  # fmt: skip
        text = _small_caps(normalize(_join_lines(lines)))
        if text:
            x0, y0, x1, y1 = b["bbox"]
            raw = normalize(" ".join("".join(s["text"] for s in line["spans"]) for line in rows))
            out.append(_Block(x0, y0, x1, y1, text, size, bold, len(rows), [normalize(s["text"]) for s in spans],
                              _runin(spans, text), raw))  # fmt: skip
    return out


def _emphasised(span: dict) -> bool:
    font = span["font"].lower()
    return bool(span["flags"] & (16 | 2)) or any(k in font for k in ("bold", "ital", "medi", "obli")) or \
        span["font"].endswith((".B", ".I"))  # fmt: skip


def _runin(spans: list[dict], text: str) -> str | None:
    """The head of a paragraph that starts with bold or italic words ending in a period or colon and goes
    on in plain text: "Growth rate." of "Growth rate. If each function ..." (as it stands in `text`)."""
    head = ""
    for i, sp in enumerate(spans):
        if not _emphasised(sp):
            break
        head += " " + sp["text"]
        if re.search(r"[.:]\s*$", sp["text"]) or spans[i + 1 : i + 2] and spans[i + 1]["text"].lstrip()[:1] in (".", ":"):
            rest = spans[i + 1 :]
            if not rest or not any(not _emphasised(r) and r["text"].strip() for r in rest):
                return None  # a heading or caption on its own, not a paragraph's head
            h = normalize(head).rstrip(" .:")
            words = h.split()
            if 1 <= len(words) <= 7 and sum(c.isalpha() for c in h) >= 3 and not CAPTION.match(h) \
                    and not NUMBERED.match(h) and text.startswith(h):  # fmt: skip
                return h
            return None
    return None


def _reading_order(blocks: list[_Block], width: float) -> list[_Block]:
    """Full-width blocks split the page into bands; inside a band, the left column, then the right."""
    mid = width / 2
    ordered, left, right = [], [], []

    def flush():
        ordered.extend(sorted(left, key=lambda b: b.y0))
        ordered.extend(sorted(right, key=lambda b: b.y0))
        left.clear()
        right.clear()

    for b in sorted(blocks, key=lambda b: (b.y0, b.x0)):
        if b.x1 <= mid + 12:
            left.append(b)
        elif b.x0 >= mid - 12:
            right.append(b)
        else:  # spans both columns
            flush()
            ordered.append(b)
    flush()
    return ordered


def _small_caps(text: str) -> str:
    """'R EFERENCES', 'A N I MAGE IS W ORTH': small capitals set as a capital plus smaller capitals."""
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 4 and sum(c.isupper() for c in letters) >= 0.8 * len(letters):
        text = re.sub(r"\b([A-Z]) (?=[A-Z]{2,}\b)", r"\1", text)
    return text


def _is_heading(b: _Block, body: float) -> bool:
    if b.lines > 3 or len(b.text) > 120 or b.text.endswith((".", ",", ";", ":")) and not NUMBERED.match(b.text):
        return False
    if CAPTION.match(b.text) or sum(c.isalpha() for c in b.text) < 3:
        return False
    bigger = b.size >= body + 0.9
    caps = b.text.isupper() and len(b.text) < 60 and (NUMBERED.match(b.text) or REFERENCES.match(b.text))
    return bigger or bool(caps) or (b.bold and b.size >= body - 0.6 and (NUMBERED.match(b.text) is not None or len(b.text) < 60))


def _check_file(path: Path) -> bytes:
    """The file's bytes, or PaperError naming what makes it no usable PDF."""
    if not path.is_file():
        raise PaperError(f"{path}: file not found")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise PaperError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not data:
        raise PaperError(f"{path}: empty file (0 bytes)")
    head = data[:1024]
    tail = data.rstrip(b"\0 \t\r\n\x0c")[-2048:]  # a whole PDF may be followed by padding (NULs, blank lines)
    if b"%PDF-" not in head:
        printable = sum(32 <= c < 127 or c in (9, 10, 13) for c in head) / len(head)
        kind = "HTML" if b"<html" in head.lower() else "text" if printable > 0.95 else "binary data"
        raise PaperError(f"{path}: not a PDF (it starts like {kind}, no %PDF- header)")
    if b"%%EOF" not in tail:
        raise PaperError(f"{path}: damaged or truncated PDF (no end-of-file marker: was the download cut short?)")
    return data


def parse_pdf(path: str | Path, max_pages: int = 200) -> Document:
    """Parse one paper; PaperError (one line, file and reason) when it cannot be used."""
    path = Path(path)
    try:
        return _parse(path, max_pages)
    except PaperError:
        raise
    except Exception as err:  # noqa: BLE001 - one odd file (or a parser bug) must not stop a whole build
        what = " ".join(f"{type(err).__name__}: {err}".split())[:160]
        raise PaperError(f"{path}: could not be parsed ({what}); skipped. Please report this file as a bug") from None


def _parse(path: Path, max_pages: int) -> Document:
    data = _check_file(path)
    try:
        doc = pymupdf.open(stream=data, filetype="pdf")
    except Exception as err:  # noqa: BLE001 - PyMuPDF raises several types for damaged files
        raise PaperError(f"{path}: damaged or truncated PDF ({str(err).splitlines()[0][:120]})") from None
    with doc:
        if doc.needs_pass or doc.is_encrypted:
            raise PaperError(f"{path}: encrypted (it needs a password); decrypt it first, e.g. qpdf --decrypt")
        if doc.page_count == 0:
            raise PaperError(f"{path}: damaged or truncated PDF (no readable pages)")
        n = min(doc.page_count, max_pages)
        raw_pages, margin = [], []
        try:
            for i in range(n):
                page = doc[i]
                raw_pages.append((page, _blocks(page, margin if i == 0 else None)))
        except Exception as err:  # noqa: BLE001
            raise PaperError(f"{path}: damaged or truncated PDF (page {len(raw_pages) + 1}: {err})") from None
        chars = sum(len(b.text) for _, bs in raw_pages for b in bs)
        if chars < 200 * max(1, min(n, 3)) // 3:
            images = sum(len(p.get_images()) for p, _ in raw_pages)
            why = "scanned pages with no text layer" if images else "no extractable text"
            raise PaperError(f"{path}: {why}; run OCR on it first (e.g. ocrmypdf) and build again")
        sizes = [b.size for _, bs in raw_pages for b in bs for _ in range(max(1, len(b.text) // 50))]
        body = statistics.median(sizes) if sizes else 10.0
        pages, sections, refs, warnings = [], [Section("Front matter", 1)], [], []
        in_refs = False
        heading_sizes = sorted({round(b.size) for _, bs in raw_pages for b in bs if _is_heading(b, body)}, reverse=True)
        for page, bs in raw_pages:
            number = page.number + 1
            ordered = [b for b in _reading_order(bs, page.rect.width) if b.size >= body * 0.7]  # drop figure labels
            texts, headings, captions, runins = [], [], [], []
            for b in ordered:
                if _is_heading(b, body):
                    headings.append(b.text)
                    if REFERENCES.match(b.text):
                        in_refs = True
                        continue
                    if not in_refs:
                        level = 1 + (heading_sizes.index(round(b.size)) if round(b.size) in heading_sizes else 0)
                        sections.append(Section(b.text, min(level, 3)))
                        texts.append(b.text)
                        continue
                if CAPTION.match(b.text):
                    captions.append(b.text)
                if in_refs:
                    refs.append(b.text)
                    continue
                if b.runin:
                    runins.append(b.runin)
                texts.append(b.text)
                sec = sections[-1]
                if sec.pages and sec.pages[-1][0] == number:
                    sec.pages[-1] = (number, sec.pages[-1][1] + "\n" + b.text)
                else:
                    sec.pages.append((number, b.text))
            tables = []
            try:  # lines_strict: ruled tables only (highlights and text columns are not tables)
                # ruled tables are made of vector lines: a page without any drawing has none, and
                # skipping the table finder there makes text-only pages ~50x faster to parse
                found = page.find_tables(strategy="lines_strict").tables if page.get_cdrawings() else []
                for t in found:
                    cells = [c for row in t.extract() for c in row if c and c.strip()]
                    if t.row_count >= 2 and t.col_count >= 2 and len(cells) >= 4:
                        tables.append(normalize_table(t.to_markdown().strip()))
            except Exception as err:  # noqa: BLE001 - a table finder failure costs the tables, not the paper
                what = " ".join(f"{type(err).__name__}: {err}".split())[:160]
                warnings.append(f"page {number}: tables not read (the table finder failed: {what})")
            pages.append(Page(number, "\n".join(texts), headings, captions, tables, runins))
        meta = doc.metadata or {}
        first = next((bs for _, bs in raw_pages if bs), [])  # a cover page may be an image: the first page with text
        first_text = next((p.text for p in pages if p.text), "")
        title, authors, year = _front_matter(first, body, meta, " ".join(margin) + " " + first_text)
        total_pages = doc.page_count
    sections = [s for s in sections if s.pages]
    return Document(
        path=str(path), sha256=hashlib.sha256(data).hexdigest(), title=title, authors=authors, year=year,
        pages=pages, sections=sections, references="\n".join(refs), skipped_pages=max(0, total_pages - n),
        warnings=warnings,
    )  # fmt: skip


def normalize_table(md: str) -> str:
    return "\n".join(unicodedata.normalize("NFKC", line) for line in md.splitlines())


SMALL_WORDS = {"a", "an", "the", "of", "for", "and", "or", "in", "on", "at", "to", "by", "with", "via", "vs"}


def _title_case(title: str) -> str:
    """An all-capitals title ("AN IMAGE IS WORTH 16X16 WORDS: TRANSFORMERS ...") in title case."""
    letters = [c for c in title if c.isalpha()]
    if not letters or sum(c.isupper() for c in letters) < 0.9 * len(letters):
        return title
    words = title.lower().split(" ")
    return " ".join(w if (i and w in SMALL_WORDS) else w[:1].upper() + w[1:] for i, w in enumerate(words))


def _layout_title(top: list[_Block]) -> str | None:
    """The title from the first page's layout: the block in the largest type near the top, with the blocks
    of the same size right below it (a title set on two lines may be two blocks: "ShuffleNet V2: Practical
    Guidelines for Efficient" + "CNN Architecture Design"), as the PDF spells it: small capitals set as a
    capital and smaller capitals are joined back into words ("A N I MAGE" was "AN IMAGE")."""
    if not top:
        return None
    big = max(top, key=lambda b: (round(b.size, 1), -b.y0))
    parts, bottom = [big], big.y1
    for b in sorted((b for b in top if b.y0 > big.y0), key=lambda b: b.y0):
        if abs(b.size - big.size) <= 0.5 and b.y0 - bottom <= 1.5 * big.size:
            parts.append(b)
            bottom = b.y1
    return _title_case(normalize(" ".join(b.raw or b.text for b in parts)))


def _front_matter(blocks: list[_Block], body: float, meta: dict, first_page: str):
    title = normalize(meta.get("title") or "")
    top = [b for b in blocks if b.y0 < 300 and not b.text.startswith("arXiv:")]
    if len(title) < 8 or title.lower().startswith(("microsoft word", "untitled")) or title.endswith((".dvi", ".pdf")):
        title = _layout_title(top or blocks) or title
    authors = [a.strip() for a in re.split(r"[;,]| and ", meta.get("author") or "") if a.strip()]
    if not authors:
        title_block = next((b for b in top if b.text == title or (b.raw and title.lower().startswith(b.raw.lower()))), None)
        below = [b for b in top if title_block is not None and b.y0 > title_block.y1 - 1 and b is not title_block]
        for b in sorted(below, key=lambda b: b.y0)[:3]:
            if re.match(r"(?i)abstract", b.text):
                break
            for span in b.spans:  # one span per name, usually; then commas and 'and' within a span
                for part in re.split(r",|\band\b|\s{2,}|\d|[∗*†‡§]", span):
                    words = part.split()
                    if 2 <= len(words) <= 4 and all(w[:1].isupper() for w in words) and not re.search(
                        r"@|\.(com|edu|org)|Universit|Research|Institute|Google|Microsoft|Facebook|Lab|Inc|Design", part
                    ):
                        authors.append(" ".join(words))
        authors = list(dict.fromkeys(authors))[:20]
    year = None
    m = re.search(r"arXiv:\d{4}\.\d{4,5}(?:v\d+)?\s*\[[^\]]+\]\s*\d{1,2}\s+\w+\s+((?:19|20)\d\d)", first_page)
    if m:
        year = int(m.group(1))
    else:
        m = re.search(r"\b(?:CVPR|ICCV|ECCV|ICLR|ICML|NeurIPS|NIPS|AAAI|IJCAI|BMVC|TPAMI)\W{0,3}((?:19|20)\d\d)\b", first_page)
        if m:
            year = int(m.group(1))
        elif (meta.get("creationDate") or "").startswith("D:"):
            year = int(meta["creationDate"][2:6])
    return title, authors, year
