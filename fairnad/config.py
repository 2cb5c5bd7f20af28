"""Run configuration: YAML validated by pydantic; CLI flags and `--set key=value` override it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fairnad.errors import ConfigError, describe_validation_error
from fairnad.files import read_yaml
from fairnad.llm.embedded import DEFAULT_CACHE_MB, DEFAULT_CTX, DEFAULT_DRAFT, EMBEDDED_TIMEOUT_S


class LLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["embedded", "openai", "replay", "transformers", "none"] = Field(
        "embedded", description="embedded: a bundled model on a local llama.cpp server (`fairnad llms`); openai: any "
        "OpenAI-compatible URL; "
        "transformers: a local model fairnad loads (and can prompt-tune)"
    )
    base_url: str | None = Field(None, description="e.g. http://127.0.0.1:8000/v1 (vLLM), http://127.0.0.1:11434/v1")
    model: str | None = Field(None, description="model name; default: the first one the server lists")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key")
    replay_from: str | None = Field(None, description="run directory whose recorded calls answer (backend replay)")
    timeout: float | None = Field(None, gt=0, description="seconds per request (default: 120 for a server, "
                                  f"{EMBEDDED_TIMEOUT_S:.0f} for the embedded model: a 2,000-token prompt and a "
                                  "600-token answer of the 1.5B model take ~3 min on one idle core)")
    max_retries: int = Field(4, ge=0, description="retries with backoff on 429/5xx/connection errors")
    structured: str = Field("auto", description="auto | json_schema | json_object_schema | json_object | prompt")
    max_calls: int | None = Field(None, ge=1, description="cap on LLM calls per run")
    max_tokens: int | None = Field(None, ge=1, description="cap on LLM tokens (in + out) per run")
    embedded_model: str | None = Field(default_factory=lambda: default_embedded_model(), description="embedded model: "
                                       "a name from `fairnad llms` or a .gguf file (default: $FAIRNAD_EMBEDDED_MODEL, "
                                       "else qwen2.5-coder-1.5b); recorded in the run, so a resume uses the same")
    embedded_ctx: int = Field(DEFAULT_CTX, ge=512)
    embedded_threads: int | None = Field(None, ge=1, description="embedded server threads (default: $FAIRNAD_LLM_THREADS, "
                                         "else the cores, at most 4); fewer than the cores where they are shared: "
                                         "llama.cpp's threads spin, and one busy core stalls them all")
    embedded_cache_mb: int = Field(DEFAULT_CACHE_MB, ge=0, description="embedded server: recent prompt states kept, so a prompt "
                                   "resumes from the longest one it shares a beginning with (0: off); llama-cpp-python "
                                   "counts only their KV data (~50 MB a 1,800-token prompt of the 1.5B model), and each "
                                   "state also copies the server's logits buffer (~300 MB), so RAM use is up to ~10x this")
    embedded_draft: int = Field(DEFAULT_DRAFT, ge=0, description="embedded server: prompt-lookup decoding, up to N tokens "
                                "proposed from the text so far and checked in one batch (0: off); an answer that copies "
                                "its prompt (a child's code) copies in batches, but drafting keeps every prompt token's logits "
                                "(0.6 MB a token for Qwen): on 2 cores whole-file answers came 23% slower in twice the memory "
                                "than without (docs/performance.md); for a machine where memory is plentiful and batches cheap")
    hf_model: str | None = Field(None, description="transformers backend: a model folder or .gguf (default SmolLM2-135M)")

    def describe(self) -> str:
        if self.backend == "embedded":
            from fairnad.llm.models import CATALOGUE

            name = self.embedded_model or default_embedded_model()
            title = CATALOGUE[name].title if name in CATALOGUE else name
            return f"embedded {title} (llama.cpp server on 127.0.0.1)"
        if self.backend == "replay":
            return f"replay of {self.replay_from}"
        if self.backend == "none":
            return "no LLM (each LLM step replaced by its deterministic counterpart)"
        if self.backend == "transformers":
            return f"local transformers model {self.hf_model or 'SmolLM2-135M-Instruct'}"
        return f"{self.model or '(server default model)'} at {self.base_url}"


class OpenSpaceConfig(BaseModel):
    """Open-ended (code) searches: how candidates are trained and judged."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field("mnist1d", description="mnist1d, digits, fashion-mnist, cifar10, cifar100, imagenet16-120, "
                         "or your arrays: a .npz file with x_train, y_train, x_test, y_test (and x_val, y_val)")
    data_dir: str | None = None
    device: str = "cpu"
    epochs: int | None = Field(None, ge=1, description="proxy training epochs (default: the dataset's recipe)")
    max_params: int | None = Field(1_500_000, ge=1, description="parameter budget (FairNAD used 1.5M)")
    train: dict[str, Any] = Field(default_factory=dict, description="recipe overrides: lr, batch_size, ...")
    workers: int = Field(1, ge=1, description="evaluations in parallel")
    gpus: list[int] | None = None
    executor: Literal["local", "ray"] = "local"
    address: str | None = None
    timeout: float | None = Field(None, gt=0)
    memory_mb: int = Field(4096, ge=256)
    threads: int = Field(1, ge=1)
    isolation: Literal["auto", "namespaces", "limits"] = "auto"
    initial: list[str] = Field(default_factory=list, description="starting models: files or ref:NAME (default: references)")
    keep_weights: int = Field(5, ge=-1, description="trained weights kept in <run>/weights: the N most accurate "
                              "(0: none, -1: all)")  # fmt: skip

    @field_validator("train")
    @classmethod
    def _recipe(cls, v: dict[str, Any]) -> dict[str, Any]:
        from fairnad.evaluate.recipe import check_overrides

        return check_overrides(v)

    @field_validator("dataset")
    @classmethod
    def _dataset_path(cls, v: str) -> str:
        """A user's .npz is kept as an absolute path, so the run resumes from any folder."""
        from fairnad.evaluate.datasets import is_user_dataset

        return str(Path(v).expanduser().resolve()) if is_user_dataset(v) else v


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    space: Literal["tabular", "open"] = "tabular"
    benchmark: str = "nas-bench-macro"
    benchmark_file: str | None = Field(None, description="your own table (JSON or CSV); needs space_file")
    space_file: str | None = Field(None, description="YAML space description of benchmark_file")
    fidelity: str | None = Field(None, description="a low-fidelity column set, e.g. '12' for NB201")
    strategy: str = "fairnad"
    budget: int = Field(10, ge=1, description="evaluations")
    seed: int = 0
    max_seconds: float | None = Field(None, gt=0, description="wall-clock budget of this session")
    max_probes: int | None = Field(None, ge=0, description="cap on probes (a strategy's cheap checks before it spends "
                                   "an evaluation); past it, strategies go on without checking")
    cost: Literal["params", "flops"] | None = Field(
        None, description="the cost axis of the Pareto front: what 'improved the front', NSGA-II and every Pareto "
        "move are judged on (default params)")
    open: OpenSpaceConfig = Field(default_factory=OpenSpaceConfig)
    knowledge: str | None = Field(None, description="attribute tree of ideas: a tree file, or 'papers13' (the tree built "
                                  "from 13 architecture papers) or 'template' (the template's own examples: the default "
                                  "of new open searches, and what a run that stored none was made with)")
    strategies: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-strategy settings")
    llm: LLMConfig = Field(default_factory=LLMConfig)
    runs_dir: str = "runs"

    @property
    def benchmark_name(self) -> str:
        if self.space == "open":
            from fairnad.evaluate.datasets import is_user_dataset

            return Path(self.open.dataset).stem if is_user_dataset(self.open.dataset) else self.open.dataset
        return Path(self.benchmark_file).stem if self.benchmark_file else self.benchmark


def default_embedded_model() -> str:
    """The embedded model when none is named: $FAIRNAD_EMBEDDED_MODEL (a name or .gguf path), else the default."""
    from fairnad.llm.models import DEFAULT_MODEL

    return os.environ.get("FAIRNAD_EMBEDDED_MODEL") or DEFAULT_MODEL


def parse_llm_flag(value: str) -> dict[str, Any]:
    """--llm embedded[:NAME|:FILE.gguf] | URL | transformers[:MODEL] | replay:RUN_DIR  ->  llm config fields."""
    if value == "embedded":  # (on resume: the run's own embedded model)
        return {"backend": "embedded"}
    if value == "none":  # the algorithm alone: each LLM step replaced by its deterministic counterpart
        return {"backend": "none"}
    if value.startswith("embedded:"):
        from fairnad.llm.models import CATALOGUE

        name = value.partition(":")[2].strip()
        if name not in CATALOGUE and "/" not in name and not name.endswith(".gguf"):
            raise ConfigError(f"--llm {value!r}: unknown embedded model {name!r}; use one of {', '.join(CATALOGUE)} "
                              "or embedded:/path/to/model.gguf (see `fairnad llms`)")  # fmt: skip
        if name not in CATALOGUE:
            from fairnad.llm.base import LLMError
            from fairnad.llm.models import resolve

            # a file: made absolute, so a resume from another folder finds it, and checked now, not when an
            # open run first asks for a child (after its starting models have trained)
            name = str(Path(name).expanduser().resolve())
            try:
                resolve(name)
            except LLMError as err:
                raise ConfigError(f"--llm {value!r}: {err}") from None
        return {"backend": "embedded", "embedded_model": name}
    if value == "transformers" or value.startswith("transformers:"):
        path = value.partition(":")[2]
        return {"backend": "transformers", **({"hf_model": path} if path else {})}
    if value.startswith("replay:"):
        return {"backend": "replay", "replay_from": value[len("replay:") :]}
    if value.startswith(("http://", "https://")):
        return {"backend": "openai", "base_url": value}
    raise ConfigError(
        f"--llm {value!r}: use 'embedded[:NAME]', an http(s) URL of an OpenAI-compatible server, transformers[:MODEL], "
        "replay:RUN_DIR or none"
    )


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    """data["a"]["b"]["c"] = value for "a.b.c", making the sections on the way: how a --set item, a
    flag and a bench's ablation switch reach a config."""
    keys = dotted.split(".")
    cur = data
    for k in keys[:-1]:
        nxt = cur.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {dotted}: {k} is not a section")
        cur = nxt
    cur[keys[-1]] = value


def parse_assignments(items: list[str], flag: str = "--set",
                      expected: str = "KEY=VALUE, e.g. strategies.genius.temperature=0") -> list[tuple[str, Any]]:  # fmt: skip
    """KEY=VALUE items of a repeatable flag as (key, value) pairs, each value read by parse_value."""
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{flag} {item!r}: expected {expected}")
        key, raw = item.split("=", 1)
        out.append((key.strip(), parse_value(raw)))
    return out


def parse_value(raw: str) -> Any:
    """A command-line VALUE read as YAML (numbers, lists, booleans...); text that YAML cannot read
    (or reads into something absurd) is kept as the text itself."""
    try:
        return yaml.safe_load(raw) if raw else None
    except (yaml.YAMLError, ValueError, RecursionError):
        return raw


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None, sets: list[str] = ()
) -> SearchConfig:
    """The config file (if any), then flag overrides (dotted keys), then --set items."""
    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        source = str(path)
        data = read_yaml(path, "config file") or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    for key, value in (overrides or {}).items():
        if value is not None:
            set_dotted(data, key, value)
    for key, value in parse_assignments(list(sets)):
        set_dotted(data, key, value)
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(source, err)) from None
