"""How good is a built attribute tree? (issue targets; docs/knowledge.md)

- spans: every stored source re-checked against the paper's text (page, offsets, text);
- recall against the hand-written answer key (knowledge/labels/answer_key.yaml): exact (same content
  words) and by the packaged embedding model at cosine >= 0.6; by judgement, a person reads --by-paper's
  listing against the key (knowledge/labels/recall_judged_*.yaml); with --judged (one of those) and
  --build, the stage of the build that lost each key item the judgement missed;
- precision: a random sample of accepted attributes written to a YAML file for labelling by hand;
  with --labels (that file, labelled) the precision is computed;
- the build's own figures when --build is given: calls, tokens, proposals, rejections by reason.

    python benchmarks/knowledge_quality.py --tree knowledge/papers13.json --papers ../shared/papers \\
        [--build runs/knowledge-papers13] [--sample 50 --seed 0 --sample-out sample.yaml] [--labels sample.yaml] \\
        [--by-paper ideas_by_paper.txt] [--judged knowledge/labels/recall_judged_<commit>.yaml]
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

import yaml

from fairnad.ingest.pdf import parse_pdf
from fairnad.knowledge.embed import Embedder
from fairnad.knowledge.evidence import span_is_at_its_offsets
from fairnad.knowledge.names import name_key
from fairnad.knowledge.tree import AttributeTree

KEY = Path(__file__).resolve().parents[1] / "knowledge" / "labels" / "answer_key.yaml"
FIRST_KEY = ("convnext", "mobilenetv2", "senet", "resnet")  # the key's first four papers (the nine were added later)
MATCH_AT = 0.6


def check_spans(tree: AttributeTree, papers: Path) -> dict:
    docs, bad, checked = {}, [], 0
    for a in tree.attributes():
        for s in a["sources"]:
            if s.get("offset") is None:
                continue
            if s["paper"] not in docs:
                pdf = papers / f"{s['paper']}.pdf"
                docs[s["paper"]] = parse_pdf(pdf) if pdf.is_file() else None
            doc = docs[s["paper"]]
            checked += 1
            if doc is None or not span_is_at_its_offsets(doc, s["page"], s["offset"], s["offset"] + s["length"], s["quote"]):
                bad.append(f"{a['name']} ({s['paper']} p.{s.get('page')})")
    return {"checked": checked, "not_at_offsets": len(bad), "examples": bad[:5]}


def recall(tree: AttributeTree, key: dict, emb: Embedder) -> dict:
    out = {}
    for paper, items in key.items():
        names = sorted({n for a in tree.attributes() if any(s["paper"] == paper for s in a["sources"])
                        for n in [a["name"], *a.get("aliases", [])]})  # fmt: skip
        wanted = [x[0] for x in items]
        exact = [w for w in wanted if any(name_key(w) == name_key(n) for n in names)]
        if names:
            sim = emb.encode([w.lower() for w in wanted]) @ emb.encode([n.lower() for n in names]).T
            near = [w for w, row in zip(wanted, sim) if row.max() >= MATCH_AT]
        else:
            near = []
        out[paper] = {"key": len(wanted), "attributes": len(names), "exact": len(exact), "cosine": len(near),
                      "missed": [w for w in wanted if w not in near]}  # fmt: skip
    tot = {k: sum(v[k] for v in out.values()) for k in ("key", "exact", "cosine")}
    res = {"papers": out, "recall_exact": round(tot["exact"] / tot["key"], 3), "recall_cosine": round(tot["cosine"] / tot["key"], 3),
           "key_size": tot["key"]}  # fmt: skip
    for part, names in (("first_four", FIRST_KEY), ("nine_added", [p for p in out if p not in FIRST_KEY])):
        sub = [out[p] for p in names if p in out]
        if sub:
            n = sum(v["key"] for v in sub)
            res[part] = {"papers": len(sub), "key": n, "recall_exact": round(sum(v["exact"] for v in sub) / n, 3),
                         "recall_cosine": round(sum(v["cosine"] for v in sub) / n, 3)}  # fmt: skip
    return res


def structure(tree: AttributeTree) -> dict:
    """Issue 35's structural targets: no sentence twice within an idea, every paper with ideas of its own,
    every category with two ideas or more; and what fair sampling draws (AttributeTree.sampled)."""
    dups = 0
    own: Counter = Counter()
    for a in tree.attributes():
        # a sentence: its paper, page and offset
        keys = [(s["paper"], s.get("page"), s.get("evidence_offset", s.get("offset"))) for s in a["sources"]]
        dups += len(keys) - len(set(keys))
        for paper in {s["paper"] for s in a["sources"] if s.get("alignment") != "name" and not a.get("from_template")}:
            own[paper] += 1
    drawn = tree.sampled()
    return {"duplicate_sources": dups, "ideas_of_its_own_per_paper": dict(sorted(own.items())),
            "papers_under_4": sorted(p["name"] for p in tree.papers if own.get(p["name"], 0) < 4),
            "categories_under_2": sorted(p for p, attrs in tree.by_category().items() if len(attrs) < 2),
            "sampled": sum(len(v) for v in drawn.values()), "sampled_categories": len(drawn)}  # fmt: skip


def sample(tree: AttributeTree, n: int, seed: int) -> list[dict]:
    pairs = [(a, s) for a in tree.attributes() for s in a["sources"]]
    rng = random.Random(seed)
    chosen = rng.sample(sorted({a["name"] for a, _ in pairs}), min(n, len({a["name"] for a, _ in pairs})))
    out = []
    for name in chosen:
        a, s = next((a, s) for a, s in pairs if a["name"] == name)
        out.append({"name": a["name"], "category": a["category"], "description": a.get("description"),
                    "paper": s["paper"], "page": s.get("page"), "span": s.get("quote"), "sentence": s.get("evidence"),
                    "real": None, "supported": None})  # fmt: skip
    return out


def by_paper(tree: AttributeTree) -> str:
    """Each paper's ideas (name, aliases, category, the sentence of its source there): what a person
    judging recall against the answer key reads (knowledge/labels/recall_judged_*.yaml)."""
    listed: dict[str, list[str]] = {}
    for a in tree.attributes():
        aliases = f" (aliases: {', '.join(a['aliases'])})" if a.get("aliases") else ""
        for paper, s in {s["paper"]: s for s in reversed(a["sources"])}.items():  # its first source there
            sentence = " ".join((s.get("evidence") or s.get("quote") or "").split())[:200]
            listed.setdefault(paper, []).append(f'- {a["name"]}{aliases} [{a["category"]}] -- "{sentence}"')
    lines = []
    for paper in sorted(listed):
        lines += [f"## {paper} ({len(listed[paper])} ideas with a source in this paper)", *listed[paper]]
    return "\n".join(lines) + "\n"


def build_figures(build: Path) -> dict:
    from fairnad.store import BuildStore

    with BuildStore.open(build, readonly=True) as st:
        papers = [p for p in st.papers() if p["status"] == "done"]
        calls = st.llm_calls()
        reasons = Counter(m["reason"] for m in st.mentions(verified_only=False) if not m["verified"])
        align = Counter(m.get("alignment") for m in st.mentions(verified_only=True))
    return {
        "papers": len(papers), "seconds": round(sum(p.get("seconds") or 0 for p in papers), 1),
        "calls": len(calls), "tokens_in": sum(c.get("tokens_in") or 0 for c in calls),
        "tokens_out": sum(c.get("tokens_out") or 0 for c in calls),
        "proposed": sum(p["stats"].get("proposed", 0) for p in papers),
        "accepted": sum(p["stats"].get("verified", 0) for p in papers),
        "rejected": dict(reasons.most_common()), "alignment": dict(align),
    }  # fmt: skip


# where a key item the judgement missed was lost, in the order the build works
LOST_STAGES = ("no candidate", "answered: no design idea", "rejected by a rule", "accepted, its source did not stand",
               "in the tree, judged another idea")  # fmt: skip


def recall_lost(tree: AttributeTree, judged: dict, build: Path, emb: Embedder) -> dict:
    """For each key item a recall judgement (recall_judged_*.yaml) did not match, the build stage that lost
    it: its closest candidate of the same paper (the phrase the model was shown, or the name it answered;
    MiniLM cosine >= MATCH_AT, else "no candidate"), then what became of that candidate: the model said it
    was no design idea, a rule rejected it (extract.judge), it was accepted but its source did not stand
    (build.sources_that_stand) or the tree has it and the judgement read it as another idea. A closeness
    of words, not a judgement: it says where to work, not what a reader would match."""
    from fairnad.store import BuildStore

    with BuildStore.open(build, readonly=True) as st:
        by_sha = {p["sha256"]: p["name"] for p in st.papers()}
        mentions: dict[str, list[dict]] = {}
        for m in st.mentions(verified_only=False):
            mentions.setdefault(by_sha.get(m["paper"], m["paper"]), []).append(m)
    in_tree = {(s["paper"], n.lower()) for a in tree.attributes() for s in a["sources"] for n in [a["name"], *a.get("aliases", [])]}
    items = []
    for paper, judged_items in judged.items():
        missed = [i["key"] for i in judged_items if not i.get("match")]
        if not missed:
            continue
        ms = mentions.get(paper, [])
        if ms:
            said = [(m.get("candidate") or {}).get("phrase", m["name"]) for m in ms]
            sim = emb.encode([k.lower() for k in missed]) @ emb.encode([t.lower() for t in [*said, *(m["name"] for m in ms)]]).T
        for i, key in enumerate(missed):
            if not ms or sim[i].max() < MATCH_AT:
                stage, closest = LOST_STAGES[0], None
            else:
                m = ms[int(sim[i].argmax()) % len(ms)]
                closest = m["name"]
                if not m["verified"]:
                    stage = LOST_STAGES[1] if m["reason"] == "not a design idea" else LOST_STAGES[2]
                else:
                    stage = LOST_STAGES[4] if (paper, m["name"].lower()) in in_tree else LOST_STAGES[3]
            items.append({"paper": paper, "key": key, "stage": stage, "closest": closest})
    stages = Counter(i["stage"] for i in items)
    return {"missed": len(items), "stages": {s: stages[s] for s in LOST_STAGES}, "items": items}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", type=Path, required=True)
    ap.add_argument("--papers", type=Path, required=True)
    ap.add_argument("--build", type=Path)
    ap.add_argument("--key", type=Path, default=KEY)
    ap.add_argument("--sample", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample-out", type=Path)
    ap.add_argument("--labels", type=Path, help="hand labels (knowledge/labels/precision_papers13.yaml's format)")
    ap.add_argument("--by-paper", type=Path, help="write each paper's ideas and sentences here, for judging recall")
    ap.add_argument("--judged", type=Path, help="a recall judgement (knowledge/labels/recall_judged_*.yaml) of this tree: with "
                    "--build, where each key item it missed was lost")
    args = ap.parse_args()
    if args.judged and not args.build:
        ap.error("--judged needs --build: the build folder whose mentions (build.db) made the judged tree")
    tree, emb = AttributeTree.load(args.tree), Embedder()
    st = tree.stats()
    res = {"attributes": st["attributes"], "categories_with_2_or_more": sum(r["attributes"] >= 2 for r in st["categories"]),
           "categories": {r["category"]: r["attributes"] for r in st["categories"]},
           "spans": check_spans(tree, args.papers), "recall": recall(tree, yaml.safe_load(args.key.read_text()), emb),
           "structure": structure(tree)}  # fmt: skip
    if args.build:
        res["build"] = build_figures(args.build)
    if args.judged:
        res["recall_lost"] = recall_lost(tree, yaml.safe_load(args.judged.read_text()), args.build, emb)
    if args.by_paper:
        args.by_paper.write_text(by_paper(tree))
    if args.sample_out:
        args.sample_out.write_text(yaml.safe_dump(sample(tree, args.sample, args.seed), sort_keys=False, allow_unicode=True, width=140))
    if args.labels:  # hand labels by attribute name: real, supported, the right category
        labels = {(r["name"], r["paper"]): r for r in yaml.safe_load(args.labels.read_text())}
        drawn = {a["name"] for attrs in tree.sampled().values() for a in attrs}
        for part, attrs in (("precision", tree.attributes()), ("precision_where_sampling_draws",
                                                                [a for a in tree.attributes() if a["name"] in drawn])):
            got = []
            for a in attrs:
                r = next((labels[(a["name"], s["paper"])] for s in a["sources"] if (a["name"], s["paper"]) in labels), None)
                if r is not None:
                    got.append((r["real"], r["supported"], r["category"] == a["category"]))
            res[part] = {"labelled": len(got), "correct": sum(all(g) for g in got),
                         "precision": round(sum(all(g) for g in got) / max(1, len(got)), 3),
                         "real": sum(g[0] for g in got), "supported": sum(g[1] for g in got),
                         "right_category": sum(g[0] and g[2] for g in got)}  # fmt: skip
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
