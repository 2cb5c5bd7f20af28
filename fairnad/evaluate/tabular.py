"""Tabular NAS benchmarks: a lookup table of genotype -> metrics, with its space description.

Built-in benchmarks live in fairnad/data (converted once, values unchanged); users bring their
own with a table file (JSON or CSV) and a space file (YAML). See docs/benchmark-format.md.
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from fairnad.errors import ConfigError, describe_validation_error
from fairnad.files import read_yaml
from fairnad.evaluate.base import Result
from fairnad.evaluate.benchmark import BENCH_KEYS, BenchmarkSpec, TabularBenchmark
from fairnad.evaluate.relabel import relabel, split_name
from fairnad.space.candidate import Candidate
from fairnad.space.tabular import SpaceDescription, TabularSpace

DATA = Path(__file__).resolve().parent.parent / "data"


class TabularEvaluator:
    """The evaluator of tabular spaces: a lookup, in microseconds."""

    def __init__(self, benchmark: TabularBenchmark, fidelity: str | None = None) -> None:
        self.benchmark = benchmark
        self.fidelity = fidelity
        benchmark.search_column(fidelity)  # fail early on an unknown fidelity

    def evaluate(self, candidate: Candidate, fidelity: str | None = None) -> Result:
        t = time.perf_counter()
        metrics = self.benchmark.lookup(candidate.genotype, fidelity or self.fidelity)
        if metrics is None:
            return Result("invalid", error=f"{candidate.genotype} is not in the table", category="not_in_table")
        return Result("complete", metrics=metrics, seconds=time.perf_counter() - t)

    def evaluate_many(self, candidates: list[Candidate], fidelity: str | None = None) -> list[Result]:
        return [self.evaluate(c, fidelity) for c in candidates]

    def observe(self, candidate: Candidate) -> None:
        """A lookup remembers nothing between candidates."""


# -- loading ---------------------------------------------------------------------------------------
def _registry() -> dict[str, dict]:
    return yaml.safe_load((DATA / "benchmarks" / "registry.yaml").read_text())


def list_benchmarks() -> list[str]:
    return list(_registry())


def load_space_description(path: Path) -> SpaceDescription:
    data = read_yaml(path, "space file")
    try:
        return SpaceDescription.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(str(path), err)) from None


# users' tables named in this process (`fairnad bench --benchmark-file`): name -> (table, space file)
_USER_TABLES: dict[str, tuple[str, str]] = {}


def add_user_benchmark(table_path: str | Path, space_path: str | Path) -> str:
    """Make a user's table loadable by its space's name, as a built-in one is (NAME@relabelSEED too):
    what `fairnad bench` compares strategies on. Checks the files first; returns the name."""
    name = load_user_benchmark(table_path, space_path).spec.name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):  # it names the bench's run folders
        raise ConfigError(f"{space_path}: name {name!r} names the bench's run folders: use letters, digits, '.', '_' "
                          "or '-'")  # fmt: skip
    if name in _registry() or split_name(name)[1] is not None:
        raise ConfigError(f"{space_path}: name {name!r} is a built-in benchmark's or ends in @relabelN; give the "
                          "space another name")  # fmt: skip
    _USER_TABLES[name] = (str(Path(table_path).resolve()), str(Path(space_path).resolve()))
    return name


def user_benchmark_files(name: str) -> tuple[str, str] | None:
    """(table, space file) of a user's table added by `add_user_benchmark`; None for any other name."""
    return _USER_TABLES.get(name)


def load_benchmark(name: str) -> TabularBenchmark:
    """A built-in benchmark by name (see `fairnad benchmarks`), or a user's table added by
    `add_user_benchmark`; NAME@relabelSEED is its relabelled copy (evaluate/relabel.py)."""
    base, seed = split_name(name)
    if seed is not None:
        return relabel(load_benchmark(base), seed)
    if name in _USER_TABLES:
        return load_user_benchmark(*_USER_TABLES[name])
    reg = _registry()
    if name not in reg:
        raise ConfigError(f"unknown benchmark {name!r}; built-in ones: {', '.join(reg)} (or use --benchmark-file)")
    entry = dict(reg[name])
    space = TabularSpace(load_space_description(DATA / "spaces" / entry.pop("space")))
    table = entry.pop("table")
    spec = BenchmarkSpec(name=name, **entry)
    with np.load(DATA / "benchmarks" / table, allow_pickle=False) as z:
        columns = {k: z[k] for k in z.files}
    keys = [str(k) for k in columns.pop("keys")]
    return TabularBenchmark(spec, space, keys, columns)


def load_user_benchmark(table_path: str | Path, space_path: str | Path) -> TabularBenchmark:
    """A user's own table (JSON object or CSV) with its space file (YAML)."""
    table_path, space_path = Path(table_path), Path(space_path)
    data = read_yaml(space_path, "space file")
    if not isinstance(data, dict):
        raise ConfigError(f"{space_path}: expected a mapping of fields (name, goal, choices, dimensions, metrics...)")
    bench_part = {k: data.pop(k) for k in list(data) if k in BENCH_KEYS}
    try:
        desc = SpaceDescription.model_validate(data)
        spec = BenchmarkSpec(name=desc.name, title=desc.title, **bench_part)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(str(space_path), err)) from None
    space = TabularSpace(desc)
    keys, columns = _read_table(table_path, space)
    m = spec.metrics
    named = {"metrics.search": m.search, "metrics.report": m.report, "metrics.params": m.params,
             "metrics.flops": m.flops, "display": spec.display}  # fmt: skip
    named.update({f"fidelities.{k}.search": f.search for k, f in spec.fidelities.items()})
    for field, col in named.items():
        if col is not None and col not in columns:
            raise ConfigError(f"{table_path}: no column {col!r} ({field} in {space_path}); it has {sorted(columns)}")
    needed = [(m.search, "needs")] + [(f.search, "needs") for f in spec.fidelities.values()]
    needed += [(m.report, "reports")] if m.report else []  # every evaluated genotype reports it
    for col, why in needed:
        if columns[col].dtype.kind not in "fiu":
            raise ConfigError(f"{table_path}: column {col!r} holds text, but the search {why} numbers")
        missing = [keys[i] for i in np.flatnonzero(np.isnan(columns[col]))[:3]]
        if missing:
            raise ConfigError(f"{table_path}: entry {missing[0]!r} has no value for {col!r}, which the search {why}")
    return TabularBenchmark(spec, space, keys, columns)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different (json keeps the last of two silently)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return out


def _read_table(path: Path, space: TabularSpace) -> tuple[list[str], dict[str, np.ndarray]]:
    if not path.is_file():
        raise ConfigError(f"{path}: benchmark file not found")
    rows: dict[str, dict[str, Any]] = {}
    if path.suffix.lower() == ".csv":
        try:  # utf-8-sig: spreadsheet programs start their CSV files with a byte-order mark
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                if not reader.fieldnames or "genotype" not in reader.fieldnames:
                    raise ConfigError(f"{path}: a CSV table needs a 'genotype' column in its header line")
                for rec in reader:
                    line = reader.line_num
                    if None in rec:
                        raise ConfigError(f"{path} (line {line}): more values than the header line has columns")
                    g = (rec.pop("genotype") or "").strip()
                    if g in rows:
                        raise ConfigError(f"{path} (line {line}): genotype {g!r} is already on line {rows[g]['__line']}")
                    rows[g] = {"__line": line, **rec}
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a UTF-8 text file; expected a CSV table (or a JSON object)") from None
        except csv.Error as err:
            raise ConfigError(f"{path}: not a readable CSV table ({err})") from None
    else:
        try:
            raw = json.loads(path.read_text(), object_pairs_hook=_unique_keys)
        except _DuplicateKey as err:
            raise ConfigError(f"{path}: key {err.args[0]!r} appears twice in one object; give each genotype once") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a text file; expected a JSON object or a .csv table") from None
        except RecursionError:
            raise ConfigError(f"{path}: nested too deeply; expected a JSON object of genotype -> metrics") from None
        except ValueError as err:  # e.g. an integer with more digits than Python converts
            raise ConfigError(f"{path}: not valid JSON ({' '.join(str(err).split())[:120]})") from None
        if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
            raise ConfigError(f"{path}: expected a JSON object mapping each genotype to an object of metrics")
        for g, rec in raw.items():
            flat: dict[str, Any] = {}
            for c, v in rec.items():
                if isinstance(v, list):  # e.g. accuracies of several trainings -> c_1, c_2, ...
                    flat.update({f"{c}_{i + 1}": x for i, x in enumerate(v)})
                else:
                    flat[c] = v
            rows[g] = flat
    if not rows:
        raise ConfigError(f"{path}: the table is empty")
    keys = sorted(rows)
    for g in keys:
        try:
            space.parse(g)
        except ValueError as err:
            where = f" (line {rows[g]['__line']})" if "__line" in rows[g] else ""
            raise ConfigError(f"{path}{where}: {err}") from None
    names = sorted({c for r in rows.values() for c in r if c != "__line"})
    columns: dict[str, np.ndarray] = {}
    for c in names:
        vals = [rows[g].get(c) for g in keys]
        present = [v for v in vals if v not in (None, "")]
        if present and all(isinstance(v, str) and not _is_number(v) for v in present):
            columns[c] = np.array(["" if v is None else str(v) for v in vals])
            continue
        arr = np.full(len(keys), np.nan)
        for i, v in enumerate(vals):
            if v in (None, ""):
                continue
            if isinstance(v, bool) or not _is_number(v):
                what = "a finite number" if isinstance(v, int) and not isinstance(v, bool) else "a number"
                raise ConfigError(f"{path}: entry {keys[i]!r}, column {c!r}: {_short(v)} is not {what}")
            arr[i] = float(v)
            if math.isinf(arr[i]):
                raise ConfigError(f"{path}: entry {keys[i]!r}, column {c!r}: {_short(v)} is not a finite number")
        columns[c] = arr
    return keys, columns


def _short(v, n: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= n else text[: n - 3] + "..."


def _is_number(v) -> bool:
    try:
        float(v)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float
        return False
    return True


def load_table(benchmark: str | None, benchmark_file: str | None = None, space_file: str | None = None) -> TabularBenchmark:
    """A run's table: a built-in benchmark by name, or a user's table file with its space description."""
    if benchmark_file or space_file:
        if not (benchmark_file and space_file):
            raise ConfigError("--benchmark-file and --space-file go together: a table needs its space description")
        return load_user_benchmark(benchmark_file, space_file)
    return load_benchmark(benchmark)
