"""The attribute tree: root -> level -> category -> sub-category -> attribute, as a networkx DiGraph.

Attribute nodes carry the name, description, effect, frequency (papers), aliases and every source
(paper, page, quote and the quote's position on the page). Saved as node-link JSON (the format
fairnad reads back) with an optional GraphML export; `save(quotes=False)` keeps positions but drops
the quoted text, for trees that are shared or committed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from fairnad.errors import ConfigError
from fairnad.knowledge.names import slug
from fairnad.knowledge.template import Template

MIN_IDEAS = 2  # a category fair sampling draws from holds at least this many ideas (AttributeTree.sampled)

FORMAT = "fairnad-attribute-tree"
VERSION = 1


class AttributeTree:
    def __init__(self, graph: nx.DiGraph) -> None:
        self.g = graph

    # -- building -----------------------------------------------------------------------------
    @classmethod
    def build(cls, template: Template, attributes: list[dict], papers: list[dict] | None = None,
              **meta: Any) -> "AttributeTree":  # fmt: skip
        g = nx.DiGraph(format=FORMAT, version=VERSION, template=template.model_dump(), built=time.time(),
                       papers=papers or [], **meta)  # fmt: skip
        g.add_node("root", kind="root", name=template.name, description=template.description)
        for lv in template.levels:
            g.add_node(f"level:{lv.id}", kind="level", name=lv.name, description=lv.description)
            g.add_edge("root", f"level:{lv.id}")
            for c in lv.categories:
                cid = f"cat:{lv.id}/{c.id}"
                g.add_node(cid, kind="category", name=c.name, description=c.description, examples=list(c.examples),
                           path=f"{lv.id}/{c.id}")  # fmt: skip
                g.add_edge(f"level:{lv.id}", cid)
        tree = cls(g)
        for a in attributes:
            tree._add_attribute(a)
        return tree

    @classmethod
    def from_template(cls, template: Template) -> "AttributeTree":
        """A tree whose attributes are the template's own examples (no papers read): the default
        idea space of a search when no tree built from papers is given."""
        return cls.build(template, example_attributes(template), source="template")

    def _add_attribute(self, a: dict) -> None:
        lv, _, cid = a["category"].partition("/")
        cat = f"cat:{lv}/{cid}"
        if cat not in self.g:
            raise ConfigError(f"attribute {a['name']!r} names category {a['category']!r}, which the template lacks")
        sub = f"sub:{lv}/{cid}/{slug(a.get('subcategory') or 'general')}"
        if sub not in self.g:
            self.g.add_node(sub, kind="subcategory", name=a.get("subcategory") or "general")
            self.g.add_edge(cat, sub)
        attrs = {k: v for k, v in a.items() if k != "id"}  # node-link JSON keeps node names under "id"
        attrs["key"] = a["id"]
        node = f"attr:{a['id']}"
        self.g.add_node(node, kind="attribute", **attrs)
        self.g.add_edge(sub, node)

    # -- reading ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.g.nodes["root"]["name"]

    @property
    def template(self) -> Template:
        """The template the tree was built from (kept in the tree, so `add` needs no template file)."""
        return Template.model_validate(self.g.graph["template"])

    @property
    def papers(self) -> list[dict]:
        return list(self.g.graph.get("papers", []))

    def categories(self) -> list[dict]:
        return [{"node": n, **d} for n, d in self.g.nodes(data=True) if d["kind"] == "category"]

    def attributes(self, category: str | None = None) -> list[dict]:
        out = [{"node": n, **d} for n, d in self.g.nodes(data=True) if d["kind"] == "attribute"]
        return [a for a in out if category is None or a["category"] == category]

    def by_category(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {c["path"]: [] for c in self.categories()}
        for a in self.attributes():
            out.setdefault(a["category"], []).append(a)
        return out

    def sampled(self, include_over_specific: bool = False, checked: bool = True) -> dict[str, list[dict]]:
        """What FairNAD's fair sampling draws from, by category: the attributes that are not one model's
        module (`over_specific`) nor checked and found not actionable (`actionable`, `fairnad knowledge
        check`; with `checked` false they are kept), in the categories that keep at least MIN_IDEAS of
        them. A category with one idea would give that idea a whole category's share (ResNeXt, filed
        alone under activation, got 9% of the draws of the first 13-paper tree): its share goes to the
        other categories. A tree whose every category is smaller keeps them all (else nothing is drawn)."""
        def drawn(a: dict) -> bool:
            if a.get("over_specific") and not include_over_specific:
                return False
            return not (checked and isinstance(a.get("actionable"), dict) and not a["actionable"].get("ok"))

        groups = {path: [a for a in attrs if drawn(a)] for path, attrs in self.by_category().items()}
        groups = {path: attrs for path, attrs in groups.items() if attrs}
        kept = {path: attrs for path, attrs in groups.items() if len(attrs) >= MIN_IDEAS}
        return kept or groups

    def stats(self) -> dict[str, Any]:
        """Per category: attributes, mentions, and how far frequency-proportional sampling would be from
        the fair (uniform over categories) sampling that FairNAD uses."""
        groups = self.by_category()
        total = sum(a["mentions"] for attrs in groups.values() for a in attrs)
        nonempty = [p for p, attrs in groups.items() if attrs]
        fair = 1.0 / len(nonempty) if nonempty else 0.0
        rows = []
        for c in self.categories():
            attrs = groups.get(c["path"], [])
            mentions = sum(a["mentions"] for a in attrs)
            by_freq = mentions / total if total else 0.0
            rows.append({
                "category": c["path"], "name": c["name"], "attributes": len(attrs), "mentions": mentions,
                "papers": len({s["paper"] for a in attrs for s in a["sources"]}),
                "share_by_frequency": round(by_freq, 4), "share_fair": round(fair if attrs else 0.0, 4),
                "bias": round(by_freq / fair, 3) if attrs and fair else None,
                "over_specific": sum(1 for a in attrs if a.get("over_specific")),
            })  # fmt: skip
        shares = [r["share_by_frequency"] for r in rows if r["attributes"]]
        tv = 0.5 * sum(abs(r["share_by_frequency"] - r["share_fair"]) for r in rows)
        return {
            "tree": self.name, "papers": len(self.papers), "attributes": len(self.attributes()),
            "mentions": total, "categories": rows, "empty_categories": [r["category"] for r in rows if not r["attributes"]],
            "most_to_least_frequent": round(max(shares) / min(shares), 2) if shares and min(shares) > 0 else None,
            "total_variation_from_fair": round(tv, 4) if total else None,  # no mentions: nothing sampled by frequency
        }  # fmt: skip

    def idea_shares(self) -> list[dict[str, Any]]:
        """FairNAD's Figure 2 per category: each idea's share of all mentions (how often an LLM reading
        papers would name it, and what sampling by frequency would give it) beside its fair share, as
        sampling draws it (`sampled`: uniform over its categories, then over a category's ideas)."""
        groups = self.sampled()
        total = sum(a["mentions"] for attrs in groups.values() for a in attrs) or 1
        names = {c["path"]: c["name"] for c in self.categories()}
        out = []
        for path, attrs in groups.items():
            fair = 1.0 / len(groups) / len(attrs)
            ideas = [{"name": a["name"], "frequency": a["frequency"], "mentions": a["mentions"],
                      "share_by_frequency": round(a["mentions"] / total, 4), "share_fair": round(fair, 4)}
                     for a in sorted(attrs, key=lambda a: (-a["mentions"], a["name"]))]  # fmt: skip
            out.append({"category": path, "name": names.get(path, path), "ideas": ideas})
        return out

    def search(self, query: str, limit: int | None = 50) -> list[dict]:
        q = query.lower().strip()
        hits = []
        for a in self.attributes():
            score = 0
            if q in a["name"].lower():
                score += 4
            if any(q in x.lower() for x in a.get("aliases", [])):
                score += 2
            if q in (a.get("description") or "").lower() or q in (a.get("subcategory") or "").lower():
                score += 1
            if any(q in (s.get("quote") or "").lower() for s in a["sources"]):
                score += 1
            if score:
                hits.append((score, a["frequency"], a))
        hits.sort(key=lambda h: (-h[0], -h[1], h[2]["name"]))
        return [h[2] for h in hits[:limit]]

    # -- files --------------------------------------------------------------------------------
    def to_dict(self, quotes: bool = True) -> dict[str, Any]:
        data = nx.node_link_data(self.g, edges="edges")
        if not quotes:
            for n in data["nodes"]:
                for s in n.get("sources", []):
                    s.pop("quote", None)
        return data

    def save(self, path: str | Path, quotes: bool = True) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(quotes), indent=1, ensure_ascii=False))
        tmp.replace(path)  # atomic: a crash never leaves half a tree
        return path

    def export_graphml(self, path: str | Path) -> Path:
        """GraphML for other tools; lists and dicts are stored as JSON strings (GraphML has no lists)."""
        h = nx.DiGraph()
        for n, d in self.g.nodes(data=True):
            h.add_node(n, **{k: _scalar(v) for k, v in d.items()})
        h.add_edges_from(self.g.edges())
        h.graph.update({k: _scalar(v) for k, v in self.g.graph.items()})
        nx.write_graphml(h, path)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "AttributeTree":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: tree not found (build one with `fairnad knowledge build`)") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: a folder, not a tree file (give the tree's .json file)") from None
        except OSError as err:
            raise ConfigError(f"{path}: cannot read the tree file ({err.strerror or err})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not a tree file ({err})") from None
        if not isinstance(data, dict) or not isinstance(data.get("graph"), dict) or data["graph"].get("format") != FORMAT:
            raise ConfigError(f"{path}: not a fairnad attribute tree (no '{FORMAT}' format tag)")
        if not all(isinstance(data.get(k), list) and all(isinstance(x, dict) for x in data[k]) for k in ("nodes", "edges")):
            raise ConfigError(f"{path}: damaged tree file (it needs 'nodes' and 'edges', each a list of objects)")
        try:
            g = nx.node_link_graph(data, directed=True, edges="edges")
        except KeyError as err:
            raise ConfigError(f"{path}: damaged tree file (a {err.args[0]!r} entry is missing)") from None
        except (TypeError, AttributeError, nx.NetworkXError) as err:
            raise ConfigError(f"{path}: damaged tree file ({err})") from None
        if "root" not in g:
            raise ConfigError(f"{path}: damaged tree file (no root node)")
        version = g.graph.get("version", VERSION)
        if not isinstance(version, int) or version > VERSION:
            raise ConfigError(f"{path}: tree format version {version!r}, newer than this fairnad reads ({VERSION}); "
                              "upgrade fairnad")  # fmt: skip
        problem = _damage(g)
        if problem:
            raise ConfigError(f"{path}: damaged tree file ({problem}); rebuild it with `fairnad knowledge build`")
        return cls(g)


def example_attributes(template: Template) -> list[dict]:
    """The template's examples as attributes with no source ("convolution variants (kernel size, ...)"
    is named "convolution variants", the rest its description)."""
    attrs = []
    for lv, c in template.categories():
        for ex in c.examples:
            name = ex.split(" (")[0].strip()
            detail = ex[len(name):].strip(" ()")
            attrs.append({"id": slug(f"{c.id}-{name}"), "name": name, "category": f"{lv.id}/{c.id}",
                          "subcategory": "template examples", "description": detail or f"{name} ({c.name})",
                          "effect": "", "aliases": [], "frequency": 0, "mentions": 0, "sources": []})  # fmt: skip
    return attrs


_Count = Annotated[StrictInt, Field(ge=0)]  # papers or mentions: a whole number, never "3", 3.0 or NaN


class _Node(BaseModel):
    """What every reader of a tree relies on in a node (other fields are free)."""

    model_config = ConfigDict(extra="allow")
    kind: str
    name: str


class _Source(BaseModel):
    model_config = ConfigDict(extra="allow")
    paper: str
    page: StrictInt | None = None
    offset: StrictInt | None = None
    evidence_offset: StrictInt | None = None
    quote: StrictStr | None = None
    evidence: StrictStr | None = None


class _Category(_Node):
    path: str


class _Attribute(_Node):
    category: str
    sources: list[_Source] = []
    frequency: _Count
    mentions: _Count
    aliases: list[StrictStr] = []
    description: StrictStr | None = None
    effect: StrictStr | None = None
    subcategory: StrictStr | None = None


class _Paper(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str


class _Graph(BaseModel):
    model_config = ConfigDict(extra="allow")
    papers: list[_Paper] = []
    template: Template  # `knowledge add` reads new papers with the tree's own template


_KINDS = {"root": _Node, "level": _Node, "category": _Category, "subcategory": _Node, "attribute": _Attribute}


def _damage(g: nx.DiGraph) -> str | None:
    """The first thing wrong with a loaded tree (None: readable): a node without the fields its
    readers use, or links that do not make one tree under the root."""
    try:
        _Graph.model_validate(g.graph)
    except ValidationError as err:
        e = err.errors()[0]
        return f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
    for n, d in g.nodes(data=True):
        model = _KINDS.get(d.get("kind"))
        if model is None:
            return f"node {n!r} has kind {d.get('kind')!r}, not one of {', '.join(_KINDS)}"
        try:
            model.model_validate(d)
        except ValidationError as err:
            e = err.errors()[0]
            return f"node {n!r}: {'.'.join(map(str, e['loc']))}: {e['msg']}"
    if not nx.is_arborescence(g):
        return "its links do not form one tree under the root (a loop, or a node with two parents)"
    if g.in_degree("root"):
        return "the root has a parent"
    return None


def _scalar(v):
    if v is None:
        return ""
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False)
    return v
