"""Knowledge pipeline: template, LLM extraction with verified quotes, consolidation, the attribute tree."""
