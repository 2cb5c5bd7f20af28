"""Every `fairnad ...` command shown in the README and docs names a command and flags that exist (the
README's multi-GPU example once used a flag `search` did not have)."""

import re
import shlex

import pytest
import typer

from conftest import ROOT
from fairnad.cli import app

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _commands(path):
    """(line number, words) of each `fairnad ...` command in the file's shell code blocks."""
    out, block, joined = [], False, ""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("```"):
            block = line.strip() in ("```bash", "```sh", "```console", "```shell")
            continue
        if not block:
            continue
        text = joined + line.split(" # ")[0].split("  #")[0].rstrip()
        if text.endswith("\\"):
            joined = text[:-1] + " "
            continue
        joined = ""
        text = text.strip().removeprefix("$ ")
        if text.startswith("fairnad "):
            out.append((n, shlex.split(text)[1:]))
    return out


CASES = [(p.relative_to(ROOT).as_posix(), n, words) for p in DOCS for n, words in _commands(p)]


def test_the_docs_show_commands():
    assert len(CASES) >= 20


@pytest.mark.parametrize("doc, line, words", CASES, ids=[f"{d}:{n}" for d, n, _ in CASES])
def test_a_documented_command_and_its_flags_exist(doc, line, words):
    cmd = typer.main.get_command(app)
    i = 0
    while hasattr(cmd, "list_commands") and i < len(words):  # (typer vendors its own click)
        sub = cmd.get_command(None, words[i])
        if sub is None:
            break
        cmd, i = sub, i + 1
    assert i > 0 or not words, f"{doc}:{line}: no command {words[0]!r}"
    flags = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    for w in words[i:]:
        if w.startswith("-") and not re.fullmatch(r"-\d.*", w):
            name = w.split("=", 1)[0]
            assert name in flags, f"{doc}:{line}: `fairnad {' '.join(words[:i])}` has no flag {name} (has {sorted(flags)})"
