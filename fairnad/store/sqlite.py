"""The run database: one SQLite file per run, every fact committed the moment it happens.

Tables: meta (config, versions, status), candidates (one row per proposal, in trial order),
llm_calls (every request and answer), events (what happened when). WAL journaling keeps the
file consistent across `kill -9`; an exclusive lock file keeps a second process out.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shlex
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fairnad.errors import FairnadError, RunLockedError
from fairnad.space.candidate import Candidate

DB_NAME = "run.db"
LOCK_NAME = ".lock"
SCHEMA_VERSION = 1

_COMMON_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS llm_calls (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    purpose TEXT,
    messages TEXT NOT NULL,
    params TEXT NOT NULL,
    text TEXT,
    parsed TEXT,
    model TEXT,
    tokens_in INTEGER,
    tokens_out INTEGER,
    latency REAL,
    finish_reason TEXT,
    attempts INTEGER,
    error TEXT,
    replayed_from TEXT,
    created REAL NOT NULL,
    error_class TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
"""

_RUN_SCHEMA = """
CREATE TABLE IF NOT EXISTS candidates (
    id INTEGER PRIMARY KEY,
    trial INTEGER NOT NULL UNIQUE,
    genotype TEXT NOT NULL,
    parents TEXT NOT NULL DEFAULT '[]',
    origin TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    counted INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    finished REAL,
    improved_best INTEGER,
    improved_front INTEGER
);
CREATE TABLE IF NOT EXISTS probes (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    genotype TEXT NOT NULL,
    result TEXT NOT NULL,
    seconds REAL,
    created REAL NOT NULL
);
"""


# columns of the common tables added after release: an older run or build gets them when it is opened to
# write (its rows stay as they were: NULL there); a reader selects them only where they exist
COMMON_ADDED_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "llm_calls": [("error_class", "TEXT")],  # the error's class: a failed answer is replayed, a pause is not
}


class StoreError(FairnadError):
    """The run directory or its database cannot be used."""


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / DB_NAME).is_file()


class SqliteStore:
    """One folder, one SQLite file, one writer: meta, LLM calls and events, committed as they happen.
    Subclasses add their own tables (SCHEMA) and name their file (DB)."""

    DB = DB_NAME
    SCHEMA = ""
    ADDED_COLUMNS: dict[str, list[tuple[str, str]]] = {}  # table -> (column, declaration) added after release
    KIND = "run"
    CONTINUE = "continue it with `fairnad resume {dir}`"  # how a user picks up after a failed write

    def __init__(self, run_dir: Path, conn: sqlite3.Connection, lock_fd: int | None) -> None:
        self.run_dir = run_dir
        self._conn = conn
        self._lock_fd = lock_fd
        self._mutex = threading.Lock()

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: str | Path, config: dict[str, Any]):
        run_dir = Path(run_dir)
        db = run_dir / cls.DB
        taken = StoreError(f"{run_dir} already holds a {cls.KIND}; {cls.CONTINUE.format(dir=shlex.quote(str(run_dir)))} or pick another folder")
        state = _db_state(db) if db.is_file() else None
        if state == "foreign":
            raise StoreError(f"{db}: a file that is not a fairnad {cls.KIND} database; pick another folder or move "
                             "that file away")  # fmt: skip
        if state == "ours":
            raise taken
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create the run directory {run_dir}: {err.strerror}") from None
        lock_fd = _acquire_lock(run_dir, creating=True)
        if db.is_file():
            if _db_state(db) != "half":  # another process created it between our check and the lock
                os.close(lock_fd)
                raise taken
            _remove_db(db)  # a creation killed half-way (nothing was done yet): start it again
        try:
            store = cls(run_dir, _connect(run_dir / cls.DB), lock_fd)
        except StoreError:
            _remove_db(run_dir / cls.DB)
            os.close(lock_fd)
            raise
        from fairnad import __version__

        try:
            try:
                store._conn.executescript(_COMMON_SCHEMA + cls.SCHEMA)  # executescript manages its own transaction
            except sqlite3.Error as err:
                raise StoreError(f"{run_dir / cls.DB}: cannot create the database ({err})") from None
            store.set_meta(
                schema_version=SCHEMA_VERSION, fairnad_version=__version__, created=time.time(), config=config,
                status="created",
            )  # fmt: skip
        except StoreError:  # (disk full, read-only...): leave no half-made database that blocks a retry
            store._close_connection()
            _remove_db(run_dir / cls.DB)
            store.close()
            raise
        return store

    @classmethod
    def open(cls, run_dir: str | Path, *, readonly: bool = False):
        run_dir = Path(run_dir)
        if not (run_dir / cls.DB).is_file():
            raise StoreError(f"{run_dir} is not a {cls.KIND} folder (no {cls.DB} in it)")
        lock_fd = None if readonly else _acquire_lock(run_dir)
        try:
            conn = _connect(run_dir / cls.DB, readonly=readonly)
        except StoreError:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        store = cls(run_dir, conn, lock_fd)
        interrupted = StoreError(
            f"{run_dir / cls.DB} holds no {cls.KIND} yet (its creation was interrupted, nothing was done); "
            "start it again with the command that created it"
        )
        try:
            version = store.meta().get("schema_version")
        except StoreError as err:
            store.close()
            if "no such table" in str(err):
                raise interrupted from None
            raise
        if version is None:
            store.close()
            raise interrupted
        if version != SCHEMA_VERSION:
            store.close()
            raise StoreError(f"{run_dir}/{cls.DB} has schema version {version}, this fairnad reads {SCHEMA_VERSION}")
        if not readonly and cls.SCHEMA:  # tables and columns added since the run was made
            try:
                store._conn.executescript(cls.SCHEMA)
                for table, columns in [*COMMON_ADDED_COLUMNS.items(), *cls.ADDED_COLUMNS.items()]:
                    have = {row[1] for row in store._conn.execute(f"PRAGMA table_info({table})")}
                    for name, decl in columns:
                        if name not in have:
                            store._conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
            except sqlite3.Error as err:
                store.close()
                raise StoreError(f"{run_dir / cls.DB}: cannot update its tables ({err})") from None
        return store

    def close(self) -> None:
        with self._mutex:
            self._close_connection()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _close_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _tx(self):
        return _Tx(self)

    # -- meta -------------------------------------------------------------------------------
    def set_meta(self, **values: Any) -> None:
        with self._tx() as c:
            c.executemany(
                "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def meta(self) -> dict[str, Any]:
        rows = self._query("SELECT key, value FROM meta")
        return {k: json.loads(v) for k, v in rows}

    # -- llm calls --------------------------------------------------------------------------
    def add_llm_call(self, rec: dict[str, Any]) -> int:
        """Store one call; returns its seq (what a candidate's origin["llm_calls"] lists)."""
        p = rec.get("params", {})
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO llm_calls(key, purpose, messages, params, text, parsed, model, tokens_in, tokens_out,"
                " latency, finish_reason, attempts, error, replayed_from, created, error_class)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _storable(
                    rec["key"], rec.get("purpose"), json.dumps(rec["messages"]), json.dumps(p), rec.get("text"),
                    json.dumps(rec.get("parsed")), rec.get("model"), rec.get("tokens_in"), rec.get("tokens_out"),
                    rec.get("latency"), rec.get("finish_reason"), rec.get("attempts"), rec.get("error"),
                    rec.get("replayed_from"), rec.get("created") or time.time(), rec.get("error_class"),
                ),
            )  # fmt: skip
            return cur.lastrowid

    def llm_calls(self) -> list[dict[str, Any]]:
        keys = (
            "seq key purpose messages params text parsed model tokens_in tokens_out latency finish_reason attempts "
            "error replayed_from created"
        ).split()
        have = {row[1] for row in self._query("PRAGMA table_info(llm_calls)")}
        keys += [name for name, _ in COMMON_ADDED_COLUMNS["llm_calls"] if name in have]  # (an older run, read only)
        rows = self._query(f"SELECT {', '.join(keys)} FROM llm_calls ORDER BY seq")
        out = []
        for r in rows:
            d = dict(zip(keys, r))
            for k in ("messages", "params", "parsed"):
                d[k] = json.loads(d[k]) if d[k] is not None else None
            out.append(d)
        return out

    def llm_totals(self) -> dict[str, Any]:
        calls, tin, tout, secs, errors = self._query(
            "SELECT COUNT(*), COALESCE(SUM(tokens_in), 0), COALESCE(SUM(tokens_out), 0), COALESCE(SUM(latency), 0),"
            " COALESCE(SUM(error IS NOT NULL), 0) FROM llm_calls"
        )[0]
        return {"calls": calls, "tokens_in": tin, "tokens_out": tout, "seconds": round(secs, 3), "errors": errors}

    def llm_latencies(self) -> list[tuple[int, float | None]]:
        """(seq, seconds) of every stored LLM call."""
        return [(seq, lat) for seq, lat in self._query("SELECT seq, latency FROM llm_calls ORDER BY seq")]

    # -- events -----------------------------------------------------------------------------
    def add_event(self, kind: str, **data: Any) -> None:
        with self._tx() as c:
            c.execute("INSERT INTO events(time, kind, data) VALUES (?, ?, ?)", (time.time(), kind, json.dumps(data)))

    def events(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT time, kind, data FROM events ORDER BY id")
        return [{"time": t, "kind": k, **json.loads(d)} for t, k, d in rows]

    # -- plumbing ---------------------------------------------------------------------------
    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._mutex:
            if self._conn is None:
                raise StoreError(f"{self.run_dir}: the run store is closed")
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as err:
                raise StoreError(f"{self.run_dir / self.DB}: {err}") from None


class RunStore(SqliteStore):
    """One search run: the common tables plus every candidate. `create` a new run, `open` to resume."""

    SCHEMA = _RUN_SCHEMA
    # the Study's verdicts (improved the best / the front), stored since fairnad 0.2; NULL in older runs
    ADDED_COLUMNS = {"candidates": [("improved_best", "INTEGER"), ("improved_front", "INTEGER")]}

    # -- candidates -------------------------------------------------------------------------
    def add_candidate(self, cand: Candidate) -> Candidate:
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO candidates(trial, genotype, parents, origin, status, metrics, error, counted, created,"
                " finished, improved_best, improved_front) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _storable(
                    cand.trial, cand.genotype, json.dumps(cand.parents), json.dumps(cand.origin), cand.status,
                    json.dumps(cand.metrics), cand.error, int(cand.counted), cand.created, cand.finished,
                    _flag(cand.improved_best), _flag(cand.improved_front),
                ),
            )  # fmt: skip
            cand.id = cur.lastrowid
        return cand

    def finish_candidate(self, cand: Candidate) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE candidates SET status = ?, metrics = ?, error = ?, counted = ?, finished = ?, improved_best = ?,"
                " improved_front = ? WHERE id = ?",
                _storable(cand.status, json.dumps(cand.metrics), cand.error, int(cand.counted), cand.finished,
                          _flag(cand.improved_best), _flag(cand.improved_front), cand.id),
            )  # fmt: skip

    def candidates(self) -> list[Candidate]:
        have = {r[1] for r in self._query("PRAGMA table_info(candidates)")}
        verdicts = ", ".join(c if c in have else "NULL" for c in ("improved_best", "improved_front"))  # (older runs)
        rows = self._query(
            "SELECT id, trial, genotype, parents, origin, status, metrics, error, counted, created, finished, "
            f"{verdicts} FROM candidates ORDER BY trial"
        )
        return [
            Candidate(
                id=r[0], trial=r[1], genotype=r[2], parents=json.loads(r[3]), origin=json.loads(r[4]), status=r[5],
                metrics=json.loads(r[6]), error=r[7], counted=bool(r[8]), created=r[9], finished=r[10],
                improved_best=None if r[11] is None else bool(r[11]),
                improved_front=None if r[12] is None else bool(r[12]),
            )
            for r in rows
        ]  # fmt: skip


    # -- probes: the cheap checks strategies ask for before spending an evaluation ----------------
    def add_probe(self, kind: str, key: str, genotype: str, result: dict[str, Any], seconds: float) -> None:
        with self._tx() as c:
            c.execute("INSERT INTO probes(kind, key, genotype, result, seconds, created) VALUES (?, ?, ?, ?, ?, ?)",
                      _storable(kind, key, genotype, json.dumps(result), seconds, time.time()))  # fmt: skip

    def probes(self) -> list[dict[str, Any]]:
        try:
            rows = self._query("SELECT seq, kind, key, genotype, result, seconds FROM probes ORDER BY seq")
        except StoreError as err:  # a run made before probes existed, opened read-only
            if "no such table" in str(err):
                return []
            raise
        return [{"seq": r[0], "kind": r[1], "key": r[2], "genotype": r[3], "result": json.loads(r[4]), "seconds": r[5]}
                for r in rows]  # fmt: skip


def _flag(v: bool | None) -> int | None:
    return None if v is None else int(v)


class _Tx:
    """One committed transaction; errors become a one-line StoreError (disk full, read-only...)."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        self.store._mutex.acquire()
        if self.store._conn is None:
            self.store._mutex.release()
            raise StoreError(f"{self.store.run_dir}: the run store is closed")
        try:
            self.store._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            self.store._mutex.release()
            raise _write_error(self.store, err) from None
        return self.store._conn

    def __exit__(self, exc_type, exc, tb) -> bool:
        conn = self.store._conn
        try:
            if exc_type is None:
                conn.execute("COMMIT")
            else:
                conn.execute("ROLLBACK")
        except sqlite3.Error as err:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self.store._mutex.release()
            raise _write_error(self.store, err) from None
        self.store._mutex.release()
        if isinstance(exc, sqlite3.Error):
            raise _write_error(self.store, exc) from None
        return False


def _write_error(store: SqliteStore, err: sqlite3.Error) -> StoreError:
    """One line: which file, why, that what was committed is safe, and how to go on."""
    go_on = store.CONTINUE.format(dir=shlex.quote(str(store.run_dir)))
    code = (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF  # the primary code of an extended one
    if code == sqlite3.SQLITE_FULL:
        hint = f"free some disk space, then {go_on}"
    elif code == sqlite3.SQLITE_READONLY:
        hint = f"the folder is read-only now; make it writable, then {go_on}"
    else:
        hint = go_on
    return StoreError(f"{store.run_dir / store.DB}: could not write ({err}); everything saved before is kept; {hint}")


def _storable(*values: Any) -> tuple:
    """SQL parameters with text SQLite can store (see `clean_text`)."""
    return tuple(clean_text(v) if isinstance(v, str) else v for v in values)


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` as it is stored: lone surrogates (a file name that is not UTF-8, a broken escape in a
    model's answer), which SQLite cannot hold as UTF-8, become U+FFFD instead of failing the write."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)


def _db_state(db: Path) -> str:
    """What a file named like our database is: "ours" (a made store), "half" (a creation killed before its
    meta was written: safe to make again) or "foreign" (not SQLite, or not ours: left alone)."""
    try:
        conn = _connect_readonly(db)
    except (StoreError, sqlite3.Error, OSError):
        return "foreign"
    try:
        made = conn.execute("SELECT 1 FROM meta WHERE key = 'schema_version'").fetchall()
        return "ours" if made else "half"
    except sqlite3.OperationalError as err:
        return "half" if "no such table" in str(err) else "foreign"
    except sqlite3.DatabaseError:
        return "foreign"
    finally:
        conn.close()


def _remove_db(path: Path) -> None:
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            p.unlink()
        except OSError:
            pass


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    try:
        if readonly:
            return _connect_readonly(path)
        else:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # survives process crashes; FULL only adds power-loss safety
        conn.execute("PRAGMA foreign_keys=ON")
        return conn
    except sqlite3.Error as err:
        raise StoreError(f"{path}: cannot open the run database ({err})") from None


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection that also works where nothing can be written (a read-only mount, a
    copy on read-only media): a WAL database closed cleanly has no -wal/-shm file, and SQLite cannot
    create them there, so such a file is opened as immutable (nothing can change it anyway)."""
    uri = f"file:{quote(os.fsencode(path.resolve()))}?mode=ro"  # quoted: "?", "#", "%", non-UTF-8 bytes in a name
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        conn.close()
        wal = path.with_name(path.name + "-wal")
        if wal.exists() or os.access(path.parent, os.W_OK):
            raise
        conn = sqlite3.connect(f"{uri}&immutable=1", uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def in_use(run_dir: str | Path) -> bool:
    """Whether a live process holds the run's lock (a run whose status says "running" after a kill -9
    holds none)."""
    try:
        fd = os.open(Path(run_dir) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # (closing releases a shared lock taken here)


def _acquire_lock(run_dir: Path, creating: bool = False) -> int:
    """An exclusive advisory lock held for the life of the process (released by the OS on kill -9)."""
    path = run_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            if creating:
                raise StoreError(f"cannot write in {run_dir} ({err.strerror}); pick a writable folder") from None
            raise StoreError(
                f"{run_dir} is read-only ({err.strerror}): it can still be read (e.g. `fairnad runs show`), "
                "but to continue it, copy it to a writable folder first"
            ) from None
        raise StoreError(f"cannot open {path}: {err.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunLockedError(
            f"{run_dir} is in use by process {holder}; wait for it to finish or stop it first"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
