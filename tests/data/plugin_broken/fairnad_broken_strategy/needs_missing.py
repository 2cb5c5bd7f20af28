"""A plug-in whose import fails: it needs a package that is not installed."""

import fairnad_no_such_dependency  # noqa: F401
