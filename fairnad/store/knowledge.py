"""The knowledge-build database: which papers are done, and every attribute mention they gave.

A paper's row and its mentions are written in one transaction, so a killed build either has a
paper completely or not at all, and a resumed build skips exactly the papers that are done.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fairnad.store.sqlite import SqliteStore, _storable

_BUILD_SCHEMA = """
CREATE TABLE IF NOT EXISTS papers (
    sha256 TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    title TEXT,
    authors TEXT NOT NULL DEFAULT '[]',
    year INTEGER,
    pages INTEGER,
    status TEXT NOT NULL,
    error TEXT,
    stats TEXT NOT NULL DEFAULT '{}',
    seconds REAL,
    finished REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS mentions (
    id INTEGER PRIMARY KEY,
    paper TEXT NOT NULL,
    category TEXT NOT NULL,
    subcategory TEXT,
    name TEXT NOT NULL,
    description TEXT,
    effect TEXT,
    page INTEGER,
    quote TEXT,
    verified INTEGER NOT NULL,
    reason TEXT,
    offset INTEGER,
    length INTEGER,
    extra TEXT NOT NULL DEFAULT '{}'
);
"""

# where a mention's evidence is beyond its span: alignment, evidence sentence, its offset, support; how it was found
EXTRA_KEYS = ("alignment", "evidence", "evidence_offset", "support", "cited", "how", "candidate")

PAPER_COLS = "sha256 path name title authors year pages status error stats seconds finished".split()
MENTION_COLS = "id paper category subcategory name description effect page quote verified reason offset length extra".split()


class BuildStore(SqliteStore):
    DB = "build.db"
    SCHEMA = _BUILD_SCHEMA
    KIND = "knowledge build"
    CONTINUE = "run the same `fairnad knowledge build` again to continue it"
    ADDED_COLUMNS = {"mentions": [("extra", "TEXT NOT NULL DEFAULT '{}'")]}  # builds made before grounding

    def record_paper(self, paper: dict[str, Any], mentions: list[dict[str, Any]]) -> None:
        """The paper's outcome and all its mentions, atomically."""
        with self._tx() as c:
            c.execute("DELETE FROM mentions WHERE paper = ?", (paper["sha256"],))
            c.execute(
                f"INSERT OR REPLACE INTO papers({', '.join(PAPER_COLS)}) VALUES ({', '.join('?' * len(PAPER_COLS))})",
                _storable(
                    paper["sha256"], paper["path"], paper["name"], paper.get("title"), json.dumps(paper.get("authors", [])),
                    paper.get("year"), paper.get("pages"), paper["status"], paper.get("error"),
                    json.dumps(paper.get("stats", {})), paper.get("seconds"), time.time(),
                ),
            )  # fmt: skip
            c.executemany(
                f"INSERT INTO mentions({', '.join(MENTION_COLS[1:])}) VALUES ({', '.join('?' * (len(MENTION_COLS) - 1))})",
                [
                    _storable(paper["sha256"], m["category"], m.get("subcategory"), m["name"], m.get("description"),
                              m.get("effect"), m.get("page"), m.get("quote"), int(bool(m.get("verified"))), m.get("reason"),
                              m.get("offset"), m.get("length"),
                              json.dumps({k: m[k] for k in EXTRA_KEYS if m.get(k) is not None}))
                    for m in mentions
                ],
            )  # fmt: skip

    def papers(self) -> list[dict[str, Any]]:
        out = []
        for row in self._query(f"SELECT {', '.join(PAPER_COLS)} FROM papers ORDER BY finished"):
            d = dict(zip(PAPER_COLS, row))
            d["authors"], d["stats"] = json.loads(d["authors"]), json.loads(d["stats"])
            out.append(d)
        return out

    def paper(self, sha256: str) -> dict[str, Any] | None:
        return next((p for p in self.papers() if p["sha256"] == sha256), None)

    def mentions(self, verified_only: bool = True) -> list[dict[str, Any]]:
        where = "WHERE verified = 1" if verified_only else ""
        rows = self._query(f"SELECT {', '.join(MENTION_COLS)} FROM mentions {where} ORDER BY id")
        out = []
        for r in rows:
            d = dict(zip(MENTION_COLS, r))
            d.update(json.loads(d.pop("extra") or "{}"))
            out.append(d)
        return out
