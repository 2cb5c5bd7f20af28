"""A tabular benchmark as data: its spec (dataset, metrics, fidelities) and the table with its space.
Loading one (evaluate/tabular.py) and relabelling one (evaluate/relabel.py) both build this class.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fairnad.errors import ConfigError
from fairnad.space.tabular import TabularSpace


class MetricSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    search: str = Field(description="column the search sees (validation accuracy where there is one)")
    report: str | None = Field(None, description="column reported for the chosen genotype (test accuracy)")
    params: str | None = None
    flops: str | None = None
    higher_is_better: bool = True


class FidelitySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    search: str
    description: str = ""


class BenchmarkSpec(BaseModel):
    """Everything about a benchmark that is not the space: dataset, metrics, fidelities."""

    model_config = ConfigDict(extra="forbid")

    name: str
    title: str = ""
    dataset: str
    metrics: MetricSpec
    fidelities: dict[str, FidelitySpec] = {}
    display: str | None = Field(None, description="a text column shown beside the genotype, e.g. NB201 cell")
    notes: str = ""
    source: str = ""


BENCH_KEYS = set(BenchmarkSpec.model_fields) - {"name", "title"}  # name and title belong to the space


class TabularBenchmark:
    """A table + its space. `lookup` gives the metrics a search sees; `rank` places a value."""

    def __init__(self, spec: BenchmarkSpec, space: TabularSpace, keys: list[str], columns: dict[str, np.ndarray]):
        self.spec = spec
        self.space = space
        self.keys = keys
        self.columns = columns
        self.index = {k: i for i, k in enumerate(keys)}
        m = spec.metrics
        for col in [m.search, m.report, m.params, m.flops, spec.display] + [f.search for f in spec.fidelities.values()]:
            if col is not None and col not in columns:
                raise ConfigError(f"benchmark {spec.name}: column {col!r} named in its metrics is not in the table")
        self.sign = 1.0 if m.higher_is_better else -1.0

    @property
    def name(self) -> str:
        return self.spec.name

    def __len__(self) -> int:
        return len(self.keys)

    def search_column(self, fidelity: str | None = None) -> str:
        if fidelity is None:
            return self.spec.metrics.search
        if fidelity not in self.spec.fidelities:
            have = ", ".join(self.spec.fidelities) or "none"
            raise ConfigError(f"benchmark {self.name} has no fidelity {fidelity!r} (available: {have})")
        return self.spec.fidelities[fidelity].search

    @property
    def report_column(self) -> str:
        return self.spec.metrics.report or self.spec.metrics.search

    @cached_property
    def _sorted_report(self) -> np.ndarray:
        return np.sort(self.sign * self.columns[self.report_column])

    def rank(self, value: float) -> int:
        """1 + the number of entries strictly better on the reported metric."""
        s = self._sorted_report
        return int(1 + len(s) - np.searchsorted(s, self.sign * value, side="right"))

    def row(self, genotype: str) -> dict[str, Any] | None:
        i = self.index.get(genotype)
        if i is None:
            return None
        return {c: _py(v[i]) for c, v in self.columns.items()}

    def lookup(self, genotype: str, fidelity: str | None = None) -> dict[str, Any] | None:
        """The metrics a search sees and reports for `genotype`, or None if it is not in the table."""
        i = self.index.get(genotype)
        if i is None:
            return None
        m = self.spec.metrics
        report = float(self.columns[self.report_column][i])
        out: dict[str, Any] = {
            "accuracy": float(self.columns[self.search_column(fidelity)][i]),
            "test_accuracy": report,
            "rank": self.rank(report),
        }
        if m.params:
            out["params"] = _py(self.columns[m.params][i])
        if m.flops:
            out["flops"] = _py(self.columns[m.flops][i])
        if self.spec.display:
            out["arch"] = str(self.columns[self.spec.display][i])
        return out

    def optimum(self) -> dict[str, Any]:
        """The entry with the best reported metric, and every entry tied with it."""
        col = self.sign * self.columns[self.report_column]
        tied = [self.keys[i] for i in np.flatnonzero(col == col.max())]
        return {"genotype": tied[0], **self.lookup(tied[0]), "tied": tied}

    def random_search_expectation(self, k: int, fidelity: str | None = None, ranks: bool = True) -> dict[str, float]:
        """Exact statistics of random search: k distinct entries uniformly, pick the best on the
        search metric (ties uniformly), report its reported metric and (if `ranks`) its rank."""
        n = len(self.keys)
        k = min(k, n)
        search = self.sign * self.columns[self.search_column(fidelity)]
        report = self.columns[self.report_column].astype(float)
        ranks = np.array([self.rank(v) for v in report]) if ranks and n <= 20000 else None
        order = np.argsort(-search, kind="stable")
        s_sorted = search[order]
        prob = np.zeros(n)
        lc_total = _log_comb(n, k)
        start = 0
        while start < n:  # one group of tied search values at a time
            end = start + 1
            while end < n and s_sorted[end] == s_sorted[start]:
                end += 1
            p = _comb_ratio(n - start, k, lc_total) - _comb_ratio(n - end, k, lc_total)
            prob[order[start:end]] = p / (end - start)
            start = end
        mean = float(prob @ report)
        var = float(prob @ (report - mean) ** 2)
        out = {"k": k, "mean": mean, "std": math.sqrt(max(var, 0.0))}
        if ranks is not None:
            out["rank_mean"] = float(prob @ ranks)
            by_rank = np.argsort(ranks, kind="stable")
            cdf = np.cumsum(prob[by_rank])
            out["rank_median"] = int(ranks[by_rank][np.searchsorted(cdf, 0.5)])
        return out


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _comb_ratio(n: int, k: int, log_total: float) -> float:
    """C(n, k) / C(N, k) with log C(N, k) given; 0 when n < k."""
    if n < k:
        return 0.0
    return math.exp(_log_comb(n, k) - log_total)


def _py(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v
