"""Plotly figures of the report pages, built from the plain data of `report.data`.

Every label that may come from a paper or an LLM goes through `text()` (HTML-escaped): plotly
renders a small HTML subset inside labels, and an idea name must show as the text it is.
"""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go

PALETTE = ["#3366cc", "#dc3912", "#109618", "#ff9900", "#990099", "#0099c6", "#dd4477", "#66aa00", "#b82e2e",
           "#316395"]  # fmt: skip
OP_COLOURS = {"init": "#7f7f7f", "random": "#9aa5b1", "idea": "#3366cc", "pareto": "#109618", "iterative": "#ff9900",
              "downscale": "#8c564b", "llm": "#3366cc", "fallback": "#9aa5b1", "mutation": "#dc3912",
              "crossover": "#990099", "evoprompt": "#0099c6"}  # fmt: skip
FAILED_Y_PAD = 0.04  # failed candidates are drawn in a band just below the lowest accuracy


def text(s: Any) -> str:
    return html.escape("" if s is None else str(s), quote=True)


def _layout(title: str, x: str, y: str, **kw) -> dict[str, Any]:
    return dict(title=dict(text=text(title), x=0.01), xaxis=dict(title=dict(text=x)), yaxis=dict(title=dict(text=y)),
                template="plotly_white", height=kw.pop("height", 380), margin=dict(l=60, r=20, t=50, b=90),
                legend=dict(orientation="h", y=-0.22, yanchor="top"), hovermode="closest", **kw)  # fmt: skip


def colour(op: str, i: int = 0) -> str:
    return OP_COLOURS.get(op, PALETTE[i % len(PALETTE)])


def best_so_far(runs: list[dict[str, Any]], x: str) -> go.Figure:
    """Best-so-far accuracy against evaluations, tokens or active seconds; one line per run."""
    labels = {"evaluations": "evaluations", "tokens": "LLM tokens (in + out)", "time": "active seconds"}
    fig = go.Figure()
    for i, run in enumerate(runs):
        pts = [p for p in run["progress"] if p["best"] is not None and p.get(x) is not None]
        fig.add_trace(go.Scatter(
            x=[p[x] for p in pts], y=[p["best"] for p in pts], mode="lines", line=dict(shape="hv", color=PALETTE[i % 10]),
            name=text(run["name"]), customdata=[p["trial"] for p in pts],
            hovertemplate=f"{labels[x]} %{{x}}<br>best %{{y:.3f}}% (trial %{{customdata}})<extra></extra>",
        ))  # fmt: skip
    fig.update_layout(**_layout(f"Best so far against {labels[x]}", labels[x], "accuracy of the best (%)",
                                showlegend=len(runs) > 1))  # fmt: skip
    return fig


def accuracy_vs_cost(runs: list[dict[str, Any]]) -> go.Figure:
    """Every completed candidate as accuracy against cost, with each run's Pareto front."""
    fig = go.Figure()
    cost = next((r["cost"] for r in runs if r["cost"]), None)
    for i, run in enumerate(runs):
        if not run["cost"]:
            continue
        rows = [r for r in run["candidates"] if r["accuracy"] is not None and r.get(run["cost"]) is not None]
        single = len(runs) == 1
        by_op: dict[str, list] = {}
        for r in rows:
            by_op.setdefault(r["op"] if single else run["name"], []).append(r)
        for j, (name, rs) in enumerate(by_op.items()):
            fig.add_trace(go.Scatter(
                x=[r[run["cost"]] for r in rs], y=[r["accuracy"] for r in rs], mode="markers", name=text(name),
                marker=dict(size=7, opacity=0.75, color=colour(name, j) if single else PALETTE[i % 10]),
                customdata=[[r["trial"], text(r["idea"] or "")] for r in rs],
                hovertemplate=f"trial %{{customdata[0]}}<br>{run['cost']} %{{x:,}}<br>accuracy %{{y:.3f}}%"
                              "<br>%{customdata[1]}<extra></extra>",
            ))  # fmt: skip
        by_trial = {r["trial"]: r for r in rows}
        front = [by_trial[t] for t in run["front"] if t in by_trial]
        fig.add_trace(go.Scatter(
            x=[r[run["cost"]] for r in front], y=[r["accuracy"] for r in front], mode="lines+markers",
            line=dict(shape="hv", color="#1d2433" if single else PALETTE[i % 10], width=2),
            marker=dict(symbol="diamond-open", size=11), name=text("Pareto front" + ("" if single else f" {run['name']}")),
            customdata=[r["trial"] for r in front], hovertemplate="front: trial %{customdata}<extra></extra>",
        ))  # fmt: skip
    fig.update_layout(**_layout("Accuracy against cost (Pareto front: more accurate and cheaper is better)",
                                cost or "cost", "accuracy (%)"))  # fmt: skip
    fig.update_xaxes(type="log")
    return fig


def lineage(run: dict[str, Any]) -> go.Figure:
    """Parent -> child over trials (x) and accuracy (y); failed children in a band below.
    Node colour is the mutation type; clicking a node shows its code, metrics and prompt."""
    rows = run["candidates"]
    accs = [r["accuracy"] for r in rows if r["accuracy"] is not None]
    lo, hi = (min(accs), max(accs)) if accs else (0.0, 1.0)
    fail_y = lo - max(hi - lo, 1.0) * FAILED_Y_PAD * 3
    y = {r["trial"]: (r["accuracy"] if r["accuracy"] is not None else fail_y) for r in rows}
    ex, ey = [], []
    for r in rows:
        for p in r["parents"]:
            if p in y:
                ex += [p, r["trial"], None]
                ey += [y[p], y[r["trial"]], None]
    fig = go.Figure(go.Scatter(x=ex, y=ey, mode="lines", line=dict(color="#b8c0cc", width=1), hoverinfo="skip",
                               name="parent → child", showlegend=True))  # fmt: skip
    by_op: dict[str, list] = {}
    for r in rows:
        by_op.setdefault(r["op"], []).append(r)
    for j, (op, rs) in enumerate(by_op.items()):
        fig.add_trace(go.Scatter(
            x=[r["trial"] for r in rs], y=[y[r["trial"]] for r in rs], mode="markers", name=text(op),
            marker=dict(size=10, color=colour(op, j), line=dict(width=1, color="#fff"),
                        symbol=["circle" if r["accuracy"] is not None else "x" for r in rs]),
            customdata=[[r["trial"], text(r["idea"] or r["failure"] or r["status"])] for r in rs],
            hovertemplate="trial %{customdata[0]}<br>%{customdata[1]}<br>click for code and prompt<extra></extra>",
        ))  # fmt: skip
    fig.update_layout(**_layout("Lineage (click a node: its code, metrics and the prompt that made it)", "trial",
                                "accuracy (%) — failed below", height=460))  # fmt: skip
    return fig


def group_bars(groups: list[dict[str, Any]], title: str, limit: int = 30) -> go.Figure:
    """Proposed / valid / improved the front, per mutation type or idea."""
    gs = groups[:limit]
    names = [text(g["name"]) for g in gs]
    fig = go.Figure()
    for key, label, col in (("proposed", "proposed", "#c9d1dc"), ("valid", "valid", "#3366cc"),
                            ("improved_front", "improved the front", "#109618"),
                            ("improved_best", "improved the best", "#ff9900")):  # fmt: skip
        fig.add_trace(go.Bar(y=names, x=[g[key] for g in gs], name=label, orientation="h", marker_color=col))
    fig.update_layout(**_layout(title, "candidates", "", barmode="group", height=max(260, 60 + 70 * len(gs))))
    fig.update_yaxes(autorange="reversed", automargin=True)
    return fig


def failures(fails: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure(go.Bar(x=[text(f["category"]) for f in fails], y=[f["count"] for f in fails],
                           marker_color="#dc3912", customdata=[f["counted"] for f in fails],
                           hovertemplate="%{x}: %{y} (%{customdata} used the budget)<extra></extra>"))  # fmt: skip
    fig.update_layout(**_layout("Failure categories", "category", "candidates", height=320))
    return fig


def llm_latency(llm: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    by: dict[str, list] = {}
    for c in llm["calls"]:
        by.setdefault(c["purpose"] or "(unnamed)", []).append(c)
    for j, (purpose, cs) in enumerate(by.items()):
        fig.add_trace(go.Scatter(
            x=[c["seq"] for c in cs], y=[c["latency"] for c in cs], mode="markers", name=text(purpose),
            marker=dict(size=6, color=PALETTE[j % 10], symbol=["x" if c["error"] else "circle" for c in cs]),
            customdata=[[c["tokens_in"], c["tokens_out"]] for c in cs],
            hovertemplate="call %{x}: %{y:.2f} s, %{customdata[0]} tokens in, %{customdata[1]} out<extra></extra>",
        ))  # fmt: skip
    fig.update_layout(**_layout("LLM latency per call", "call", "seconds", height=320))
    return fig


def bench_bands(bench: str, curves: dict[str, dict[str, list]], expectation: dict[str, list] | None) -> go.Figure:
    """Mean ± std of the best-so-far over seeds, per strategy, with the random-search expectation."""
    fig = go.Figure()
    for i, (strategy, c) in enumerate(curves.items()):
        col = PALETTE[i % 10]
        xs, mean, std = c["x"], c["mean"], c["std"]
        upper = [m + s for m, s in zip(mean, std)]
        lower = [m - s for m, s in zip(mean, std)]
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=upper + lower[::-1], fill="toself", fillcolor=col,
                                 opacity=0.15, line=dict(width=0), hoverinfo="skip", showlegend=False,
                                 legendgroup=strategy))  # fmt: skip
        fig.add_trace(go.Scatter(
            x=xs, y=mean, mode="lines", line=dict(color=col, width=2), legendgroup=strategy,
            name=text(f"{strategy} ({c['seeds']} seeds)"), customdata=std,
            hovertemplate=f"{text(strategy)}: %{{y:.3f}} ± %{{customdata:.3f}} at %{{x}} evaluations<extra></extra>",
        ))  # fmt: skip
    if expectation:
        fig.add_trace(go.Scatter(x=expectation["x"], y=expectation["mean"], mode="lines", name="random (exact expectation)",
                                 line=dict(color="#1d2433", dash="dash", width=1.5),
                                 hovertemplate="random expectation %{y:.3f} at %{x}<extra></extra>"))  # fmt: skip
    fig.update_layout(**_layout(bench, "evaluations", "best reported accuracy (%)", height=420))
    return fig


def chances(credit: dict[str, Any]) -> go.Figure:
    """An adaptive run's chance of each arm (mutation type / source) after each child told to the credit."""
    fig = go.Figure()
    pts = credit["chances"]
    for i, arm in enumerate(a["arm"] for a in credit["arms"]):
        fig.add_trace(go.Scatter(
            x=[p["evaluations"] for p in pts], y=[p.get(arm) for p in pts], mode="lines",
            line=dict(shape="hv", color=PALETTE[i % len(PALETTE)]), name=text(arm),
            hovertemplate=f"{text(arm)}: %{{y:.2f}} after %{{x}} evaluations<extra></extra>",
        ))  # fmt: skip
    fig.update_layout(**_layout("How the credit moved the chances", "evaluations", "chance of the next child"))
    return fig
