"""Code edits as SEARCH/REPLACE blocks (the diff form ShinkaEvolve and OpenEvolve use): a small model
rewrites a few lines of its parent instead of retyping the whole file.

    <<<<<<< SEARCH
    lines copied from the parent
    =======
    the lines that replace them
    >>>>>>> REPLACE

Blocks are applied in order, exactly: the SEARCH text must occur in the current file once. The only
leniency is whitespace at the ends of lines and blank lines around a block, which carry no meaning in
Python. An edit that does not apply is an `EditError` whose message says which block and why, so the
model can be asked again with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLOCK = re.compile(
    r"^[ \t]*<{5,}[ \t]*SEARCH[^\n]*\n(.*?)^[ \t]*={5,}[ \t]*\n(.*?)^[ \t]*>{5,}[ \t]*REPLACE[^\n]*$", re.S | re.M
)


class EditError(ValueError):
    """An edit that cannot be applied to the parent; the message is feedback for the model."""


@dataclass(frozen=True)
class Edit:
    search: str
    replace: str


def parse_edits(text: str) -> list[Edit]:
    """Every SEARCH/REPLACE block in an answer (inside or outside code fences), in order."""
    return [Edit(m.group(1), m.group(2)) for m in _BLOCK.finditer(text)]


def has_edits(text: str) -> bool:
    return bool(re.search(r"^[ \t]*<{5,}[ \t]*SEARCH", text, re.M))


def _lines(text: str) -> list[str]:
    lines = [ln.rstrip() for ln in text.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _find(hay: list[str], needle: list[str]) -> list[int]:
    n = len(needle)
    return [i for i in range(len(hay) - n + 1) if hay[i : i + n] == needle]


def apply_edits(source: str, edits: list[Edit]) -> str:
    """The parent with every edit applied in order; EditError naming the first that does not apply."""
    if not edits:
        raise EditError("the answer has no SEARCH/REPLACE block")
    lines = [ln.rstrip() for ln in source.split("\n")]
    for k, e in enumerate(edits, 1):
        needle = _lines(e.search)
        which = f"block {k} of {len(edits)}" if len(edits) > 1 else "the block"
        if not needle:
            raise EditError(f"{which}: SEARCH is empty; copy the lines to change from the parent")
        hits = _find(lines, needle)
        if not hits:
            first = needle[0].strip()
            near = [i + 1 for i, ln in enumerate(lines) if ln.strip() == first]
            hint = (f" (its first line is at line {near[0]}, but the lines after it differ)" if near
                    else f" (no line of the parent reads {first[:60]!r})")  # fmt: skip
            raise EditError(f"{which}: the SEARCH text is not in the parent{hint}; copy the lines exactly")
        if len(hits) > 1:
            raise EditError(f"{which}: the SEARCH text occurs {len(hits)} times in the parent; include more lines")
        i = hits[0]
        lines[i : i + len(needle)] = _lines(e.replace) if e.replace.strip() else []
    return "\n".join(lines).rstrip("\n") + "\n"


def _keep_methods(lines: list[str], new, old, old_lines: list[str]) -> list[str]:
    """A class written again without some of its methods (a model that rewrote `__init__` only) keeps
    the parent's other methods, re-indented to the new class's body."""
    import ast

    have = {n.name for n in new.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    missing = [n for n in old.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name not in have]
    if not missing or not new.body:
        return lines
    shift = new.body[0].col_offset - missing[0].col_offset
    out = list(lines)
    for m in missing:
        start = min([m.lineno] + [d.lineno for d in m.decorator_list]) - 1
        block = old_lines[start : m.end_lineno]
        out.append("")
        out.extend((" " * shift + ln) if shift >= 0 else ln[min(-shift, len(ln) - len(ln.lstrip())):] for ln in block)
    return out


def _literal(node) -> bool:
    import ast

    try:
        ast.literal_eval(node)
        return True
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False


# -- definitions: the changed classes and functions, merged into the parent by name ----------------
def merge_definitions(parent: str, fragment: str) -> tuple[str, dict[str, list[str]]]:
    """The parent with each top-level class, function or assignment of `fragment` put in place of the
    parent's one of the same name; new ones go just before the first parent definition that uses them
    (else before build_model); imports the parent lacks go after its imports. Small models answer
    this way unprompted (they rewrite the one class they change), and the file they leave out cannot
    lose its imports. Returns (child, {"replaced": [...], "added": [...]}); EditError when the
    fragment does not parse or defines nothing."""
    import ast

    try:
        ptree, ftree = ast.parse(parent), ast.parse(fragment)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        raise EditError(f"the code does not parse ({type(err).__name__}: {getattr(err, 'msg', err)})") from None
    plines, flines = parent.split("\n"), fragment.split("\n")

    def names(node) -> list[str]:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return [node.name]
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            return [t.id for t in targets if isinstance(t, ast.Name)]
        return []

    def span(node, lines) -> tuple[int, int]:  # 0-based [start, end) lines, decorators included
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        return start, node.end_lineno

    def text(node, lines) -> list[str]:
        a, b = span(node, lines)
        return lines[a:b]

    pdefs = {n: node for node in ptree.body for n in names(node)}
    pimports = {ast.unparse(n) for n in ptree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
    replace: dict[int, list[str]] = {}  # parent node index -> new lines
    added: list[tuple[str, list[str]]] = []
    new_imports: list[str] = []
    for node in ftree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if ast.unparse(node) not in pimports:
                new_imports.extend(text(node, flines))
            continue
        ns = names(node)
        if not ns:
            continue  # stray expressions (a usage example, a print) are not part of a model file
        target = next((pdefs[n] for n in ns if n in pdefs), None)
        if target is None and isinstance(node, (ast.Assign, ast.AnnAssign)) and not _literal(node.value):
            continue  # `model = build_model()`: a usage example, not a definition (nothing runs on import)
        if target is not None:
            lines = text(node, flines)
            if isinstance(node, ast.ClassDef) and isinstance(target, ast.ClassDef):
                lines = _keep_methods(lines, node, target, plines)
            replace[ptree.body.index(target)] = lines
        else:
            added.append((ns[0], text(node, flines)))
    if not replace and not added:
        raise EditError("the code defines no class or function of the model; give the definitions you change")
    # where each new definition goes: before the first parent statement that mentions its name
    before: dict[int, list[list[str]]] = {}
    for name, lines in added:
        use = next((i for i, node in enumerate(ptree.body) if i not in replace and name in ast.unparse(node)
                    or i in replace and name in "\n".join(replace[i])), None)  # fmt: skip
        if use is None:
            use = next((i for i, node in enumerate(ptree.body) if names(node) == ["build_model"]), len(ptree.body))
        before.setdefault(use, []).append(lines)
    out: list[str] = []
    last_import = max((i for i, n in enumerate(ptree.body) if isinstance(n, (ast.Import, ast.ImportFrom))), default=-1)
    cursor = 0
    for i, node in enumerate(ptree.body):
        a, b = span(node, plines)
        out.extend(plines[cursor:a])
        for lines in before.get(i, []):
            out.extend(lines + ["", ""])
        out.extend(replace.get(i, plines[a:b]))
        cursor = b
        if i == last_import and new_imports:
            out.extend(new_imports)
    for lines in before.get(len(ptree.body), []):
        out.extend(["", ""] + lines)
    out.extend(plines[cursor:])
    if last_import < 0 and new_imports:
        out = new_imports + out
    child = prune_unused("\n".join(out).rstrip("\n") + "\n")
    return child, {"replaced": sorted(n for i in replace for n in names(ptree.body[i])), "added": [n for n, _ in added]}


def prune_unused(source: str, root: str = "build_model") -> str:
    """The file without top-level classes and functions that `root` no longer reaches (directly or
    through others): a merged answer that renamed the network leaves the parent's old classes behind,
    and they would pile up over generations. Unchanged when `root` is missing or nothing is unused."""
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return source
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}
    if root not in defs:
        return source
    used_by = {name: {x.id for x in ast.walk(node) if isinstance(x, ast.Name)} |
               {x.attr for x in ast.walk(node) if isinstance(x, ast.Attribute)} for name, node in defs.items()}  # fmt: skip
    # module-level statements (assignments, decorators, calls) keep what they mention alive too
    for node in tree.body:
        if node.__class__ not in (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef):
            used_by.setdefault("<module>", set()).update(x.id for x in ast.walk(node) if isinstance(x, ast.Name))
    alive, todo = set(), [root, "<module>"]
    while todo:
        name = todo.pop()
        if name in alive:
            continue
        alive.add(name)
        todo.extend(n for n in used_by.get(name, ()) if n in defs and n not in alive)
    dead = [node for name, node in defs.items() if name not in alive]
    if not dead:
        return source
    lines = source.split("\n")
    for node in sorted(dead, key=lambda n: n.lineno, reverse=True):
        start = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
        end = node.end_lineno
        while end < len(lines) and not lines[end].strip():  # and the blank lines after it
            end += 1
        del lines[start:end]
    return "\n".join(lines).rstrip("\n") + "\n"
