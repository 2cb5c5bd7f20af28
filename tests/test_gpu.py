"""The CUDA paths on a real GPU, each through the sandbox in its default isolation (the one a user
gets: the namespace jail where the machine allows it). Marked `gpu`: skipped where torch sees no CUDA
device (CI); `python benchmarks/gpu_check.py` runs them on a GPU machine. A jail that broke CUDA's
initialisation once failed every GPU evaluation while every CPU test passed: these are the tests that
would have said so."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fairnad.evaluate.code import EvalRequest, run_request
from fairnad.evaluate.executors import LocalPool, check_cuda
from fairnad.evaluate.sandbox import namespaces_available
from fairnad.space.reference import reference

from datafiles import write_cifar10

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

DEFAULT_ISOLATION = "namespaces" if namespaces_available() else "limits"


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """CIFAR-10's own pickle layout and size (50,000 training images: 25,000 train / 25,000 validation in
    NAS-Bench-201's split), classes that can be learnt: about 100 steps an epoch at the recipe's batch."""
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, n_train_per_batch=10_000, n_test=2_000, learnable=True)
    return root


def _req(data, source=None, **kw):
    base = dict(source=source or reference("resnet20").source(), dataset="cifar10", data_dir=str(data), device="cuda",
                epochs=2, memory_mb=32000, timeout=240)  # fmt: skip
    return EvalRequest(**{**base, **kw})


def _gpu_free_mb() -> float:
    probe = "import torch; f, t = torch.cuda.mem_get_info(); print(f / 2**20)"
    return float(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)


def test_the_default_jail_lets_cuda_initialise():
    check_cuda("cuda", None, "auto")  # raises ConfigError naming --isolation limits when the jail hides the GPU


def test_a_reference_model_trains_on_cuda_in_the_default_sandbox(cifar):
    r = run_request(_req(cifar))
    assert r.status == "complete", f"{r.category}: {r.error}\n{r.stderr[-2000:]}"
    assert r.isolation.startswith(DEFAULT_ISOLATION)
    assert r.metrics["val_acc"] > 50 and r.metrics["test_acc"] > 50, r.metrics  # chance is 10%
    assert r.metrics["images_per_second"] > 1000 and r.metrics["flops"] > 0
    assert r.startup_seconds is not None and "first_step" in r.stages


def test_hostile_candidates_on_cuda_are_contained_and_categorised(cifar, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the-user-secret")
    hostile = {
        "oom_at_import": ("import torch\nx = torch.empty(int(4e11), device='cuda')\n", "memory", {}),
        "gpu_busy_loop": ("import torch\nx = torch.ones(1024, device='cuda')\nwhile True:\n    x = x * 1.0\n", "timeout",
                          {"timeout": 20}),
        "nan_on_gpu": (_nan_model(), "nan", {}),
        "reads_a_user_file": (f"print(open({str(secret)!r}).read())\n" + reference("resnet20").source(),
                              "import" if DEFAULT_ISOLATION == "namespaces" else None, {}),
        "wrong_device_index": ("import torch\nx = torch.ones(1, device='cuda:7')\n", "import", {}),
    }  # fmt: skip
    before = _gpu_free_mb()
    pool = LocalPool(workers=2, isolation="auto")
    reqs = [_req(cifar, src, epochs=1, **kw) for src, _, kw in hostile.values()] + [_req(cifar)]
    results = pool.map(reqs)
    pool.close()
    for (name, (_, category, _)), r in zip(hostile.items(), results):
        if category is None:
            continue
        assert (r.status, r.category) == ("failed", category), f"{name}: {r.category} {r.error}"
    by = dict(zip(hostile, results))
    if DEFAULT_ISOLATION == "namespaces":  # (with limits alone a candidate reads what the user can: said in the run log)
        assert "the-user-secret" not in by["reads_a_user_file"].stdout + (by["reads_a_user_file"].error or "")
    good = results[-1]
    assert good.status == "complete" and good.metrics["val_acc"] > 50, good.error  # unaffected by its neighbours
    assert _gpu_free_mb() > before - 1024  # no killed candidate left GPU memory behind


def _nan_model() -> str:
    return (
        "import torch\nfrom torch import nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, num_classes, in_chans):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(in_chans * 32 * 32, num_classes)\n\n"
        "    def forward(self, x):\n"
        "        return self.fc(x.flatten(1)) * float('nan')\n\n"
        "def build_model(num_classes=10, in_chans=3):\n"
        "    return Net(num_classes, in_chans)\n"
    )


def test_four_workers_share_one_gpu(cifar):
    pool = LocalPool(gpus=[0, 0, 0, 0], isolation="auto")
    results = pool.map([_req(cifar, seed=s) for s in range(4)])
    pool.close()
    assert all(r.status == "complete" for r in results), [r.error for r in results]
    assert all(r.metrics["val_acc"] > 50 for r in results)
    first_done = min(r.finished for r in results)
    assert sum(r.started < first_done for r in results) >= 3  # they ran at the same time, not one by one


def test_an_open_search_on_cuda_end_to_end(cifar, tmp_path):
    """The whole product on a GPU, with no model (--llm none: FairNAD's deterministic counterpart)."""
    env = {**os.environ, "FAIRNAD_CACHE": str(tmp_path / "cache")}
    r = subprocess.run(
        [sys.executable, "-m", "fairnad", "search", "--space", "open", "--dataset", "cifar10", "--data-dir", str(cifar),
         "--device", "cuda", "--workers", "4", "--gpus", "0,0,0,0", "--strategy", "fairnad", "--llm", "none",
         "--budget", "8", "--epochs", "2", "--seed", "0", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["evaluations"] == 8
    assert out["best"]["accuracy"] > 30  # chance is 10%; two epochs of the starting models and their moves
