"""Build (or extend) an attribute tree from a folder of PDFs: parse -> extract -> verify -> consolidate.

State lives in a build folder (SQLite `build.db`): each paper's mentions are committed with the
paper, every LLM call is recorded, and identical prompts are answered from that record, so a
resumed build skips the papers already done and re-asks nothing.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairnad.ingest.pdf import Document, PaperError, parse_pdf
from fairnad.knowledge.candidates import background_sections, experiment_sections, no_source_places
from fairnad.knowledge.consolidate import MERGE_AT, SOURCE_KEYS, attribute_order, consolidate, example_phrases
from fairnad.knowledge.crosslink import MIN_SENTENCES, PaperIndex, examples_found, link_by_name, name_patterns
from fairnad.knowledge.embed import Embedder
from fairnad.knowledge.evidence import split_sentences
from fairnad.knowledge.extract import extract_paper
from fairnad.knowledge.template import Template
from fairnad.knowledge.tree import AttributeTree
from fairnad.llm import RecordingLLM
from fairnad.store import BuildStore


@dataclass
class BuildOptions:
    candidates: int = 40  # a paper's candidate ideas (candidates.py) the model names and files, at most
    max_pages: int = 200
    temperature: float = 0.0
    confirm_duplicates: bool = False  # ask the LLM about near-duplicates (only worth it with a capable model)
    merge_at: float = MERGE_AT
    find_by_name: int = MIN_SENTENCES  # a paper stating an idea's name in this many sentences gets a source (0: off)
    template_examples: bool = True  # the template's examples that papers state become ideas too


Progress = Callable[[str, str], None]  # (paper name, stage)


def find_pdfs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() == ".pdf")


def _sha(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return hashlib.sha256(str(path).encode()).hexdigest()


def read_pdf(path: Path, max_pages: int) -> Document:
    """A paper parsed once per build process: extraction and the look-up by name read the same papers,
    and parsing the 13 shipped papers takes about a minute. Keyed by the file's size and mtime, so a
    paper changed since is read afresh."""
    try:
        st = path.stat()
    except OSError:
        return parse_pdf(path, max_pages)  # which says what is wrong with the file, as PaperError
    return _read_pdf(str(path), st.st_size, st.st_mtime_ns, max_pages)


@functools.lru_cache(maxsize=64)
def _read_pdf(path: str, size: int, mtime_ns: int, max_pages: int) -> Document:
    return parse_pdf(path, max_pages)


def process_papers(
    pdfs: list[Path], template: Template, store: BuildStore, llm: RecordingLLM, opts: BuildOptions,
    progress: Progress | None = None, embedder: Embedder | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Extract every paper not done yet; returns one summary per paper (done now, earlier, or skipped).
    With an `embedder`, headings, proposals and captions far from every template example are left out
    before the model is asked (candidates.NOISY_AT)."""
    note = progress or (lambda paper, stage: None)
    likeness = design_likeness(template, embedder) if embedder is not None else None
    out = []
    for path in pdfs:
        sha = _sha(path)
        prior = store.paper(sha)
        if prior is not None and prior["status"] in ("done", "skipped"):
            note(path.name, "already done" if prior["status"] == "done" else "skipped before")
            out.append({**prior, "resumed": True})
            continue
        t0 = time.time()
        note(path.name, "parsing")
        try:
            doc = read_pdf(path, opts.max_pages)
        except PaperError as err:
            row = {"sha256": sha, "path": str(path), "name": path.stem, "status": "skipped", "error": str(err)}
            store.record_paper(row, [])
            note(path.name, "skipped")
            out.append(row)
            continue
        parse_s = time.time() - t0
        note(path.name, "extracting")
        res = extract_paper(doc, template, llm, candidates=opts.candidates, design_likeness=likeness,
                            temperature=opts.temperature,
                            on_batch=lambda i, n: note(path.name, f"naming candidates {i}/{n}"))  # fmt: skip
        stats = {**res.stats, "parse_seconds": round(parse_s, 3), "pages_per_second": round(len(doc.pages) / max(parse_s, 1e-9), 2),
                 "skipped_pages": doc.skipped_pages, "warnings": doc.warnings}  # fmt: skip
        row = {"sha256": doc.sha256, "path": str(path), "name": doc.name, "title": doc.title, "authors": doc.authors,
               "year": doc.year, "pages": len(doc.pages), "status": "done", "stats": stats,
               "seconds": round(time.time() - t0, 3)}  # fmt: skip
        store.record_paper(row, res.mentions)
        note(path.name, "done")
        out.append(row)
    return out


def design_likeness(template: Template, embedder: Embedder):
    """phrases -> the cosine of each to its closest template example (or phrase inside one)."""
    examples = embedder.encode([p.lower() for _, c in template.categories() for p, _ in example_phrases(c.examples)])
    return lambda phrases: (embedder.encode([p.lower() for p in phrases]) @ examples.T).max(axis=1).tolist() if phrases else []


def assemble(template: Template, store: BuildStore, embedder: Embedder, opts: BuildOptions, llm=None,
             extra_mentions: list[dict] | None = None, extra_papers: list[dict] | None = None,
             **meta: Any) -> tuple[AttributeTree, dict]:  # fmt: skip
    """Consolidate every verified mention in the store (plus `extra_mentions`) into a tree.
    `extra_papers`: an earlier tree's papers (title, authors, year, pages...), kept as they were."""
    papers = {p["sha256"]: p for p in store.papers() if p["status"] == "done"}
    mentions = [
        {**m, "paper": papers[m["paper"]]["name"], "title": papers[m["paper"]]["title"]}
        for m in store.mentions(verified_only=True) if m["paper"] in papers
    ] + list(extra_mentions or [])  # fmt: skip
    readable = readable_papers(list(papers.values()), opts.max_pages)
    mentions, dropped = sources_that_stand(mentions, readable)
    report = consolidate(mentions, template, embedder, llm=llm if opts.confirm_duplicates else None, merge_at=opts.merge_at)
    report["sources_dropped"] = dropped
    readable = readable if opts.find_by_name else []
    report["found_by_name"] = link_by_name(report["attributes"], readable, opts.find_by_name)
    if opts.template_examples:
        examples = examples_found(template, report["attributes"], readable, opts.find_by_name)
        report["attributes"] += examples
        report["empty_categories"] = [c for c in report["empty_categories"] if c not in {a["category"] for a in examples}]
        report["found_by_name"]["template_examples"] = len(examples)
    report["attributes"].sort(key=attribute_order)  # again: the lookups changed frequencies and added examples
    paper_list = [{k: p.get(k) for k in ("name", "title", "authors", "year", "pages", "sha256")} for p in papers.values()]
    known = {p["name"] for p in paper_list}
    carried = [*(extra_papers or []), *({"name": m["paper"], "title": m.get("title")} for m in extra_mentions or [])]
    for p in carried:  # papers carried over from an earlier tree, with what it knew of them
        if p["name"] not in known:
            paper_list.append(p)
            known.add(p["name"])
    tree = AttributeTree.build(template, report["attributes"], paper_list, empty_categories=report["empty_categories"], **meta)
    return tree, report


def sources_that_stand(mentions: list[dict], papers: list[PaperIndex]) -> tuple[list[dict], int]:
    """The mentions whose sentence stands as a source by the lookups' rules (PaperIndex.source_stands), a
    mention whose sentence does not stand moved to the paper's sentence that states its name and builds
    with it (PaperIndex.restated; once per name and sentence), and how many were dropped: the model named
    a candidate from the best sentence its paper had, and of the 100 sources an independent check of 60
    ideas read (v11), 35 did not say the paper's network uses the idea (findings, explorations, analyses,
    table legends, mentions in passing). A paper that cannot be read again keeps its mentions."""
    index = {p.name: p for p in papers}
    names = {m["name"].lower(): m["name"] for m in mentions}

    def place(m: dict) -> tuple:
        return m["name"].lower(), m["paper"], m.get("page"), m.get("evidence_offset")

    stands = [(p := index.get(m["paper"])) is None or p.source_stands(m) for m in mentions]
    kept = [m for m, ok in zip(mentions, stands) if ok]
    standing = {place(m) for m in kept}
    for m, ok in zip(mentions, stands):
        if ok:
            continue
        others = name_patterns(names.values(), but=[m["name"]])
        if (moved := index[m["paper"]].restated(m, others)) is not None and place(moved) not in standing:
            kept.append(moved)
            standing.add(place(moved))
    return kept, len(mentions) - len(kept)


def readable_papers(rows: list[dict], max_pages: int) -> list[PaperIndex]:
    """The build's papers that can be read again (the same file at its recorded path), as sentences
    to look ideas up in by name; a paper moved or changed since is left out of the lookup."""
    out = []
    for p in rows:
        path = Path(p.get("path") or "")
        if not path.is_file():
            continue
        try:
            doc = read_pdf(path, max_pages)
        except PaperError:
            continue
        if doc.sha256 == p["sha256"]:  # read once: the parse hashes the bytes it read
            out.append(PaperIndex(p["name"], p.get("title"), split_sentences(doc), background_sections(doc, appendix=True),
                                  no_source_places(doc), experiment_sections(doc)))
    return out


def mentions_from_tree(tree: AttributeTree) -> list[dict]:
    """An earlier tree's sources as verified mentions, so a new paper can be consolidated with them."""
    out = []
    for a in tree.attributes():
        for s in a["sources"]:
            out.append({"paper": s["paper"], "title": s.get("title"), "category": a["category"],
                        "subcategory": a.get("subcategory"), "name": a["name"], "description": a.get("description"),
                        "effect": a.get("effect"), "from_template": a.get("from_template", False),
                        **{k: s[k] for k in SOURCE_KEYS if k not in ("paper", "title") and k in s}})  # fmt: skip
    return out
