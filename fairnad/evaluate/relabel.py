"""Relabelled copies of tabular benchmarks: the same table under neutral option labels and a seeded
per-position permutation of its codes. A model that read the benchmark's paper or its published
results cannot recall them here ("layer 3 = MBConv k5 e6" means nothing once options are "c" at
"position 3" and shuffled per position), so what an LLM strategy does on the copy is search, not
memory. The values, their ranks and random search's exact expectation are those of the original.

    load_benchmark("nas-bench-macro@relabel3")        # in memory, anywhere a benchmark name goes
    fairnad benchmarks relabel nas-bench-macro 3 -o DIR   # as files, for --benchmark-file/--space-file
"""

from __future__ import annotations

import csv
import re
import string
from pathlib import Path

import numpy as np
import yaml

from fairnad.errors import ConfigError
from fairnad.evaluate.benchmark import TabularBenchmark
from fairnad.space.tabular import Dimension, Option, SpaceDescription, TabularSpace

SUFFIX = re.compile(r"^(?P<name>.+)@relabel(?P<seed>\d+)$")
_CODES = string.digits + string.ascii_lowercase  # one-character codes: up to 36 options per position


def relabelled_name(name: str, seed: int) -> str:
    return f"{name}@relabel{seed}"


def split_name(name: str) -> tuple[str, int | None]:
    """("nas-bench-macro", 3) for "nas-bench-macro@relabel3"; (name, None) for any other name."""
    m = SUFFIX.match(name)
    return (m.group("name"), int(m.group("seed"))) if m else (name, None)


def relabel(bench: TabularBenchmark, seed: int) -> TabularBenchmark:
    """A TabularBenchmark with the same rows as `bench` under neutral labels and permuted codes."""
    space = bench.space
    desc = space.description
    new_index = _new_indices(bench, seed)
    choices, dims = {}, []
    for i, opts in enumerate(space.options):
        key = f"p{i + 1}"
        choices[key] = [Option(code=_CODES[j], label=string.ascii_uppercase[j % 26] + (str(j // 26) if j >= 26 else ""),
                               name=f"option {string.ascii_uppercase[j % 26]}{j // 26 if j >= 26 else ''}")
                        for j in range(len(opts))]  # fmt: skip
        dims.append(Dimension(name=f"position {i + 1}", choices=key))
    new_desc = SpaceDescription(
        name=relabelled_name(desc.name, seed), title=f"{bench.spec.title or desc.name} (relabelled, seed {seed})",
        goal="one option at each position of a fixed network (what the options are is not disclosed)",
        answer_noun="option letters", choices=choices, dimensions=dims, separator="",
    )  # fmt: skip
    new_space = TabularSpace(new_desc)
    keys = [new_space.format([int(new_index[d][j]) for d, j in enumerate(space.parse(k))]) for k in bench.keys]
    # rows in the new keys' order, and only the columns a search reads: an index, a rank or a display
    # column (NB201's cell string) would name the original entry
    order = np.argsort(np.array(keys))
    m = bench.spec.metrics
    keep = {c for c in (m.search, m.report, m.params, m.flops, *(f.search for f in bench.spec.fidelities.values()))
            if c}  # fmt: skip
    columns = {c: np.asarray(v)[order] for c, v in bench.columns.items() if c in keep}
    keys = [keys[i] for i in order]
    spec = bench.spec.model_copy(update={
        "name": relabelled_name(bench.spec.name, seed), "title": new_desc.title, "display": None,
        "notes": f"relabelled copy (seed {seed}) of {bench.spec.name}: neutral labels, codes permuted per position",
        "source": bench.spec.source})  # fmt: skip
    return TabularBenchmark(spec, new_space, keys, columns)


def _new_indices(bench, seed: int) -> list[np.ndarray]:
    """Per position: original option index -> its index in the relabelled copy (a seeded permutation)."""
    if seed < 0:
        raise ConfigError(f"relabel seed {seed}: must be 0 or more")
    rng = np.random.default_rng([seed, 0x5EED])
    out = []
    for i, opts in enumerate(bench.space.options):
        if len(opts) > len(_CODES):
            raise ConfigError(f"{bench.spec.name}: position {i + 1} has {len(opts)} options; relabelling handles "
                              f"at most {len(_CODES)}")  # fmt: skip
        perm = rng.permutation(len(opts))  # new option j stands for the original option perm[j]
        inv = np.empty_like(perm)
        inv[perm] = np.arange(len(opts))
        out.append(inv)
    return out


def genotype_map(bench, seed: int) -> dict[str, str]:
    """Original genotype -> its genotype in the copy `relabel(bench, seed)` (to check a copy, or to
    translate a result on it back)."""
    new_index = _new_indices(bench, seed)
    copy_space = relabel(bench, seed).space
    return {k: copy_space.format([int(new_index[d][j]) for d, j in enumerate(bench.space.parse(k))]) for k in bench.keys}


def write_relabelled(bench, out: Path) -> tuple[Path, Path]:
    """The relabelled benchmark as a user table (CSV) and its space file (YAML), which
    `--benchmark-file` / `--space-file` load back to the same benchmark."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        stem = bench.spec.name.replace("@", "-")
        table, space_file = out / f"{stem}.csv", out / f"{stem}.yaml"
        cols = list(bench.columns)
        with open(table, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["genotype", *cols])
            for i, k in enumerate(bench.keys):
                w.writerow([k, *(_cell(bench.columns[c][i]) for c in cols)])
        desc = bench.space.description.model_dump(mode="json", exclude_defaults=True)
        spec = bench.spec.model_dump(mode="json", exclude_defaults=True, exclude={"name", "title"})
        space_file.write_text(yaml.safe_dump({**desc, **spec}, sort_keys=False))
    except OSError as err:
        raise ConfigError(f"{out}: cannot write the relabelled benchmark ({err.strerror or err})") from None
    return table, space_file


def _cell(v):
    v = v.item() if isinstance(v, np.generic) else v
    return "" if isinstance(v, float) and np.isnan(v) else v
