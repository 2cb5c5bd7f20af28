"""Local pool and Ray executors, multi-fidelity evaluation, and the `evaluate` command."""

import json

import pytest

from fairnad.evaluate.code import EvalRequest
from fairnad.evaluate.executors import LocalPool, RayExecutor
from fairnad.evaluate.fidelity import successive_halving
from fairnad.space.reference import reference

from datafiles import write_cifar10

CNN = reference("mnist1d-cnn").source()


def _req(**kw):
    return EvalRequest(**{"source": CNN, "dataset": "mnist1d", "epochs": 2, "seed": 1, **kw})


@pytest.mark.slow
def test_local_pool_runs_two_at_once_in_order():
    pool = LocalPool(workers=2)
    futures = [pool.submit(_req(model_args={"width": w})) for w in (8, 16)]
    results = [f.result() for f in futures]
    pool.close()
    assert [r.metrics["params"] for r in results] == sorted(r.metrics["params"] for r in results)
    assert all(r.status == "complete" for r in results)
    a, b = results
    assert a.started < b.finished and b.started < a.finished  # the two ran at the same time


@pytest.mark.slow
def test_ray_gives_the_same_metrics_as_the_local_pool():
    reqs = [_req(), _req(seed=2)]
    pool = LocalPool(workers=2)
    local = pool.map(reqs)
    pool.close()
    ray_ex = RayExecutor(init_kwargs={"num_cpus": 2})
    try:
        remote = ray_ex.map(reqs)
    finally:
        ray_ex.close()
    for a, b in zip(local, remote):
        assert b.status == a.status == "complete"
        for k in ("params", "flops", "val_acc", "test_acc"):
            assert a.metrics[k] == b.metrics[k]
        assert [c["train_loss"] for c in a.curves] == [c["train_loss"] for c in b.curves]
    assert local[0].metrics["val_acc"] != local[1].metrics["val_acc"] or local[0].curves != local[1].curves


@pytest.mark.slow
def test_successive_halving_promotes_and_retrains_the_best():
    widths = [4, 8, 16, 32]
    pool = LocalPool(workers=2)
    entries = successive_halving(len(widths), lambda i, e: _req(epochs=e, model_args={"width": widths[i]}), pool,
                                 rungs=[1, 2], eta=2, top_k=1, final_epochs=3)  # fmt: skip
    pool.close()
    assert all(len(e.rungs) >= 1 for e in entries)
    promoted = [e for e in entries if len(e.rungs) == 2]
    assert len(promoted) == 2
    first = sorted(entries, key=lambda e: -e.rungs[0]["val_acc"])
    assert {e.index for e in promoted} == {e.index for e in first[:2]}  # the best half of rung 1
    finals = [e for e in entries if e.final]
    assert len(finals) == 1 and finals[0].final["epochs"] == 3 and finals[0].final["test_acc"] > 0
    assert finals[0] is max(promoted, key=lambda e: e.rungs[1]["val_acc"])


def test_evaluate_cli_json(run_cli, tmp_path):
    p = run_cli("evaluate", "ref:mnist1d-cnn", "--epochs", "2", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "complete" and out["dataset"] == "mnist1d"
    assert {"params", "flops", "val_acc", "test_acc", "train_seconds"} <= set(out["metrics"])
    assert len(out["curves"]) == 2 and out["startup_seconds"] > 0


def test_evaluate_cli_failures(run_cli, tmp_path):
    (tmp_path / "bad.py").write_text("def build_model(num_classes, in_chans):\n    return 42\n")
    p = run_cli("evaluate", "bad.py", "--json")
    out = json.loads(p.stdout)
    assert p.returncode == 1 and out["category"] == "build" and "not a torch.nn.Module" in out["error"]
    p = run_cli("evaluate", "nothere.py")
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "error: nothere.py: model file not found (or use ref:NAME for a reference model, see `fairnad models`)"]
    p = run_cli("evaluate", "ref:resnet20", "--dataset", "cifar10")
    assert p.returncode == 2 and "cifar10: pass --data-dir, the folder holding cifar-10-batches-py/" in p.stderr
    # a bad recipe is the user's input, not a crash of the model (it was "crash", exit 1, before)
    for args, line in [(["--epochs", "0"], "error: --epochs 0: must be at least 1"),
                       (["--train", "lr=abc"], "error: --train lr='abc': Input should be a valid number"),
                       (["--train", "nope=1"], "error: --train nope: unknown recipe setting; one of epochs, batch_size"),
                       (["--train", "optimizer=lion"], "error: --train optimizer='lion': Input should be 'adamw' or 'sgd'"),
                       (["--rungs", "0,2"], "error: --rungs '0,2': expected comma-separated epochs")]:  # fmt: skip
        p = run_cli("evaluate", "ref:mnist1d-cnn", *args)
        assert p.returncode == 2 and p.stderr.startswith(line) and len(p.stderr.strip().splitlines()) == 1, p.stderr


@pytest.mark.slow
def test_evaluate_cli_on_generated_cifar_files(run_cli, tmp_path):
    write_cifar10(tmp_path / "data")
    p = run_cli("evaluate", "ref:resnet20", "--dataset", "cifar10", "--data-dir", "data", "--epochs", "1",
                "--model-arg", "width=4", "--train", "batch_size=16", "--json",
                env={"FAIRNAD_CACHE": str(tmp_path / "cache")})  # fmt: skip
    out = json.loads(p.stdout)
    assert out["status"] == "complete", out
    assert out["metrics"]["params"] < 30_000 and 0 <= out["metrics"]["test_acc"] <= 100


@pytest.mark.slow
def test_evaluate_cli_successive_halving(run_cli):
    p = run_cli("evaluate", "ref:mnist1d-cnn", "ref:mnist1d-cnn", "--model-arg", "width=8", "--rungs", "1,2",
                "--eta", "2", "--final-epochs", "2", "--workers", "2", "--json")  # fmt: skip
    out = json.loads(p.stdout)
    assert out["rungs"] == [1, 2] and len(out["models"]) == 2
    assert sum(1 for m in out["models"] if m["final"]) == 1


def test_models_listing(run_cli):
    out = json.loads(run_cli("models", "--json").stdout)
    assert {m["name"] for m in out["models"]} == {"mnist1d-cnn", "small-cnn", "resnet20", "mobilenetv2", "nb201",
                                                   "convnext-small"}  # fmt: skip


def _cuda_visible() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_cuda_visible(), reason="checks a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_refused_before_a_run_and_a_worker_says_so(run_cli, tmp_path):
    p = run_cli("search", "--space", "open", "--dataset", "mnist1d", "--device", "cuda", "-n", "1", "--run-dir", "run")
    assert p.returncode != 0 and "--device cuda: torch" in p.stderr and "use --device cpu" in p.stderr, p.stderr
    assert not (tmp_path / "run").exists()  # nothing was spent on it
    p = run_cli("evaluate", "ref:mnist1d-cnn", "--device", "cuda:1")
    assert p.returncode != 0 and "--device cuda:1: torch" in p.stderr
    # a worker that finds no GPU (it went away mid-run) fails the candidate with the reason, not a bare exit code
    from fairnad.evaluate.code import run_request

    r = run_request(EvalRequest(source=reference("mnist1d-cnn").source(), dataset="mnist1d", epochs=1, device="cuda"))
    assert r.status == "failed" and r.category == "crash" and "not visible to the evaluation process" in r.error


@pytest.mark.slow
def test_the_gpu_check_runs_end_to_end_on_the_cpu(tmp_path):
    """benchmarks/gpu_check.py is what a GPU machine runs (CI has none): its every step, on the CPU with
    tiny sizes, so the one command does not rot between the sessions that have a GPU."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"
    r = subprocess.run([sys.executable, str(script), "--device", "cpu", "--quick", "--skip-tests", "--json"],
                       capture_output=True, text=True, timeout=900, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert [m["model"] for m in out["models"]] == ["resnet20"] and out["models"][0]["status"] == "complete"
    assert out["models"][0]["after_training_s"] is not None and out["models"][0]["flops_s"] is not None
    assert [w["workers"] for w in out["workers"]] == [1, 2] and all(w["complete"] == w["evaluations"] for w in out["workers"])
    assert "reference_img_s" in out["throughput"]
    assert out["search"]["evaluations"] == 4
