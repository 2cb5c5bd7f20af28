"""Kill -9 campaigns: start a fairnad command, kill it at a random moment, check what the database
holds, start it again, until it finishes. Used by the tests (a few kills) and by
benchmarks/reliability.py (many), which publishes the counts in docs/reliability.md.

A kill lands either after a random number of new rows (mid-search: evaluations, LLM calls) or
after a random delay (anywhere: start-up, imports, the LLM server starting, a write).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# measurements of the machine, not results: they differ between any two runs of the same thing
TIMING = ("seconds", "startup_seconds", "train_seconds", "images_per_second", "peak_memory_mb", "t", "created",
          "finished", "latency")


def query(db: Path, sql: str) -> list[tuple]:
    """Read another process's database (read-only, as it runs)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            return c.execute(sql).fetchall()
    except sqlite3.Error:
        return []


def untimed(value):
    """A stored JSON value without timings and memory peaks (they differ between any two runs)."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def comparable_tree(path: Path) -> dict:
    """A knowledge tree file without when, where and under which name it was built."""
    tree = json.loads(Path(path).read_text())
    for k in ("built", "created", "name", "build_dir"):
        tree.get("graph", {}).pop(k, None)
    return tree


def finished_candidates(db: Path) -> list[tuple]:
    rows = query(db, "SELECT trial, genotype, parents, origin, status, metrics, error, counted FROM candidates "
                     "WHERE status != 'running' ORDER BY trial")  # fmt: skip
    return [(t, g, untimed(p), untimed(o), s, untimed(m), e, c) for t, g, p, o, s, m, e, c in rows]


def _descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for k in map(int, kids):
            if k not in out:
                out.add(k)
                todo.append(k)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class Campaign:
    """What happened: kills made, orphans left, rows lost or changed, evaluations counted twice."""

    kills: int = 0
    starts: int = 0
    killed_children: int = 0
    orphans: list[int] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    doubles: list[str] = field(default_factory=list)
    rows_at_kill: list[int] = field(default_factory=list)  # finished rows in the database at each kill
    final_rows: int = 0
    seconds: float = 0.0
    returncode: int | None = None
    stderr: str = ""

    @property
    def mid_search(self) -> int:
        """Kills that left a run part-done: some rows finished, not all. (A replayed search writes all
        its rows within milliseconds of start-up, so how many kills land there is timing, not a count.)"""
        return sum(0 < r < self.final_rows for r in self.rows_at_kill)

    @property
    def clean(self) -> bool:
        return not (self.orphans or self.lost or self.doubles) and self.returncode == 0


def run_campaign(first: list[str], again: list[str], cwd: Path, db: Path, *, kills: int, rng, progress_sql: str,
                 max_step: int = 5, max_delay: float = 3.0, timeout: float = 900, env: dict | None = None,
                 gate: bool = False) -> Campaign:  # fmt: skip
    """Start `first`, then kill -9 and start `again` up to `kills` times, until it exits by itself.
    `progress_sql` counts the rows that mark progress (a kill waits for 1..max_step new ones).
    `gate`: once rows are counted, the command runs in slices of a fraction of a millisecond, stopped
    (SIGSTOP) while the rows are counted, so a kill after N new rows lands near there and still at any
    point of the code (a replayed search writes all its rows within milliseconds, faster than any poll);
    a kill by time lands in start-up or, at the latest, at the rows' target."""
    out = Campaign()
    t0 = time.monotonic()
    full_env = {**os.environ, **(env or {})}
    core = min(os.sched_getaffinity(0))
    with _pinned(core if gate else None):
        _campaign(out, first, again, cwd, db, kills=kills, rng=rng, progress_sql=progress_sql, max_step=max_step,
                  max_delay=max_delay, timeout=timeout, env=full_env, gate=gate, core=core)  # fmt: skip
    out.seconds = round(time.monotonic() - t0, 1)
    return out


def _lowest_priority(pid: int) -> None:
    """nice 19 for every thread of `pid` (Linux sets a priority per thread)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:  # it has just exited
        return
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, int(tid), 19)
        except ProcessLookupError:
            pass


@contextmanager
def _pinned(core: int | None):
    """This process on one core (None: as it is) while the block runs."""
    own = os.sched_getaffinity(0)
    if core is not None:
        os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, own)


def _campaign(out: Campaign, first: list[str], again: list[str], cwd: Path, db: Path, *, kills: int, rng,
              progress_sql: str, max_step: int, max_delay: float, timeout: float, env: dict, gate: bool,
              core: int) -> None:  # fmt: skip
    """run_campaign's starts and kills, recorded in `out`."""
    snapshot: list[tuple] = []
    while True:
        # the first start, or a restart after a kill that came before the database was made
        args = again if out.starts and db.is_file() else first
        proc = subprocess.Popen([sys.executable, "-m", "fairnad", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)  # fmt: skip
        out.starts += 1
        if gate:  # on a busy machine the counting must not wait for a core while the command runs on:
            # both on one core, and (once the search has begun) the command at the lowest priority, so
            # each wake-up here preempts it. Not from the start: at nice 19 beside a busy process its
            # ~1 s start-up took about a minute of wall time, 7 starts took the test to 1,209 s.
            os.sched_setaffinity(proc.pid, {core})
        lowered = False
        if out.kills >= kills:
            break
        by_rows = rng.random() < 0.7
        start_rows = (query(db, progress_sql) or [(0,)])[0][0]
        target = start_rows + int(rng.integers(1, max_step + 1))
        deadline = time.monotonic() + (timeout if by_rows else float(rng.uniform(0.05, max_delay)))
        while proc.poll() is None and time.monotonic() < deadline:
            # a kill by time is also bounded by rows: start-up is short (~0.6 s), and a search that ran
            # freely past it (a tabular or replayed one) would spend the rows meant for the other kills
            rows = query(db, progress_sql)
            if rows and rows[0][0] >= target:
                break
            if rows and gate:  # the search has begun: let it run for slices of a fraction of a millisecond
                if not lowered:
                    _lowest_priority(proc.pid)
                    lowered = True
                os.killpg(proc.pid, signal.SIGCONT)
                time.sleep(0.0002)
                os.killpg(proc.pid, signal.SIGSTOP)
            else:
                time.sleep(0.005)
        if proc.poll() is not None:  # it finished (or failed) before the kill
            break
        children = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if gate:
            try:  # what it started, stopped with it, must be free to exit
                os.killpg(proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        out.kills += 1
        out.killed_children += len(children)
        end = time.monotonic() + 10
        while any(_alive(c) for c in children) and time.monotonic() < end:
            time.sleep(0.05)
        out.orphans += [c for c in children if _alive(c)]
        for c in out.orphans:
            os.kill(c, signal.SIGKILL)
        now = finished_candidates(db) if db.name == "run.db" else []
        out.rows_at_kill.append(len(now))
        if now[: len(snapshot)] != snapshot:
            out.lost.append(f"after kill {out.kills}: finished rows changed or vanished")
        snapshot = now
        counted = [r[1] for r in now if r[7]]
        if len(counted) != len(set(counted)):
            out.doubles.append(f"after kill {out.kills}: a genotype counted twice")
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    out.returncode, out.stderr = proc.returncode, err
    final = finished_candidates(db) if db.name == "run.db" else []
    out.final_rows = len(final)
    if final[: len(snapshot)] != snapshot:
        out.lost.append("at the end: finished rows changed or vanished")
    counted = [r[1] for r in final if r[7]]
    if len(counted) != len(set(counted)):
        out.doubles.append("at the end: a genotype counted twice")
