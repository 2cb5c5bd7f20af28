"""The sandbox against a hostile corpus: each candidate is contained and categorised, the parent
and other evaluations are unaffected, and nothing outside the work directory changes."""

import os
import socket
import sqlite3
import tempfile
import threading

import pytest

from fairnad.evaluate.code import EvalRequest, run_request
from fairnad.evaluate.executors import LocalPool
from fairnad.evaluate.sandbox import namespaces_available
from fairnad.space.reference import reference

GOOD = reference("small-cnn").source()
TINY = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, num_classes, in_chans, out=None, nan=False):
        super().__init__()
        self.fc = nn.Linear(in_chans * 64, out or num_classes)
        self.nan = nan

    def forward(self, x):
        y = self.fc(x.flatten(1))
        return y * float("nan") if self.nan else y

def build_model(num_classes=10, in_chans=1):
    return Net(num_classes, in_chans, {out}, {nan})
"""

# name: (source, expected category)
HOSTILE = {
    "infinite_loop": ("while True:\n    pass\n", "timeout"),
    "sleep": ("import time\ntime.sleep(10_000)\n", "timeout"),
    "fork_bomb": ("import os\nwhile True:\n    os.fork()\n", "crash"),
    "memory_hog": ("blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 2**20))\n", "memory"),
    "sys_exit": ("import sys\nsys.exit(3)\n", "import"),
    "os_exit": ("import os\nos._exit(0)\n", "crash"),
    "segfault": ("import ctypes\nctypes.string_at(0)\n", "crash"),
    "nan_loss": (TINY.format(out=None, nan=True), "nan"),
    "wrong_shape": (TINY.format(out=5, nan=False), "shape"),
    "hundred_million_params": ("from torch import nn\ndef build_model(num_classes, in_chans):\n"
                               "    return nn.Sequential(nn.Flatten(), nn.Linear(10000, 10000))\n", "budget"),
    "syntax": ("def build_model(:\n    pass\n", "syntax"),
    "no_builder": ("import torch\nMODEL = None\n", "import"),
    "build_raises": ("def build_model(num_classes, in_chans):\n    raise RuntimeError('no')\n", "build"),
    "missing_import": ("import tensorflow_that_is_not_here\n", "import"),
}  # fmt: skip


def req(source, **kw):
    base = dict(dataset="digits", epochs=1, max_params=5_000_000, timeout=8, memory_mb=1500)
    return EvalRequest(source=source, **{**base, **kw})


@pytest.mark.slow
@pytest.mark.parametrize("isolation", ["namespaces", "limits"])
def test_hostile_corpus_is_contained_and_categorised(isolation, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the sandbox makes its work folders
    if isolation == "namespaces" and not namespaces_available():
        pytest.skip("this machine refuses Linux namespaces; the limits-only mode is tested instead")
    pool = LocalPool(workers=2, isolation=isolation)
    names = list(HOSTILE)
    # Only the candidates whose category is the timeout get the short 8 s limit. Every other one gets the
    # time its category needs on a loaded machine: the NaN loss must import torch and reach training (on
    # a fresh clone beside the LLM tests it was still starting after 8 s), the fork bomb ends when a fork
    # fails at the process limit, the memory hog when it reaches the memory limit.
    reqs = [req(HOSTILE[n][0], **({} if HOSTILE[n][1] == "timeout" else {"timeout": 90})) for n in names]
    reqs.append(req(GOOD, epochs=3, timeout=120))
    results = pool.map(reqs)
    pool.close()
    for name, r in zip(names, results):
        assert (r.status, r.category) == ("failed", HOSTILE[name][1]), f"{name}: {r.category} {r.error}"
        assert r.error and r.isolation.startswith(isolation)
    good = results[-1]
    assert good.status == "complete", good.error
    assert good.metrics["val_acc"] > 80 and good.metrics["test_acc"] > 80  # unaffected by its neighbours
    by = dict(zip(names, results))
    assert "sys.exit(3)" in by["sys_exit"].error
    assert "SIGSEGV" in by["segfault"].error
    assert "expected (2, 10)" in by["wrong_shape"].error
    assert "100,010,000 parameters" in by["hundred_million_params"].error
    assert "line 1" in by["syntax"].error
    assert "build_model" in by["no_builder"].error
    assert "RuntimeError: no" in by["build_raises"].error and "candidate.py" in by["build_raises"].traceback
    assert "loss is nan" in by["nan_loss"].error
    # no process of the corpus survives (the work folders are under tmp_path: the other test worker's
    # sandboxes, alive at the same time, are not this corpus's leftovers)
    leftovers = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).startswith(("sh -c mount", "unshare"))]
    assert not [p for p in leftovers if str(tmp_path / "fairnad-sbx") in _cmdline(p)]


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.fixture
def canary(tmp_path):
    d = tmp_path / "outside"
    d.mkdir()
    (d / "keep.txt").write_text("precious")
    return d


def _good_after(prelude: str) -> str:
    return prelude + "\n" + GOOD


@pytest.mark.skipif(not namespaces_available(), reason="needs Linux namespaces (the limits-only mode cannot promise this)")
def test_nothing_outside_the_workdir_changes(canary, tmp_path):
    db = tmp_path / "run.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t(x)")
        c.execute("INSERT INTO t VALUES (1)")
    attacks = {
        "os_system": f"import os\nos.system('touch {canary}/pwned; rm -f {canary}/keep.txt')",
        "delete": f"import shutil\nshutil.rmtree('{canary}', ignore_errors=True)",
        "write": f"open('{canary}/evil.txt', 'w').write('x')",
        "home": "import os\nopen(os.path.expanduser('~/.bashrc'), 'a').write('evil')",
        "tamper_db": f"import sqlite3\nc = sqlite3.connect('{db}')\nc.execute('DELETE FROM t')\nc.commit()",
    }
    pool = LocalPool(workers=2, isolation="namespaces")
    # (60 s: what is tested is containment; beside the other test worker a check took more than 8 s once)
    results = dict(zip(attacks, pool.map([req(_good_after(a), checks_only=True, timeout=60) for a in attacks.values()])))
    pool.close()
    assert sorted(p.name for p in canary.iterdir()) == ["keep.txt"]
    assert (canary / "keep.txt").read_text() == "precious"
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 1
    # the folder is not even there (the candidate's root holds only what the worker needs)
    assert results["write"].category == "import" and ("Read-only file system" in results["write"].error
                                                      or "No such file or directory" in results["write"].error)
    assert results["tamper_db"].category == "import"
    assert results["os_system"].status == "complete", results["os_system"]  # the shell command failed quietly; the model is fine


@pytest.mark.skipif(not namespaces_available(), reason="needs Linux namespaces (the limits-only mode cannot promise this)")
def test_a_candidate_cannot_read_the_home_other_runs_or_the_project(tmp_path):
    from pathlib import Path

    secret = Path.home() / f".fairnad-test-secret-{os.getpid()}"
    secret.write_text("the-user-secret")
    other_run = tmp_path / "runs" / "other" / "run.db"
    other_run.parent.mkdir(parents=True)
    with sqlite3.connect(other_run) as c:
        c.execute("CREATE TABLE t(x)")
    project = Path(__file__).resolve().parent.parent
    reads = {"home_file": str(secret), "other_run": str(other_run), "project": str(project / "README.md"),
             "project_config": str(project / "pyproject.toml")}  # fmt: skip
    src = (f"import os\nseen = []\nfor name, p in {reads!r}.items():\n"
           "    try:\n        seen.append(name + '=' + open(p, 'rb').read(40).decode(errors='replace'))\n"
           "    except OSError as e:\n        seen.append(name + ':' + type(e).__name__)\n"
           f"seen.append('home=' + ','.join(os.listdir({str(Path.home())!r})) if os.path.isdir({str(Path.home())!r}) "
           "else 'home:absent')\n"
           f"seen.append('project=' + ','.join(os.listdir({str(project)!r})) if os.path.isdir({str(project)!r}) "
           "else 'project:absent')\n"
           "raise RuntimeError(' | '.join(seen))\n")  # fmt: skip
    try:
        r = run_request(req(_good_after(src), checks_only=True))
    finally:
        secret.unlink()
    assert r.category == "import", r.error
    assert "the-user-secret" not in r.error and secret.name not in r.error
    for name in reads:
        assert f"{name}:FileNotFoundError" in r.error, r.error
    assert "SQLite" not in r.error and "README" not in r.error and "pyproject" not in r.error and "tests" not in r.error


@pytest.mark.skipif(not namespaces_available(), reason="needs Linux namespaces for network isolation")
def test_no_network_from_the_sandbox():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    seen = []

    def accept():
        try:
            seen.append(server.accept())
        except OSError:
            pass

    src = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=3)\ns.sendall(b'leak')"
    r = run_request(req(_good_after(src), checks_only=True))
    t = threading.Thread(target=accept)
    t.start()
    t.join()
    server.close()
    assert not seen
    assert r.category == "import" and ("refused" in r.error or "unreachable" in r.error.lower())


def test_no_secrets_in_the_sandbox(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("DASHSCOPE_API_KEY", "ds-very-secret")
    src = "import os\nprint(sorted(os.environ.items()))\nprint(open('/proc/self/environ').read())"
    r = run_request(req(_good_after(src), checks_only=True))
    assert r.status == "complete", r.error
    assert "very-secret" not in r.stdout and "OPENAI_API_KEY" not in r.stdout
    assert "HOME" in r.stdout  # the print really happened


def test_output_is_captured_and_truncated():
    src = "print('x' * 100_000)\nimport sys\nprint('the end', file=sys.stderr)"
    r = run_request(req(_good_after(src), checks_only=True))
    assert r.status == "complete"
    assert r.stdout.startswith("...[truncated]") and len(r.stdout) < 17_000
    assert "the end" in r.stderr


DROPPY = """
import torch
from torch import nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self, num_classes, in_chans):
        super().__init__()
        self.{name} = nn.Conv2d(in_chans, 8, 3, padding=1)
        self.act = nn.{act}()
        self.drop = nn.Dropout({p})
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = F.dropout(self.act(self.{name}(x)), {fp}, self.training)
        return self.fc(self.drop(x.mean((2, 3))))

def build_model(num_classes=10, in_chans=1):
    return Net(num_classes, in_chans)
"""


def test_duplicates_by_structure_see_dropout_activation_and_module_type():
    def structure(**kw):
        args = {"name": "conv", "act": "ReLU", "p": 0.1, "fp": 0.0, **kw}
        r = run_request(req(DROPPY.format(**args), checks_only=True))
        assert r.status == "complete", r.error
        return r.metrics["structure"]

    base = structure()
    assert structure(name="renamed") == base  # a rename is the same network
    assert structure(p=0.3) != base  # a dropout rate (identical eval-mode outputs)
    assert structure(fp=0.2) != base  # functional dropout in forward (seen in train mode)
    assert structure(act="GELU") != base and structure(act="ReLU6") != base


@pytest.mark.skipif(not namespaces_available(), reason="needs Linux namespaces (the jail)")
def test_the_jail_leaves_proc_writable_for_cuda_but_closes_what_reaches_outside():
    """CUDA's initialisation fails where the jail's own /proc is mounted read-only (Error 304 on an
    H200): /proc stays a read-write mount, as it is in a container, while the kernel's settings and
    triggers are read-only and what shows kernel memory is hidden; only the sandbox's processes are there."""
    src = """
import os
seen = []
mounts = {}
for line in open('/proc/self/mountinfo'):
    f = line.split()
    mounts[f[4]] = f[5].split(',')[0]
seen.append('proc=' + mounts.get('/proc', 'absent'))
seen.append('proc_sys=' + mounts.get('/proc/sys', 'absent'))
for path, data in (('/proc/sys/vm/drop_caches', '1'), ('/proc/sysrq-trigger', 'h'), ('/proc/self/oom_score_adj', '500')):
    try:
        with open(path, 'w') as f:
            f.write(data)
        seen.append(path + ':written')
    except OSError as e:
        seen.append(path + ':' + type(e).__name__)
try:
    seen.append('kcore=%d' % len(open('/proc/kcore', 'rb').read(16)))
except OSError as e:
    seen.append('kcore:' + type(e).__name__)
seen.append('pids=%d' % len([p for p in os.listdir('/proc') if p.isdigit()]))
raise RuntimeError(' | '.join(seen))
"""
    r = run_request(req(_good_after(src), checks_only=True, timeout=60))
    assert r.category == "import", r.error
    assert "proc=rw" in r.error and "proc_sys=ro" in r.error, r.error
    assert "/proc/sys/vm/drop_caches:OSError" in r.error, r.error  # read-only file system
    assert "/proc/sysrq-trigger:" in r.error and "sysrq-trigger:written" not in r.error  # read-only (or no such file)
    assert "/proc/self/oom_score_adj:written" in r.error  # its own process's entries stay writable
    assert "kcore=0" in r.error or "kcore:" in r.error, r.error  # /dev/null, or not there at all
    pids = int(r.error.split("pids=")[1].split()[0])
    assert pids <= 3, r.error  # the worker (and what the sh/setpriv chain left), not the machine's processes
