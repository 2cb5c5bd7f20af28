"""Open-ended spaces: a candidate is one Python file (the candidate contract, docs/candidate-contract.md).

Pure text and AST work, no code is run here: normalising code for duplicate detection, pulling
the code out of an LLM answer, and scaling a model through the default values of its
`build_model` arguments (width, depth, kernel size...) without touching anything else.
"""

from __future__ import annotations

import ast
import hashlib
import math
import re
from typing import Any

import numpy as np

WIDTH = re.compile(r"^(width|channels?|dims?|base|hidden|embed(_dim)?|filters|planes|c|features|init_channels)$")
DEPTH = re.compile(r"^(depth|layers|num_layers|blocks|num_blocks|n|cells|stages|repeats)$")
BUILDER = "build_model"
# what parsing arbitrary text can raise: bad syntax, NUL bytes, and nesting deeper than the parser's
# stack (a model's "-----...1" or "((((...": MemoryError / RecursionError from the parser itself)
_UNPARSABLE = (SyntaxError, ValueError, MemoryError, RecursionError)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) and isinstance(
                first.value.value, str
            ):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


def normalized(source: str) -> str:
    """Code with comments, docstrings and formatting removed (text normalised if it does not parse)."""
    try:
        return ast.unparse(_strip_docstrings(ast.parse(source)))
    except _UNPARSABLE:
        return re.sub(r"\s+", " ", source).strip()


def code_key(source: str) -> str:
    return hashlib.sha256(normalized(source).encode("utf-8", "surrogatepass")).hexdigest()[:20]


def code_blocks(text: str) -> list[str]:
    """The fenced code blocks of an answer, in order (an unclosed last block runs to the end)."""
    blocks = re.findall(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|$)", text, re.S)
    return [b.strip("\n") for b in blocks if b.strip()]


def defined_names(source: str) -> set[str]:
    """Names of the top-level classes and functions of a file."""
    try:
        tree = ast.parse(source)
    except _UNPARSABLE:
        return set()
    return {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}


def extract_code(text: str) -> str | None:
    """The Python file in an LLM answer: the fenced block that defines build_model (else the longest
    fenced block, else the whole answer if it looks like code)."""
    blocks = code_blocks(text)
    with_builder = [b for b in blocks if f"def {BUILDER}" in b]
    if with_builder:
        return max(with_builder, key=len)
    if blocks:
        return max(blocks, key=len)
    if f"def {BUILDER}" in text or re.search(r"^\s*(import|from|class|def)\s", text, re.M):
        return text.strip()
    return None


# the imports a model file most often forgets when a small model retypes it
_COMMON_IMPORTS = {"torch": "import torch", "nn": "from torch import nn", "F": "import torch.nn.functional as F",
                   "math": "import math"}  # fmt: skip


def add_missing_imports(source: str) -> tuple[str, list[str]]:
    """The file with `import torch` / `from torch import nn` / `import torch.nn.functional as F` /
    `import math` added at the top when it uses the name but never binds it; (source, lines added).
    Only these four names: anything else that is undefined stays the candidate's error."""
    try:
        tree = ast.parse(source)
    except _UNPARSABLE:
        return source, []
    bound: set[str] = set()
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name):
            (bound if isinstance(node.ctx, ast.Store) else used).add(node.id)
    added = [line for name, line in _COMMON_IMPORTS.items() if name in used and name not in bound]
    if not added:
        return source, []
    at = 0  # after the module docstring and any `from __future__` import, which must come first
    for node in tree.body:
        if (isinstance(node, ast.ImportFrom) and node.module == "__future__") or (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            and at == 0 and node is tree.body[0]
        ):  # fmt: skip
            at = node.end_lineno
        else:
            break
    lines = source.split("\n")
    return "\n".join(lines[:at] + added + lines[at:]), added


def own_frames(tb: str) -> str:
    """A traceback as a prompt shows it: the candidate's own frames (File "candidate.py") and the error,
    without the torch library frames between them, which a model cannot change."""
    lines = tb.rstrip("\n").split("\n")
    out, keep = [], True
    for line in lines:
        if line.startswith("  File "):
            keep = '"candidate.py"' in line
        elif not line.startswith(" "):
            keep = True  # the exception line(s)
        if keep:
            out.append(line)
    return "\n".join(out) + ("\n" if out else "")


def failure_site(tb: str) -> str | None:
    """Where in the candidate's code a failure happened (the innermost own frame's function or class), without
    its source line: quoted to later prompts, a failing line is copied back (a run's one bad default argument
    was in 37 of the next 39 answers)."""
    sites = re.findall(r'^  File "candidate\.py", line \d+, in (.+)$', tb, re.M)
    if not sites:
        return None
    return "at import" if sites[-1] == "<module>" else f"in {sites[-1]}"


def builder_defaults(source: str) -> dict[str, Any]:
    """Numeric default values of build_model's arguments (the model's scaling knobs)."""
    fn = _builder(source)
    if fn is None:
        return {}
    out = {}
    for arg, default in _defaults(fn):
        if isinstance(default, ast.Constant) and isinstance(default.value, (int, float)) and not isinstance(
            default.value, bool
        ):
            out[arg.arg] = default.value
    return out


def _builder(source: str):
    try:
        tree = ast.parse(source)
    except _UNPARSABLE:
        return None
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == BUILDER), None)


def _defaults(fn: ast.FunctionDef):
    a = fn.args
    pos = a.posonlyargs + a.args
    pairs = list(zip(pos[len(pos) - len(a.defaults) :], a.defaults))
    pairs += [(k, d) for k, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
    return pairs


def with_defaults(source: str, changes: dict[str, Any]) -> str:
    """The same file with some of build_model's default values replaced (formatting kept)."""
    fn = _builder(source)
    if fn is None:
        return source
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    edits = []
    for arg, default in _defaults(fn):
        if arg.arg in changes:
            start = offsets[default.lineno - 1] + default.col_offset
            end = offsets[default.end_lineno - 1] + default.end_col_offset
            edits.append((start, end, repr(changes[arg.arg])))
    for start, end, text in sorted(edits, reverse=True):
        source = source[:start] + text + source[end:]
    return source


def restore_defaults(parent: str, child: str) -> tuple[str, dict[str, Any]]:
    """`child` with build_model's default values put back to the parent's, where the child changed
    them beside a change of the network: a small model retyping a file drifts back to the defaults
    it sees in the classes (undoing the parent's scaling) although it was told to keep them. A child
    whose only change is those defaults (depth scaling, say) keeps its values. Returns (code, the
    restored {argument: parent's value})."""
    before, after = builder_defaults(parent), builder_defaults(child)
    restored = {k: v for k, v in before.items() if k in after and after[k] != v}
    if not restored:
        return child, {}
    code = with_defaults(child, restored)
    if normalized(code) == normalized(parent):  # the defaults were the whole change: a deliberate one
        return child, {}
    return code, restored


def _round_width(v: float, like: int, down: bool = False) -> int:
    step = 8 if like % 8 == 0 and like >= 64 else 4 if like % 4 == 0 and like >= 16 else 1
    q = v / step
    return max(step, int(math.floor(q) if down else round(q)) * step)


def scale(source: str, kind: str, rng: np.random.Generator, factor: float = 1.3) -> tuple[str, dict] | None:
    """kind 'up': grow width and/or depth; 'down': shrink them by `factor`; 'tune': move one other
    numeric knob (kernel size, expansion, ratio, dropout...) to a neighbouring value.
    Returns (new source, the changes) or None when the model exposes no such knob."""
    d = builder_defaults(source)
    widths = {k: v for k, v in d.items() if WIDTH.match(k)}
    depths = {k: v for k, v in d.items() if DEPTH.match(k)}
    changes: dict[str, Any] = {}
    if kind in ("up", "down"):
        sign = 1 if kind == "up" else -1
        use_depth = bool(depths) and (not widths or rng.random() < 0.5)  # width or depth, not both at once
        if widths and not use_depth:
            for k, v in widths.items():
                nv = v * factor**sign
                changes[k] = _round_width(nv, v) if isinstance(v, int) else round(nv, 3)
        if use_depth:
            k = sorted(depths)[int(rng.integers(len(depths)))]
            v = depths[k]
            changes[k] = max(1, v + sign) if isinstance(v, int) else round(v * factor**sign, 3)
    elif kind == "tune":
        others = {k: v for k, v in d.items() if k not in widths and k not in depths and k not in ("num_classes", "in_chans")}
        if others:
            k = sorted(others)[int(rng.integers(len(others)))]
            v = others[k]
            if "kernel" in k and isinstance(v, int):
                changes[k] = int(rng.choice([x for x in (3, 5, 7) if x != v] or [v + 2]))
            elif isinstance(v, float) and 0 <= v < 1:
                changes[k] = round(float(np.clip(v + rng.choice([-0.1, 0.1]), 0.0, 0.9)), 3)
            elif isinstance(v, int):
                changes[k] = max(1, int(round(v * rng.choice([0.75, 1.5]))))
            else:
                changes[k] = round(v * float(rng.choice([0.75, 1.5])), 3)
    changes = {k: v for k, v in changes.items() if v != d.get(k)}
    if not changes:
        return None
    return with_defaults(source, changes), changes


def shrink_to_budget(source: str, params: int, budget: int) -> tuple[str, dict] | None:
    """Shrink the width knobs so that params (roughly quadratic in width) fit the budget, with 10% room."""
    d = builder_defaults(source)
    widths = {k: v for k, v in d.items() if WIDTH.match(k)}
    if not widths or params <= 0:
        return None
    f = math.sqrt(0.9 * budget / params)
    changes = {k: (_round_width(v * f, v, down=True) if isinstance(v, int) else round(v * f, 3)) for k, v in widths.items()}
    changes = {k: v for k, v in changes.items() if v != d[k]}
    return (with_defaults(source, changes), changes) if changes else None


class CodeSpace:
    """The open-ended space: any Python file is a genotype; the evaluator decides what it is worth."""

    name = "open"

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset

    def is_valid(self, genotype: str) -> bool:
        return bool(genotype and genotype.strip())

    def parse(self, genotype: str):
        if not self.is_valid(genotype):
            raise ValueError("the proposal holds no code")
        return genotype

    def key(self, genotype: str) -> str:
        return code_key(genotype)

    def describe(self, genotype: str) -> str:
        return summary(genotype)


def summary(source: str, limit: int = 160) -> str:
    """One line that tells models apart in a prompt, read from the code without running it: the
    torch.nn layers it builds (how often each appears in the text) and build_model's knobs, e.g.
    "Conv1d, BatchNorm1d, GELU, Linear; width=32, depth=4, kernel_size=5"."""
    try:
        tree = ast.parse(source)
    except _UNPARSABLE:
        return (source.strip().splitlines() or [""])[0][:limit]
    counts: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            base = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
            if name and name[:1].isupper() and (base in ("nn", "torch") or name in _NN_LAYERS):
                counts[name] = counts.get(name, 0) + 1
    layers = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in counts.items() if k not in ("Sequential", "ModuleList"))
    knobs = ", ".join(f"{k}={v}" for k, v in builder_defaults(source).items() if k not in ("num_classes", "in_chans"))
    text = "; ".join(x for x in (layers or "no torch.nn layers", knobs) if x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# layer classes named without the `nn.` prefix (from torch.nn import Conv1d, ...)
_NN_LAYERS = {"Conv1d", "Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "ReLU", "GELU",
              "SiLU", "Dropout", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d",
              "AdaptiveAvgPool2d", "MultiheadAttention", "Embedding", "Identity", "Flatten"}  # fmt: skip


# -- inferred input sizes: the commonest shape error a small model writes, fixed without a call ----
# layer -> (its lazy twin, the keyword of the input size it stops taking)
_LAZY = {"Linear": ("LazyLinear", "in_features"), "Conv1d": ("LazyConv1d", "in_channels"),
         "Conv2d": ("LazyConv2d", "in_channels"), "Conv3d": ("LazyConv3d", "in_channels"),
         "ConvTranspose1d": ("LazyConvTranspose1d", "in_channels"),
         "ConvTranspose2d": ("LazyConvTranspose2d", "in_channels"),
         "BatchNorm1d": ("LazyBatchNorm1d", "num_features"), "BatchNorm2d": ("LazyBatchNorm2d", "num_features"),
         "InstanceNorm1d": ("LazyInstanceNorm1d", "num_features"),
         "InstanceNorm2d": ("LazyInstanceNorm2d", "num_features")}  # fmt: skip


def infer_input_sizes(source: str) -> tuple[str, int] | None:
    """The model with every torch.nn layer that takes its input size (Linear, ConvNd, BatchNormNd, ...)
    turned into its lazy twin (nn.LazyLinear, ...), which reads that size from the first batch.

    Most of the children a 1.5B model writes that fail, fail on one number: a head's in_features or
    a block's in_channels that does not match what arrives (docs/performance.md). The layers, their
    outputs and so the network are the model's own; only the input sizes it got wrong are taken from
    the data, the way a person would fix them. Returns (code, layers changed), or None when nothing
    changes. The worker materialises lazy layers with one forward pass before counting parameters."""
    try:
        tree = ast.parse(source)
    except _UNPARSABLE:
        return None
    changed = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in _LAZY and (
            (isinstance(f.value, ast.Name) and f.value.id == "nn") or (isinstance(f.value, ast.Attribute) and f.value.attr == "nn")
        ):  # fmt: skip
            layer = f.attr
        elif isinstance(f, ast.Name) and f.id in _LAZY:
            layer = f.id
        else:
            continue
        lazy, kw = _LAZY[layer]
        if any(k.arg == kw for k in node.keywords):
            node.keywords = [k for k in node.keywords if k.arg != kw]
        elif node.args and not isinstance(node.args[0], ast.Starred) and not any(k.arg is None for k in node.keywords):
            node.args = node.args[1:]
        else:  # *args / **kwargs: which value is the input size cannot be told; the layer stays
            continue
        nn_ = f.value if isinstance(f, ast.Attribute) else ast.Attribute(ast.Name("torch", ast.Load()), "nn", ast.Load())
        node.func = ast.Attribute(nn_, lazy, ast.Load())
        changed += 1
    if not changed:
        return None
    code, _ = add_missing_imports(ast.unparse(tree) + "\n")
    return code, changed
