"""Trained weights kept by open runs, and `fairnad export` (timm-registered .py, safetensors, JSON)."""

from __future__ import annotations

import ast
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fairnad.evaluate.code import CodeEvaluator, EvalRequest, run_request, safetensors_metadata, weights_accuracy
from fairnad.evaluate.sandbox import SandboxResult, _read_weights
from fairnad.export import identifier, model_name, render_module
from fairnad.space.candidate import Candidate
from fairnad.space.reference import reference

KEEP = 2  # the open run below trains 3 models and keeps the weights of the best 2


def _cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fairnad", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def _candidates(run: Path) -> list[dict]:
    with sqlite3.connect(run / "run.db") as c:
        rows = c.execute("SELECT trial, status, metrics FROM candidates ORDER BY trial").fetchall()
    return [{"trial": t, "status": s, "metrics": json.loads(m or "{}")} for t, s, m in rows]


@pytest.fixture(scope="module")
def open_run(tmp_path_factory) -> Path:
    """A real FairNAD run on MNIST-1D: 3 models (no LLM: ideas and the agent are off), 1 epoch each."""
    root = tmp_path_factory.mktemp("open")
    p = _cli("search", "--space", "open", "--dataset", "mnist1d", "--strategy", "fairnad", "--budget", "3",
             "--epochs", "1", "--set", "strategies.fairnad.disable=[idea, iterative]",
             "--set", "strategies.fairnad.init_population=3", "--set", f"open.keep_weights={KEEP}",
             "--run-dir", "r", "--json", cwd=root)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return root / "r"


@pytest.fixture(scope="module")
def tabular_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tabular")
    p = _cli("search", "-b", "nas-bench-macro", "-s", "random", "-n", "5", "--run-dir", "t", "--json", cwd=root)
    assert p.returncode == 0, p.stderr
    return root / "t"


# -- keeping weights ------------------------------------------------------------------------------
@pytest.mark.slow
def test_open_run_keeps_the_weights_of_its_best_models(open_run):
    done = [c for c in _candidates(open_run) if c["status"] == "complete"]
    assert len(done) == 3
    best = sorted(done, key=lambda c: (-c["metrics"]["accuracy"], c["trial"]))[:KEEP]
    files = sorted((open_run / "weights").iterdir())
    assert [f.name for f in files] == sorted(f"trial-{c['trial']:04d}.safetensors" for c in best)
    for c in best:
        path = open_run / c["metrics"]["weights"]
        assert path.parent == open_run / "weights" and path.is_file()
        meta = safetensors_metadata(path)
        assert float(meta["val_acc"]) == c["metrics"]["accuracy"]  # the search's accuracy, in the file
        assert int(meta["params"]) == c["metrics"]["params"]
    # the pruned model trained fine; only its weights went
    (other,) = [c for c in done if c not in best]
    assert not (open_run / other["metrics"].get("weights", "weights/none")).exists()


@pytest.mark.slow
def test_a_resumed_run_keeps_weights_in_its_own_folder(open_run):
    from fairnad.lifecycle import open_run as reopen

    handle = reopen(open_run)
    try:
        assert handle.problem.evaluator.weights_dir == open_run / "weights"
        assert handle.problem.evaluator.keep_weights == KEEP
    finally:
        handle.problem.close()
        handle.store.close()


@pytest.mark.slow
def test_cheap_checks_never_save_weights_and_weights_travel_as_bytes(tmp_path):
    src = reference("mnist1d-cnn").source()
    checked = run_request(EvalRequest(source=src, dataset="mnist1d", checks_only=True, save_weights=True))
    assert checked.status == "complete" and checked.weights is None
    ev = CodeEvaluator(EvalRequest(source="", dataset="mnist1d", checks_only=True), weights_dir=tmp_path)
    assert ev.request(Candidate(id=1, trial=0, genotype=src)).save_weights is False
    ev = CodeEvaluator(EvalRequest(source="", dataset="mnist1d", epochs=1), weights_dir=tmp_path, keep_weights=0)
    assert ev.request(Candidate(id=1, trial=0, genotype=src)).save_weights is False  # keep_weights=0: none

    trained = run_request(EvalRequest(source=src, dataset="mnist1d", epochs=1, save_weights=True))
    assert trained.status == "complete" and trained.weights[:8]  # a safetensors header
    again = SandboxResult(**trained.to_dict())  # how a result comes back from a Ray node
    assert again.weights == trained.weights and "weights" not in trained.report()


def _weights_file(path: Path, val_acc: float | None) -> Path:
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, path, metadata={"val_acc": repr(val_acc)} if val_acc is not None else None)
    return path


def test_pruning_keeps_the_most_accurate_files(tmp_path):
    accs = {0: 50.0, 1: 70.0, 2: 60.0, 3: 70.0}
    for t, a in accs.items():
        _weights_file(tmp_path / f"trial-{t:04d}.safetensors", a)
    _weights_file(tmp_path / "trial-0004.safetensors", None)  # no accuracy: ranks last
    (tmp_path / "notes.txt").write_text("not ours")
    assert weights_accuracy(tmp_path / "trial-0004.safetensors") is None

    assert CodeEvaluator(EvalRequest(source="", dataset="mnist1d"), weights_dir=tmp_path, keep_weights=-1).prune() == []
    removed = CodeEvaluator(EvalRequest(source="", dataset="mnist1d"), weights_dir=tmp_path, keep_weights=3).prune()
    assert sorted(p.name for p in removed) == ["trial-0000.safetensors", "trial-0004.safetensors"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["notes.txt", "trial-0001.safetensors", "trial-0002.safetensors", "trial-0003.safetensors"]
    CodeEvaluator(EvalRequest(source="", dataset="mnist1d"), weights_dir=tmp_path, keep_weights=1).prune()
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == ["trial-0001.safetensors"]  # tie: earlier trial


def test_tied_weights_are_saved_and_load_back(tmp_path):
    import torch
    from safetensors.torch import load_file

    from fairnad.evaluate.worker import save_weights

    class Tied(torch.nn.Module):  # one tensor under two names, as in weight-tied embeddings and heads
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 4)
            self.b = torch.nn.Linear(4, 4)
            self.b.weight = self.a.weight

    model = Tied()
    assert save_weights(model, str(tmp_path / "w.safetensors"), {"val_acc": 12.5, "params": 24}) is None
    assert safetensors_metadata(tmp_path / "w.safetensors")["val_acc"] == "12.5"
    fresh = Tied()
    fresh.load_state_dict(load_file(tmp_path / "w.safetensors"), strict=True)
    assert torch.equal(fresh.b.weight, model.a.weight) and fresh.b.weight is fresh.a.weight


class _Returns:
    """An executor that hands back given sandbox results (the evaluator's own bookkeeping is under test)."""

    def __init__(self, results: list[SandboxResult]) -> None:
        self.results = results

    def map(self, reqs):
        return self.results[: len(reqs)]


def test_the_evaluator_alone_says_where_weights_are(tmp_path):
    good = _weights_file(tmp_path / "src.safetensors", 80.0).read_bytes()
    forged = {"val_acc": 90.0, "weights": "../../secret", "weights_pruned": True}
    results = [SandboxResult("complete", metrics=dict(forged)),  # the candidate forged a result: no file
               SandboxResult("complete", metrics={"val_acc": 80.0}, weights=good),
               SandboxResult("complete", metrics={"val_acc": 81.0}, weights=b"not safetensors")]  # fmt: skip
    ev = CodeEvaluator(EvalRequest(source="", dataset="mnist1d"), _Returns(results), tmp_path / "w", keep_weights=5)
    cands = [Candidate(id=i, trial=i, genotype="x") for i in range(3)]
    out = ev.evaluate_many(cands)
    assert "weights" not in out[0].metrics and "weights_pruned" not in out[0].metrics
    assert out[1].metrics["weights"] == "w/trial-0001.safetensors"
    assert (tmp_path / "w" / "trial-0001.safetensors").read_bytes() == good
    assert "weights" not in out[2].metrics and "header" in out[2].metrics["weights_error"]
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["trial-0001.safetensors"]


def test_weights_are_read_back_only_from_a_plain_file_within_the_cap(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"outside the work directory")
    work = tmp_path / "work"
    work.mkdir()
    (work / "weights.safetensors").symlink_to(secret)
    data, problem = _read_weights(work / "weights.safetensors", 1)
    assert data is None and problem
    (work / "weights.safetensors").unlink()
    os.link(secret, work / "weights.safetensors")  # a hard link to a file outside
    assert _read_weights(work / "weights.safetensors", 1)[0] is None
    (work / "weights.safetensors").unlink()
    (work / "weights.safetensors").write_bytes(b"x" * (2 * 2**20))
    data, problem = _read_weights(work / "weights.safetensors", 1)
    assert data is None and "cap" in problem
    (work / "weights.safetensors").write_bytes(b"ok")
    assert _read_weights(work / "weights.safetensors", 1) == (b"ok", None)


# -- export of an open run ------------------------------------------------------------------------
_CHECK = textwrap.dedent("""
    import json, sys
    import numpy as np, timm, torch
    from safetensors.torch import load_file
    from fairnad.evaluate.datasets import load, prepare

    torch.set_num_threads(1)  # as in the sandbox that measured the accuracy
    out, names = sys.argv[1], sys.argv[2:]
    sys.path.insert(0, out)
    data = load(prepare("mnist1d"))
    x, y = torch.from_numpy(data["x_val"]), data["y_val"]
    report = {}
    for name in names:
        __import__(name)
        info = json.load(open(f"{out}/{name}.json"))
        row = {"recorded": info["accuracy"]}
        if info["files"]["weights"]:
            model = timm.create_model(name, pretrained=True).eval()
            saved = load_file(f"{out}/{name}.safetensors")
            state = model.state_dict()
            row["same_weights"] = set(saved) == set(state) and all(torch.equal(saved[k], state[k]) for k in state)
            with torch.no_grad():
                row["accuracy"] = 100.0 * float((model(x).argmax(1).numpy() == y).mean())
        else:
            try:
                timm.create_model(name, pretrained=True)
            except RuntimeError as err:
                row["refused"] = str(err)
        row["untrained_out"] = list(timm.create_model(name)(x[:2]).shape)
        report[name] = row
    print(json.dumps(report))
""")


@pytest.mark.slow
def test_export_open_run_gives_timm_models_with_their_trained_weights(open_run, tmp_path):
    p = _cli("export", str(open_run), "--top", "3", "-o", "out", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    out = tmp_path / "out"
    done = sorted((c for c in _candidates(open_run) if c["status"] == "complete"),
                  key=lambda c: (-c["metrics"]["accuracy"], c["trial"]))  # fmt: skip
    assert [m["trial"] for m in res["models"]] == [c["trial"] for c in done]
    names = [m["name"] for m in res["models"]]
    assert names == [f"fairnad_mnist1d_t{c['trial']}" for c in done] and len(set(names)) == 3
    for m, c in zip(res["models"], done):
        assert (out / f"{m['name']}.py").is_file() and (out / f"{m['name']}.json").is_file()
        info = json.loads((out / f"{m['name']}.json").read_text())
        assert info["trial"] == c["trial"] and info["accuracy"] == c["metrics"]["accuracy"]
        assert info["dataset"] == "mnist1d" and info["input_shape"] == [1, 40] and info["num_classes"] == 10
        assert info["run"] == "r" and info["fairnad_version"] and "parents" in info and "origin" in info
        text = (out / f"{m['name']}.py").read_text()
        module = ast.parse(text)
        assert ast.get_docstring(module).startswith(f"{m['name']}: a model found by fairnad")
        assert "@_fairnad_register_model" in text
    # the best KEEP have weights; the third was pruned from the run, and the export says so
    assert [bool(m["files"]["weights"]) for m in res["models"]] == [True] * KEEP + [False]
    assert (out / f"{names[0]}.safetensors").is_file() and not (out / f"{names[-1]}.safetensors").exists()
    assert "pruned" in res["models"][-1]["note"] and res["notes"]
    assert "warning" in p.stderr and names[-1] in p.stderr

    check = subprocess.run([sys.executable, "-c", _CHECK, str(out), *names], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)  # fmt: skip
    assert check.returncode == 0, check.stderr
    report = json.loads(check.stdout)
    for name in names[:KEEP]:
        row = report[name]
        assert row["same_weights"]
        # The recorded accuracy was measured in the sandbox on the same 500 validation inputs with these
        # weights, in eval mode, on CPU in float32 with one thread, in one batch: the same computation,
        # so it should match exactly; one input of 500 (0.2 points) is allowed for a float tie in argmax.
        assert abs(row["accuracy"] - row["recorded"]) <= 100.0 / 500 + 1e-9, row
    assert "kept no trained weights" in report[names[-1]]["refused"]
    assert all(r["untrained_out"] == [2, 10] for r in report.values())


def test_the_exported_file_keeps_fairnad_parts_apart_from_the_code():
    evil_run = 'r"""\nimport os; os.system("echo pwned")  # \\'
    code = '"""A model."""\nfrom __future__ import annotations\nimport torch\nQUOTES = \'"""\'  # \\\n' \
           "def build_model(num_classes, in_chans):\n    return torch.nn.Linear(in_chans, num_classes)"  # fmt: skip
    info = {"fairnad_version": "0.1.0", "run": evil_run, "dataset": "mnist1d", "input_shape": [1, 40],
            "num_classes": 10, "in_chans": 1, "preprocessing": {"kind": "none"}, "training": {"epochs": 1},
            "accuracy": 50.0, "test_accuracy": 49.0, "params": 1, "flops": 2,
            "files": {"weights": "m.safetensors"}}  # fmt: skip
    name = model_name("fairnad", "mnist1d", 7)
    text = render_module(name, Candidate(id=1, trial=7, genotype=code), info)
    compile(text, "m.py", "exec")
    begin = text.index("# ---- generated code of trial 7, verbatim")
    end = text.index("# ---- end of the generated code")
    header, verbatim = text[:begin], text[begin:end]
    assert verbatim.split("\n", 1)[1] == code + "\n"  # the code, byte for byte
    # with a __future__ import the header is comments (nothing but a docstring may come before it)
    assert all(line.startswith("#") or not line for line in header.splitlines())
    assert "os.system(" not in header and '"""' not in header
    benign = render_module(name, Candidate(id=1, trial=7, genotype=code), {**info, "run": "plain"})
    assert text[end:] == benign[benign.index("# ---- end of the generated code") :]  # the wrapper never changes
    # without one, the header is the module's docstring and holds only text
    plain = "import torch\ndef build_model(num_classes, in_chans):\n    return torch.nn.Identity()\n"
    text = render_module(name, Candidate(id=1, trial=7, genotype=plain), info)
    body = ast.parse(text).body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    assert ast.unparse(body[1]) == "import torch"  # the next statement is the candidate's first


def test_model_names_are_plain_identifiers():
    assert model_name("fairnad", "mnist1d", 7) == "fairnad_mnist1d_t7"
    assert model_name("My-Net!", "fashion-mnist", 3) == "my_net_fashion_mnist_t3"
    assert model_name("9", "x", 1) == "m_9_x_t1"
    assert identifier("class") == "class_" and identifier("../..") == "model"
    with pytest.raises(ValueError):
        render_module("not-a-name", Candidate(id=1, trial=1, genotype="x = 1\n"), {})


# -- tabular runs and errors ----------------------------------------------------------------------
@pytest.mark.slow
def test_export_tabular_run_writes_metrics_and_architecture_only(tabular_run, tmp_path):
    p = _cli("export", str(tabular_run), "--top", "2", "-o", "out", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["space"] == "tabular" and len(res["models"]) == 2
    assert "no trained weights" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    files = sorted(f.name for f in (tmp_path / "out").iterdir())
    assert files == sorted(f"{m['name']}.json" for m in res["models"])  # no .py, no weights
    accs = [m["accuracy"] for m in res["models"]]
    assert accs == sorted(accs, reverse=True)
    info = json.loads((tmp_path / "out" / f"{res['models'][0]['name']}.json").read_text())
    assert info["benchmark"] == "nas-bench-macro" and info["architecture"]["description"].startswith("layer2=")
    assert info["files"]["weights"] is None and info["files"]["code"] is None


@pytest.mark.slow
def test_export_says_what_it_could_not_read_of_a_changed_table(tmp_path):
    """A user's table rewritten since the run: each model whose genotype it no longer has gets a warning
    naming its trial; a table gone: one note naming the file. The run's own records export either way."""
    examples = Path(__file__).resolve().parent.parent / "docs" / "examples"
    table, space = tmp_path / "toy.csv", tmp_path / "toy.yaml"
    table.write_text((examples / "toy-table.csv").read_text())
    space.write_text((examples / "toy-space.yaml").read_text())
    p = _cli("search", "--benchmark-file", str(table), "--space-file", str(space), "-s", "random", "-n", "3",
             "--run-dir", "run", "--json", cwd=tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr
    # kernel codes a/b renamed c/d: no genotype of the run is in the space any more
    space.write_text(space.read_text().replace('code: "a"', 'code: "c"').replace('code: "b"', 'code: "d"'))
    table.write_text("\n".join(line.replace("a", "c", 1).replace("b", "d", 1) if line[0] in "ab" else line
                               for line in table.read_text().splitlines()) + "\n")  # fmt: skip
    p = _cli("export", "run", "--top", "2", "-o", "out", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    warned = [line for line in p.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 2 and all("is not in the space of toy-cnn" in w for w in warned)
    assert [f"trial {m['trial']}:" in m["note"] for m in res["models"]] == [True, True]
    table.unlink()
    p = _cli("export", "run", "--top", "2", "-o", "out2", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert any(str(table) in n and "cannot be loaded" in n for n in json.loads(p.stdout)["notes"])
    assert str(table) in p.stderr


@pytest.mark.slow
def test_export_errors_are_one_line_naming_the_path(tabular_run, tmp_path):
    p = _cli("export", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert p.returncode == 2 and str(tmp_path / "nowhere") in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = _cli("export", str(tabular_run), "--top", "0", "--json", cwd=tmp_path)
    assert p.returncode == 2 and "--top 0" in p.stderr and json.loads(p.stdout)["exit_code"] == 2
    (tmp_path / "a_file").write_text("")
    p = _cli("export", str(tabular_run), "-o", str(tmp_path / "a_file" / "out"), cwd=tmp_path)
    assert p.returncode == 2 and str(tmp_path / "a_file" / "out") in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
