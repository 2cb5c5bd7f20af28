"""Run untrusted candidate code in a separate, limited process and categorise what happens.

Each evaluation gets its own process (group), temporary working directory, stripped environment
(no API keys), thread and file-size limits, a hard wall-clock limit and a memory / process-count
watchdog that kills the whole tree. Where Linux namespaces are available (root, or unprivileged
user namespaces) it also gets no network, its own PID namespace, and a read-only view of the
file system except its working directory. Where they are not, it falls back to limits alone and
says so (`isolation` in every result).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

CATEGORIES = ("syntax", "import", "build", "shape", "budget", "timeout", "memory", "nan", "crash")

# Inside the new namespaces the candidate gets a root of its own: an empty read-only tmpfs holding
# read-only binds of only what the worker needs (the system, Python and its packages, fairnad's
# package, the dataset: $FAIRNAD_JAIL_RO, one path per line), /dev, a fresh /proc and its work
# directory (writable). The user's home, other runs and the project are simply not there. Then
# chroot, and every capability is dropped (setpriv), so it can neither remount nor chroot back out.
#
# /proc is the namespace's own (it shows only the sandbox's processes) and stays a read-write mount:
# remounting it read-only makes CUDA's initialisation fail (cudaGetDeviceCount: Error 304, "OS call
# failed or operation not supported on this OS"; bisected on an H200, 2026-12-04), so every GPU
# evaluation failed. What a writable /proc could reach outside the sandbox is closed the way container
# runtimes close it (Docker's defaults, under which CUDA works): the kernel's settings and triggers
# (/proc/sys, sysrq-trigger, irq, bus, fs) are read-only binds, and what leaks kernel memory or other
# processes' activity (kcore, keys, timer_list, sched_debug, latency_stats; acpi, scsi, asound) is
# hidden behind /dev/null or an empty read-only tmpfs.
_JAIL = r"""
set -e
W="$1"; shift
R="$W/.root"
mount --make-rprivate /
mkdir -p "$R" && mount -t tmpfs -o mode=755,size=1m fairnad-root "$R"
printf '%s
' "$FAIRNAD_JAIL_RO" | while IFS= read -r p; do
  [ -n "$p" ] && [ -e "$p" ] || continue
  if [ -d "$p" ]; then mkdir -p "$R$p"; else mkdir -p "$R$(dirname "$p")" && : > "$R$p"; fi
  mount --rbind "$p" "$R$p" && mount -o remount,bind,ro "$R$p"
done
for f in /etc/shadow /etc/gshadow /etc/sudoers; do [ -f "$R$f" ] && mount --bind /dev/null "$R$f" || true; done
mkdir -p "$R/dev" "$R/proc" "$R/tmp" "$R$W"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
for p in sys sysrq-trigger irq bus fs; do
  [ -e "$R/proc/$p" ] && mount --bind "$R/proc/$p" "$R/proc/$p" && mount -o remount,bind,ro "$R/proc/$p" || true
done
for p in kcore keys timer_list sched_debug latency_stats; do [ -f "$R/proc/$p" ] && mount --bind /dev/null "$R/proc/$p" || true; done
for p in acpi scsi asound; do [ -d "$R/proc/$p" ] && mount -t tmpfs -o ro,mode=555 fairnad-masked "$R/proc/$p" || true; done
mount --bind "$W" "$R$W"
for m in $(awk '{print $2}' /proc/self/mounts | grep "^$R/" | grep -v "^$R$W$" | grep -v "^$R/dev" | grep -v "^$R/proc"); do
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
mount -o remount,ro "$R"
exec chroot "$R" /bin/sh -c 'cd "$0" && exec setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- "$@"' "$W" "$@"
"""


def jail_paths(dataset: str | None = None) -> list[str]:
    """What a candidate can read: the system, the Python it runs on with its packages, fairnad's own
    package (the worker), and the dataset. Not the user's home, the project or other runs."""
    import fairnad

    system = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys", "/opt/conda"]
    python = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    python |= {p for p in sys.path if p and "-packages" in p}  # site- and dist-packages
    paths = system + sorted(python) + [str(Path(fairnad.__file__).resolve().parent)]
    if dataset:
        paths.append(str(Path(dataset).resolve()))
    real = {str(Path(p).resolve()) for p in paths if Path(p).exists()}  # symlinked dirs: the real place too
    return sorted(set(paths) | real)


_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "CUDA_HOME", "SYSTEMROOT")


@dataclass
class Limits:
    timeout: float = 120.0  # seconds, wall clock, whole process tree
    memory_mb: int = 4096  # resident memory of the whole tree
    threads: int = 1  # torch / BLAS threads
    max_procs: int = 32  # processes in the tree (fork bombs)
    max_file_mb: int = 512  # largest file the candidate may write
    output_kb: int = 16  # stdout / stderr kept for feedback (the tail)
    weights_mb: int = 256  # largest trained-weights file brought back (when weights are asked for)


@dataclass
class SandboxResult:
    status: str  # "complete" | "failed"
    category: str | None = None
    error: str | None = None
    traceback: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    curves: list[dict] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    startup_seconds: float | None = None  # process start to first training step
    isolation: str = ""
    weights: bytes | None = None  # the trained weights (safetensors file) when asked for; plain bytes, so they
    # come back from a Ray node as they do from a local process
    stages: dict[str, float] = field(default_factory=dict)  # seconds from process start to each stage
    started: float = 0.0  # wall-clock time stamps of the evaluation
    finished: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def report(self) -> dict[str, Any]:
        """As to_dict, without the weights' bytes (for JSON and for strategies)."""
        return {k: v for k, v in self.__dict__.items() if k != "weights"}


def _libc():
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


@lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """Probe once: can we make a network-less, read-only-root jail here?"""
    if sys.platform != "linux" or any(shutil.which(t) is None for t in ("unshare", "mount", "setpriv", "awk")):
        return False
    probe = Path(tempfile.mkdtemp(prefix="fairnad-probe-"))
    outside = probe.parent / f"{probe.name}-outside"
    try:
        cmd = [*_unshare_prefix(), "sh", "-c", _JAIL, "sh", str(probe), "/bin/sh", "-c",
               f'touch ok && ! touch "{outside}" 2>/dev/null']  # fmt: skip
        env = {**os.environ, "FAIRNAD_JAIL_RO": "\n".join(jail_paths())}
        r = subprocess.run(cmd, capture_output=True, timeout=20, env=env)
        return r.returncode == 0 and (probe / "ok").exists() and not outside.exists()
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)
        outside.unlink(missing_ok=True)


class PidsCgroup:
    """A cgroup whose pids.max bounds the sandbox's processes and threads (kernel-enforced, so a
    fork bomb cannot outrun the watchdog). Root only: cgroup v1's pids hierarchy or cgroup v2."""

    ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        (path / "pids.max").write_text(str(limit))

    @classmethod
    def create(cls, limit: int) -> "PidsCgroup | None":
        root = _pids_cgroup_root()
        if root is None:
            return None
        path = Path(tempfile.mkdtemp(prefix="fairnad-sbx-", dir=root))
        try:
            return cls(path, limit)
        except OSError:
            cls._remove(path)
            return None

    def enter(self) -> None:  # in the child, before exec
        with open(self.path / "cgroup.procs", "w") as f:
            f.write(str(os.getpid()))

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def close(self) -> None:
        for _ in range(50):  # kill stragglers until the group is empty, then remove it
            pids = self.pids()
            if not pids:
                break
            _kill_pids(pids)
            time.sleep(0.02)
        self._remove(self.path)

    @staticmethod
    def _remove(path: Path) -> None:
        try:
            path.rmdir()  # cgroup folders go with rmdir; their control files are not real files
        except OSError:
            pass


@lru_cache(maxsize=1)
def _pids_cgroup_root() -> Path | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return None
    for root in PidsCgroup.ROOTS:
        if root == Path("/sys/fs/cgroup"):
            ctl = root / "cgroup.subtree_control"
            if not ctl.is_file() or "pids" not in ctl.read_text().split():
                continue
        elif not (root / "cgroup.procs").is_file():
            continue
        try:
            probe = Path(tempfile.mkdtemp(prefix="fairnad-probe-", dir=root))
        except OSError:
            continue
        ok = (probe / "pids.max").exists()
        PidsCgroup._remove(probe)
        if ok:
            return root
    return None


def _unshare_prefix() -> list[str]:
    cmd = ["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
    if os.geteuid() != 0:
        cmd.insert(1, "--map-root-user")
    return cmd


def _tree(root: int) -> list[int]:
    """The pids of `root` and all its descendants (reads /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _memory_mb(pids: list[int]) -> float:
    """Proportional set size of the tree (shared pages split between sharers, so forks of a big
    process are not counted many times); resident size where smaps_rollup is unavailable."""
    total_kb = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total_kb += int(line.split()[1])
                        break
            continue
        except (OSError, IndexError, ValueError):
            pass
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total_kb += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024
        except (OSError, IndexError, ValueError):
            continue
    return total_kb / 1024


class Sandbox:
    """`run(source, job)` evaluates one candidate file in a fresh sandboxed process."""

    def __init__(self, limits: Limits | None = None, isolation: str = "auto", python: str | None = None) -> None:
        if isolation not in ("auto", "namespaces", "limits"):
            raise ValueError("isolation must be auto, namespaces or limits")
        self.limits = limits or Limits()
        self.python = python or sys.executable
        if isolation == "auto":
            isolation = "namespaces" if namespaces_available() else "limits"
        elif isolation == "namespaces" and not namespaces_available():
            raise RuntimeError("Linux namespaces are not available here (unshare refused); use isolation='limits'")
        self.isolation = isolation

    def run(
        self, source: str, job: dict[str, Any], *, limits: Limits | None = None, env: dict[str, str] | None = None,
    ) -> SandboxResult:  # fmt: skip
        """Evaluate `source` (a candidate file's text) as `job` describes; never raises for its failures.
        With job["save_weights"], a complete result carries the trained weights' bytes. The work
        directory is always removed."""
        lim = limits or self.limits
        t0 = time.time()
        try:
            compile(source, "candidate.py", "exec")  # syntax is checked here, without running anything
        except (SyntaxError, ValueError, MemoryError, RecursionError) as err:  # (absurdly nested code: the last two)
            line = getattr(err, "lineno", None)
            where = f" (line {line})" if line else ""
            text = (getattr(err, "text", "") or "").rstrip()
            return SandboxResult("failed", "syntax", f"{type(err).__name__}: {getattr(err, 'msg', err)}{where}",
                                 traceback=f"{text}\n" if text else None, isolation=self.isolation)  # fmt: skip
        work = Path(tempfile.mkdtemp(prefix="fairnad-sbx-"))
        try:
            (work / "candidate.py").write_text(source)
            full_job = {**job, "source": str(work / "candidate.py"), "threads": lim.threads,
                        "weights_file": str(work / WEIGHTS_FILE)}  # fmt: skip
            (work / "job.json").write_text(json.dumps(full_job))
            jail = {"FAIRNAD_JAIL_RO": "\n".join(jail_paths((job.get("dataset") or {}).get("path")))}
            res = self._execute(work, lim, t0, {**jail, **(env or {})})
            _hide_work_dir(res, work)
            if job.get("save_weights") and res.status == "complete" and not res.metrics.get("weights_error"):
                res.weights, problem = _read_weights(work / WEIGHTS_FILE, lim.weights_mb)
                if problem:
                    res.metrics["weights_error"] = problem
            res.started, res.finished = t0, time.time()
            res.seconds = round(res.finished - t0, 3)
            return res
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # -- the process --------------------------------------------------------------------------
    def _env(self, work: Path, lim: Limits, t0: float, fd: int) -> dict[str, str]:
        env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
        threads = str(lim.threads)
        env.update({
            "HOME": str(work), "TMPDIR": str(work), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
            "PYTHONHASHSEED": "0", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads, "FAIRNAD_T0": repr(t0), "FAIRNAD_RESULT_FD": str(fd),
            "FAIRNAD_ISOLATION": self.isolation,
            "PYTHONPATH": os.pathsep.join(str(Path(p).resolve()) for p in sys.path if p and Path(p).is_dir()),
        })  # fmt: skip
        return env

    def _preexec(self, lim: Limits, cgroup: "PidsCgroup | None"):
        libc = _libc()

        def setup() -> None:  # runs in the child, between fork and exec
            if cgroup is not None:
                cgroup.enter()
            os.setsid()
            if libc is not None:
                libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with fairnad
                libc.prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans stay in our tree
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            size = lim.max_file_mb * 2**20
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
            if os.geteuid() != 0:  # counts the user's processes and threads; root is exempt (cgroup instead)
                n = _user_procs() + lim.max_procs + 64 * lim.threads
                resource.setrlimit(resource.RLIMIT_NPROC, (n, n))

        return setup

    def _execute(self, work: Path, lim: Limits, t0: float, extra_env: dict[str, str]) -> SandboxResult:
        r_fd, w_fd = os.pipe()
        worker = [self.python, "-m", "fairnad.evaluate.worker", str(work / "job.json")]
        cmd = worker if self.isolation == "limits" else [*_unshare_prefix(), "sh", "-c", _JAIL, "sh", str(work), *worker]
        out, err = open(work / "stdout.txt", "wb"), open(work / "stderr.txt", "wb")
        # tasks = processes + threads: torch's pools, CUDA's helpers, and max_procs processes of headroom
        cgroup = PidsCgroup.create(lim.max_procs + 64 + 8 * lim.threads)
        try:
            proc = subprocess.Popen(
                cmd, cwd=work, env={**self._env(work, lim, t0, w_fd), **extra_env}, stdin=subprocess.DEVNULL,
                stdout=out, stderr=err, pass_fds=(w_fd,), preexec_fn=self._preexec(lim, cgroup), close_fds=True,
            )  # fmt: skip
        except BaseException:
            if cgroup is not None:
                cgroup.close()
            raise
        finally:
            os.close(w_fd)
            out.close()
            err.close()
        try:
            return self._watch(proc, r_fd, work, lim, t0, cgroup)
        finally:
            if cgroup is not None:
                cgroup.close()

    def _watch(self, proc, r_fd, work: Path, lim: Limits, t0: float, cgroup) -> SandboxResult:
        events: list[dict] = []
        reader = threading.Thread(target=_read_events, args=(r_fd, events), daemon=True)
        reader.start()
        killed: tuple[str, str] | None = None
        peak_mb = 0.0
        while proc.poll() is None:
            pids = cgroup.pids() if cgroup is not None else _tree(proc.pid)
            if time.time() - t0 > lim.timeout:
                killed = ("timeout", f"still running after {lim.timeout:.0f}s (the wall-clock limit); killed")
            elif len(pids) > lim.max_procs + 3:  # unshare, sh/python and the namespace's init are ours
                killed = ("crash", f"started {len(pids)} processes, over the limit of {lim.max_procs}; killed")
            else:  # memory last: reading it is the costly check
                mb = _memory_mb(pids)
                peak_mb = max(peak_mb, mb)
                if mb > lim.memory_mb:
                    killed = ("memory", f"used {mb:.0f} MB, over the {lim.memory_mb} MB limit; killed")
            if killed:
                _kill_tree(proc, pids)
                break
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        proc.wait()
        _kill_tree(proc, _tree(proc.pid))  # anything left behind (daemonised children)
        reader.join(timeout=5)
        res = SandboxResult("failed", isolation=self.isolation + (" + pids cgroup" if cgroup else ""))
        res.stdout = _tail(work / "stdout.txt", lim.output_kb)
        res.stderr = _tail(work / "stderr.txt", lim.output_kb)
        res.curves = [{k: v for k, v in e.items() if k != "event"} for e in events if e.get("event") == "epoch"]
        for e in events:
            if e.get("event") == "stage":
                res.stages[e["stage"]] = round(e["t"], 3)
                if e["stage"] == "first_step":
                    res.startup_seconds = round(e["t"], 3)
            if e.get("event") == "checked":
                res.metrics["params"] = e["params"]
                res.metrics.update({k: e.get(k) for k in ("structure", "depth", "width", "shapes")})
        result = next((e for e in reversed(events) if e.get("event") == "result"), None)
        if killed is not None:
            res.category, res.error = killed
        elif result is not None:
            res.status = result["status"]
            res.category, res.error, res.traceback = result.get("category"), result.get("error"), result.get("traceback")
            res.metrics.update(result.get("metrics") or {})
        else:
            res.category = "crash"
            code = proc.returncode
            how = f"was killed by signal {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
            res.error = f"the evaluation process {how} before reporting a result"
        res.metrics["peak_memory_mb"] = round(peak_mb, 1)
        if res.curves and "curves" not in res.metrics:
            res.metrics["curves"] = res.curves
        return res


WEIGHTS_FILE = "weights.safetensors"  # what the worker writes in its work directory


def _hide_work_dir(res: SandboxResult, work: Path) -> None:
    """Errors name the candidate `candidate.py`, not its random work directory: the text goes into
    prompts, and the same failure must read the same on every run (replay compares prompts)."""
    for attr in ("error", "traceback", "stdout", "stderr"):
        text = getattr(res, attr, None)
        if isinstance(text, str) and str(work) in text:
            setattr(res, attr, text.replace(str(work / "candidate.py"), "candidate.py").replace(str(work), "."))


def _read_weights(path: Path, max_mb: int) -> tuple[bytes | None, str | None]:
    """The worker's weights file, read after the process tree is gone. The candidate could write in
    the work directory too: only a plain file (no link, one name) within the size cap is read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as err:
        return None, f"no weights file ({err.strerror})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return None, "the weights file is not a plain file; not kept"
        if st.st_size > max_mb * 2**20:
            return None, f"the weights file has {st.st_size / 2**20:.0f} MB, over the {max_mb} MB cap; not kept"
        with os.fdopen(fd, "rb") as f:
            fd = -1
            data = f.read(max_mb * 2**20 + 1)
        if len(data) > max_mb * 2**20:
            return None, f"the weights file is over the {max_mb} MB cap; not kept"
        return data, None
    finally:
        if fd >= 0:
            os.close(fd)


def _read_events(fd: int, sink: list) -> None:
    with os.fdopen(fd, "r", errors="replace") as f:
        for line in f:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(ev, dict):
                sink.append(ev)


def _kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _kill_tree(proc: subprocess.Popen, pids: list[int]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _kill_pids(pids)


def _tail(path: Path, kb: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - kb * 1024))
            data = f.read()
        text = data.decode(errors="replace")
        return ("...[truncated]\n" + text) if size > kb * 1024 else text
    except OSError:
        return ""


def _user_procs() -> int:
    uid = os.geteuid()
    n = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    n += 1
            except OSError:
                continue
    return n
