"""Section-aware chunks of a paper, each on one page (so a quote maps to one page)."""

from __future__ import annotations

from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from fairnad.ingest.pdf import Document


@dataclass
class Chunk:
    paper: str
    section: str
    page: int
    text: str

    def label(self) -> str:
        return f"[page {self.page}, {self.section[:60]}]"


def chunk_document(doc: Document, size: int = 1000, overlap: int = 120) -> list[Chunk]:
    """Split each section's text page by page (references excluded), plus one chunk per table."""
    splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap, separators=["\n", ". ", " ", ""])
    chunks = []
    for sec in doc.sections:
        for page, text in sec.pages:
            for piece in splitter.split_text(text):
                if len(piece.split()) >= 8:  # headings and figure labels alone say nothing
                    chunks.append(Chunk(doc.name, sec.title, page, piece))
    for page in doc.pages:
        for table in page.tables:
            chunks.append(Chunk(doc.name, "Table", page.number, table[:size]))
    return chunks
