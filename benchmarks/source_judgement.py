"""Can a source sentence be told from one that does not say the paper's network uses the idea? (issue 35)

Reads a precision label file (knowledge/labels/precision_papers13_v*.yaml: per idea, its failing sources as
"paper pN alignment") and the tree it labelled, and scores each of the labelled sources two ways:

- the rule the build applies (build.sources_that_stand, the lookups' rules for a source): good sources
  kept, failing ones dropped, and the strict precision of the ideas that keep a source, if the labels
  held (an estimate until the new tree is labelled);
- with --llm, a model asked per source (three prompts below, one schema-constrained answer each): the
  same counts, to see whether a model can do what the rule cannot.

    git show e565482:knowledge/papers13.json > /tmp/tree_e565482.json
    python benchmarks/source_judgement.py --labels knowledge/labels/precision_papers13_v11.yaml \\
        --tree /tmp/tree_e565482.json --papers ../shared/papers [--llm]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import yaml

from fairnad.knowledge.build import read_pdf, readable_papers, sources_that_stand

PROMPTS = {  # name -> (prompt, choices, the choice that keeps a source)
    "yes/no": ('A sentence from the paper "{title}":\n"{evidence}"\n\nQuestion: does this sentence say that the '
               'network the authors propose or build uses "{name}" as part of its design? Answer "no" if the '
               'sentence reports a result, an experiment, an ablation, an analysis or a comparison, describes '
               'another model\'s network, or mentions "{name}" only in passing. Answer yes or no.',
               ["yes", "no"], "yes"),
    "five kinds": ('A sentence from the paper "{title}":\n"{evidence}"\n\nWhat does this sentence do with "{name}"? '
                   "Choose one:\nA) describes the design of the network the authors build: their network has or "
                   "uses {name}\nB) reports an experiment, a result, an ablation or a comparison\nC) gives an "
                   "analysis, a motivation or a general remark\nD) describes earlier work or another model\nE) "
                   "mentions {name} only in passing, about something else\nAnswer with the letter.",
                   ["A", "B", "C", "D", "E"], "A"),
    "design/other": ('Sentence: "{evidence}"\n\nIs this sentence a design statement (how the authors\' own network '
                     'is built, e.g. "we use X", "each block consists of X", "X is applied after each convolution") '
                     "or something else (a result, experiment, comparison, analysis, motivation, or earlier "
                     'work)?\nAnswer "design" or "other".', ["design", "other"], "design"),
}  # fmt: skip


def labelled_sources(labels: Path, tree: Path) -> tuple[list[dict], dict[str, bool]]:
    """(every source of the labelled ideas with `good` set, idea name -> real and in the right category)."""
    entries = yaml.safe_load(labels.read_text())
    nodes = {n["name"]: n for n in json.loads(tree.read_text())["nodes"] if "sources" in n}
    out, real = [], {}
    for e in entries:
        failing = set(e.get("failing_sources") or [])
        real[e["name"]] = bool(e["real"]) and e.get("category") == e.get("tree_category")
        for s in nodes[e["name"]]["sources"]:
            key = f"{s['paper']} p{s['page']} {s['alignment']}"
            out.append({**s, "name": e["name"], "good": bool(e["real"]) and key not in failing})
    return out, real


def stands_where_it_is(source: dict, papers: list) -> bool:
    """Kept at its own sentence: a source moved to another sentence (PaperIndex.restated) is not the one labelled."""
    kept = sources_that_stand([source], papers)[0]
    return bool(kept) and (kept[0]["page"], kept[0]["evidence_offset"]) == (source["page"], source["evidence_offset"])


def score(sources: list[dict], kept: list[bool], real: dict[str, bool]) -> dict:
    good = Counter(s["good"] for s in sources)
    kept_good = sum(k for s, k in zip(sources, kept) if s["good"])
    dropped_bad = sum(not k for s, k in zip(sources, kept) if not s["good"])
    ideas: dict[str, list[bool]] = {}
    for s, k in zip(sources, kept):
        if k:
            ideas.setdefault(s["name"], []).append(s["good"])
    strict = sum(real[n] and all(v) for n, v in ideas.items())
    return {"good_kept": f"{kept_good}/{good[True]}", "failing_dropped": f"{dropped_bad}/{good[False]}",
            "ideas_left": f"{len(ideas)}/{len(real)}", "strict_if_labels_held": f"{strict}/{len(ideas)}"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=Path, required=True)
    ap.add_argument("--tree", type=Path, required=True, help="the tree the labels were made on")
    ap.add_argument("--papers", type=Path, default=Path("../shared/papers"))
    ap.add_argument("--llm", action="store_true", help="also ask the default embedded model (about 6 min a prompt)")
    args = ap.parse_args()
    sources, real = labelled_sources(args.labels, args.tree)
    docs = {p: read_pdf(args.papers / f"{p}.pdf", 200) for p in sorted({s["paper"] for s in sources})}
    papers = readable_papers([{"path": str(args.papers / f"{p}.pdf"), "name": p, "title": d.title, "sha256": d.sha256}
                              for p, d in docs.items()], 200)  # fmt: skip
    kept = [stands_where_it_is(s, papers) for s in sources]
    print("rule (build.sources_that_stand):", score(sources, kept, real))
    if not args.llm:
        return
    from fairnad.config import LLMConfig
    from fairnad.llm.provider import BackendProvider

    with BackendProvider() as provider:
        llm = provider.backend(LLMConfig().model_dump())
        for name, (prompt, choices, keep) in PROMPTS.items():
            t0, answers = time.time(), []
            for s in sources:
                text = prompt.format(title=s.get("title") or s["paper"], evidence=s["evidence"], name=s["name"])
                out = llm.complete([{"role": "user", "content": text}], temperature=0.0, max_tokens=12,
                                   schema={"type": "object", "properties": {"answer": {"enum": choices}},
                                           "required": ["answer"]})  # fmt: skip
                answers.append((out.parsed or {}).get("answer"))
            print(f"model, {name}:", score(sources, [a == keep for a in answers], real),
                  dict(Counter(answers)), f"{time.time() - t0:.0f}s")  # fmt: skip


if __name__ == "__main__":
    main()
