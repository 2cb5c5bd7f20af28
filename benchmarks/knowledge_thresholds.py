"""Choose the knowledge build's thresholds on labelled data (docs/knowledge.md):

- consolidation's merge threshold on knowledge/labels/merge_pairs.yaml: for each threshold, how many
  must-merge pairs merge and how many must-not pairs stay apart, with the rule consolidation uses
  (same content words, or cosine >= t without one name being the other plus a qualifier) beside plain
  cosine;
- with --support, the support check's thresholds on knowledge/labels/support.yaml (model proposals
  from a pilot build, each labelled by hand: is the name supported by its sentence?).

    python benchmarks/knowledge_thresholds.py [--support]
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from fairnad.knowledge.consolidate import same_idea
from fairnad.knowledge.embed import Embedder

LABELS = Path(__file__).resolve().parents[1] / "knowledge" / "labels" / "merge_pairs.yaml"
SUPPORT = LABELS.with_name("support.yaml")


def support() -> None:
    from fairnad.knowledge.support import COVERAGE_AT, SIMILAR_AT, check_support

    rows = yaml.safe_load(SUPPORT.read_text())
    emb = Embedder()
    claims = emb.encode([f"{r['name']}: {r.get('description') or ''}" for r in rows])
    sents = emb.encode([r["sentence"] for r in rows])
    sims = [float(a @ b) for a, b in zip(claims, sents)]
    pos = sum(bool(r["supported"]) for r in rows)
    print(f"{len(rows)} labelled proposals, {pos} supported by their sentence")
    print(f"{'coverage>=':>10} {'similar>=':>9} {'accepted':>8} {'precision':>9} {'recall':>7} {'accuracy':>8}")
    grid = []
    for c in (0.34, 0.5, 0.67, 1.0):
        for t in (0.3, 0.4, 0.5, 0.6, 0.7):
            got = [check_support(r["name"], r["sentence"], sim, c, t).ok for r, sim in zip(rows, sims)]
            tp = sum(g and r["supported"] for g, r in zip(got, rows))
            acc = sum(g == bool(r["supported"]) for g, r in zip(got, rows)) / len(rows)
            prec, rec = tp / max(1, sum(got)), tp / max(1, pos)
            grid.append((c, t, sum(got), prec, rec, acc))
            print(f"{c:>10.2f} {t:>9.2f} {sum(got):>8} {prec:>9.2f} {rec:>7.2f} {acc:>8.2f}")
    print(f"\nin use: coverage >= {COVERAGE_AT}, similarity >= {SIMILAR_AT} (or every word of the name)")
    errors = [(r, sim) for r, sim in zip(rows, sims) if check_support(r["name"], r["sentence"], sim).ok != bool(r["supported"])]
    for r, sim in errors:
        print(f"  {'accepted, unsupported' if not r['supported'] else 'rejected, supported'}: {r['name']!r} "
              f"(similarity {sim:.2f}) <- {r['sentence'][:110]!r}")


def main() -> None:
    if "--support" in sys.argv:
        support()
        return
    labels = yaml.safe_load(LABELS.read_text())
    pairs = [(a, b, True) for a, b in labels["merge"]] + [(a, b, False) for a, b in labels["not_merge"]]
    emb = Embedder()
    va, vb = emb.encode([p[0].lower() for p in pairs]), emb.encode([p[1].lower() for p in pairs])
    cos = [float(x @ y) for x, y in zip(va, vb)]
    n_m, n_n = len(labels["merge"]), len(labels["not_merge"])
    print(f"{n_m} must-merge pairs, {n_n} must-not pairs")
    print(f"{'t':>5} {'rule: merged':>13} {'rule: apart':>12} {'cosine: merged':>15} {'cosine: apart':>14}")
    best = None
    for t in [0.70, 0.75, 0.78, 0.80, 0.82, 0.85, 0.88, 0.90, 0.92, 0.95]:
        rule = [same_idea(a, b, c, t) for (a, b, _), c in zip(pairs, cos)]
        plain = [c >= t for c in cos]
        rm = sum(r for r, p in zip(rule, pairs) if p[2])
        ra = sum(not r for r, p in zip(rule, pairs) if not p[2])
        pm = sum(r for r, p in zip(plain, pairs) if p[2])
        pa = sum(not r for r, p in zip(plain, pairs) if not p[2])
        print(f"{t:5.2f} {rm:>6}/{n_m:<6} {ra:>5}/{n_n:<6} {pm:>8}/{n_m:<6} {pa:>7}/{n_n:<6}")
        if ra == n_n and (best is None or rm > best[1]):
            best = (t, rm)
    print("\nerrors of the rule at the chosen threshold:" if best else "\nno threshold keeps every must-not pair apart")
    if best:
        for (a, b, want), c in zip(pairs, cos):
            if same_idea(a, b, c, best[0]) != want:
                print(f"  {'missed merge' if want else 'wrong merge'}: {a!r} / {b!r} (cosine {c:.3f})")
        print(f"lowest threshold that keeps every must-not pair apart with the most merges: {best[0]}")


if __name__ == "__main__":
    main()
