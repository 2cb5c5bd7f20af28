"""fairnad: architecture papers -> design-knowledge tree -> LLM-in-the-loop architecture search."""

__version__ = "0.2.0"
