"""PDF -> Document: pages in reading order, sections, captions, tables, references, metadata."""

from fairnad.ingest.pdf import Document, PaperError, parse_pdf

__all__ = ["Document", "PaperError", "parse_pdf"]
