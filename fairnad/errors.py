"""User-facing errors: each carries one line that names the file or field and what to do."""

from __future__ import annotations


class FairnadError(Exception):
    """An error the CLI prints as one line (no traceback) before exiting with `exit_code`."""

    exit_code = 2


class ConfigError(FairnadError):
    """A config file, flag or data file is malformed."""


class RunLockedError(FairnadError):
    """Another process holds the run directory."""

    exit_code = 4


class RunPaused(FairnadError):
    """The run stopped cleanly before its budget (e.g. the LLM server stopped answering); resumable."""

    exit_code = 3


def one_line(text: str, limit: int | None = None) -> str:
    """`text` fit for a one-line message: line breaks and other control characters (from a user's
    key or value) shown as escapes, and at most `limit` characters."""
    out = "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))
    return out if limit is None or len(out) <= limit else out[: limit - 3] + "..."


def describe_validation_error(source: str, err) -> str:
    """One line for a pydantic ValidationError: the file, the field path and what is wrong."""
    first = err.errors()[0]
    where = ".".join(one_line(p, 80) for p in first.get("loc", ())) or "(top level)"
    more = len(err.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
    return f"{source}: {where}: {one_line(first.get('msg', 'invalid'), 300)}{tail}"
