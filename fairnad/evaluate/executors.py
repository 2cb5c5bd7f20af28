"""Where sandboxed evaluations run: a local pool (one worker per GPU, or N CPU workers) or Ray.

Both run the same `run_request` on the machine that executes it, so the same request gives the
same metrics wherever it runs.
"""

from __future__ import annotations

import queue
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fairnad.errors import ConfigError
from fairnad.evaluate.code import EvalRequest, run_request
from fairnad.evaluate.sandbox import Limits, Sandbox, SandboxResult


class LocalPool:
    """Up to `workers` sandboxed evaluations at once. With `gpus`, worker slot i owns GPU gpus[i]
    (through CUDA_VISIBLE_DEVICES, so candidate code that says "cuda" lands on its own GPU)."""

    def __init__(self, workers: int = 1, gpus: list[int] | None = None, isolation: str = "auto") -> None:
        if gpus:
            workers = len(gpus)
        if workers < 1:
            raise ConfigError("--workers must be at least 1")
        self.workers = workers
        self.isolation = isolation
        self._slots: queue.Queue = queue.Queue()
        for i in range(workers):
            self._slots.put(gpus[i] if gpus else None)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fairnad-eval")

    def _run(self, req: EvalRequest) -> SandboxResult:
        slot = self._slots.get()
        try:
            env = {"CUDA_VISIBLE_DEVICES": str(slot)} if slot is not None else None
            if slot is not None and req.device.startswith("cuda"):
                req = EvalRequest(**{**req.to_dict(), "device": "cuda"})
            return run_request(req, self.isolation, env)
        finally:
            self._slots.put(slot)

    def submit(self, req: EvalRequest):
        return self._pool.submit(self._run, req)

    def map(self, reqs: list[EvalRequest]) -> list[SandboxResult]:
        return [f.result() for f in [self.submit(r) for r in reqs]]

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class RayExecutor:
    """Evaluations as Ray tasks (`--executor ray --address ...`): each asks for the GPUs and CPUs
    one evaluation needs; the node prepares its own dataset cache from `data_dir`."""

    def __init__(self, address: str | None = None, gpus_per_task: float = 0, cpus_per_task: float = 1,
                 isolation: str = "auto", init_kwargs: dict[str, Any] | None = None) -> None:  # fmt: skip
        try:
            import ray
        except ImportError:
            raise ConfigError("--executor ray needs Ray: pip install 'fairnad[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, **(init_kwargs or {})}
            try:
                ray.init(address=address, **kwargs)
            except ConnectionError as err:
                raise ConfigError(f"cannot reach the Ray cluster at {address}: {err}") from None
        self._remote = ray.remote(num_gpus=gpus_per_task, num_cpus=cpus_per_task)(_ray_task)
        self.isolation = isolation

    def submit(self, req: EvalRequest):
        return self._remote.remote(req.to_dict(), self.isolation)

    def map(self, reqs: list[EvalRequest]) -> list[SandboxResult]:
        return [SandboxResult(**d) for d in self.ray.get([self.submit(r) for r in reqs])]

    def close(self) -> None:
        self.ray.shutdown()


def _ray_task(req: dict[str, Any], isolation: str) -> dict[str, Any]:
    return run_request(EvalRequest(**req), isolation).to_dict()


def make_executor(kind: str = "local", workers: int = 1, gpus: list[int] | None = None, address: str | None = None,
                  device: str = "cpu", isolation: str = "auto"):  # fmt: skip
    if kind == "local":
        if device.startswith("cuda"):
            check_cuda(device, gpus, isolation)
        return LocalPool(workers, gpus, isolation)
    if kind == "ray":
        return RayExecutor(address, gpus_per_task=1 if device.startswith("cuda") else 0, isolation=isolation)
    raise ConfigError(f"--executor {kind!r}: use local or ray")


# the smallest network the worker can check on a device: builds, runs one forward pass, reports
_DEVICE_PROBE = """
from torch import nn

def build_model(num_classes=2, in_chans=1):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * 16, num_classes))
"""


def check_cuda(device: str, gpus: list[int] | None = None, isolation: str = "auto") -> None:
    """Refuse a CUDA run that every candidate would fail alike, before any is spent on it: torch here
    sees no such GPU, or the sandbox's jail hides it from the evaluation process (checked with one
    tiny sandboxed model: a jail that broke CUDA once failed every GPU evaluation unseen). Asked of
    child processes: this one does not import torch, and CUDA must not be set up in a process that
    forks the evaluations."""
    probe = "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.device_count() if torch.cuda.is_available() else 0)"
    try:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120).stdout.split()
        version, built, count = out[0], out[1], int(out[2])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return  # cannot tell: the evaluations will say
    wanted = max(gpus) + 1 if gpus else int(device.partition(":")[2] or 0) + 1
    if count < wanted:
        cuda = "a CPU-only build" if built == "None" else f"built for CUDA {built}"
        raise ConfigError(f"--device {device}{f' with --gpus {gpus}' if gpus else ''}: torch {version} ({cuda}) sees "
                          f"{count} CUDA device{'s' if count != 1 else ''} here; use --device cpu, or check the driver "
                          "and CUDA_VISIBLE_DEVICES")  # fmt: skip
    sandbox = Sandbox(Limits(timeout=180, memory_mb=16384), isolation=isolation)
    if sandbox.isolation == "limits":
        return  # the evaluation process sees what this machine's torch sees
    slot = gpus[0] if gpus else None
    job = {"dataset": {"name": "device-check", "path": None, "num_classes": 2, "input_shape": [1, 4, 4]},
           "device": "cuda" if slot is not None else device, "checks_only": True, "train": {}}  # fmt: skip
    r = sandbox.run(_DEVICE_PROBE, job, env={"CUDA_VISIBLE_DEVICES": str(slot)} if slot is not None else None)
    if r.status != "complete":
        why = (r.error or "").splitlines()[0][:300] if r.error else f"{r.category}"
        raise ConfigError(f"--device {device}: torch {version} sees {count} CUDA device(s) here, but not inside the "
                          f"sandbox's namespace jail ({why}); run with --isolation limits (candidates then run with "
                          "limits only, not jailed) and report the machine's driver and container")  # fmt: skip
