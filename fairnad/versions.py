"""The versions of what a run or a page was made with (read from package metadata: nothing imported)."""

from __future__ import annotations

import platform
from importlib import metadata

COMPONENTS = ("fairnad", "torch", "timm", "numpy", "pymoo", "plotly", "llama_cpp_python", "qwen-agent", "transformers")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in COMPONENTS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out
