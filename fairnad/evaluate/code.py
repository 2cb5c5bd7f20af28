"""Evaluating model source code: one request -> a sandboxed process -> metrics or a categorised failure.

`EvalRequest` is everything an evaluation needs and is plain data, so the same request runs in
the local pool or on a Ray node and gives the same result for the same seed.
"""

from __future__ import annotations

import json
import math
import os
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fairnad.evaluate.base import Result
from fairnad.evaluate.datasets import dataset_spec, prepare
from fairnad.evaluate.sandbox import Limits, Sandbox, SandboxResult
from fairnad.space.candidate import Candidate

# Seconds allowed per epoch when no --timeout is given (generous: models differ by 100x in cost).
_PER_EPOCH = {"mnist1d": 15, "digits": 15, "fashion-mnist": 180, "cifar10": 90, "cifar100": 90, "imagenet16-120": 180}
_PER_EPOCH_CPU_IMAGES = 1800  # CIFAR-sized data on a CPU is possible, just slow


@dataclass
class EvalRequest:
    source: str
    dataset: str
    epochs: int | None = None  # default: the dataset's recipe
    data_dir: str | None = None
    device: str = "cpu"
    seed: int = 0
    max_params: int | None = None
    train: dict[str, Any] = field(default_factory=dict)  # overrides of the recipe (lr, batch_size, ...)
    model_args: dict[str, Any] = field(default_factory=dict)
    checks_only: bool = False
    save_weights: bool = False
    timeout: float | None = None
    memory_mb: int = 4096
    threads: int = 1
    known_structures: list[str] = field(default_factory=list)  # networks already evaluated: not trained again

    def recipe(self) -> dict[str, Any]:
        r = {**dataset_spec(self.dataset).recipe, **self.train}
        if self.epochs is not None:
            r["epochs"] = self.epochs
        return r

    def limits(self) -> Limits:
        return Limits(timeout=self.timeout or default_timeout(self.dataset, self.recipe()["epochs"], self.device),
                      memory_mb=self.memory_mb, threads=self.threads)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_timeout(dataset: str, epochs: int, device: str) -> float:
    spec = dataset_spec(dataset)
    # a user's arrays: ~1e-4 s per input value and epoch on one CPU thread (MNIST-1D: 140k values, ~15 s)
    per = _PER_EPOCH.get(dataset) or max(30.0, 1e-4 * spec.train_size * math.prod(spec.input_shape))
    if device == "cpu" and spec.needs_dir:
        per = _PER_EPOCH_CPU_IMAGES
    return 60.0 + per * max(1, epochs)


def run_request(req: EvalRequest, isolation: str = "auto", env: dict[str, str] | None = None) -> SandboxResult:
    """Prepare the dataset on this machine (cached) and run the candidate in a sandbox."""
    spec = dataset_spec(req.dataset)
    job = {
        "dataset": {"name": spec.name, "path": str(prepare(req.dataset, req.data_dir)), "num_classes": spec.num_classes,
                    "input_shape": list(spec.input_shape), "augment": spec.augment},
        "train": req.recipe(), "seed": req.seed, "device": req.device, "max_params": req.max_params,
        "model_args": req.model_args, "checks_only": req.checks_only,
        "save_weights": req.save_weights and not req.checks_only, "known_structures": req.known_structures,
    }  # fmt: skip
    return Sandbox(req.limits(), isolation=isolation).run(req.source, job, env=env)


def to_result(sr: SandboxResult) -> Result:
    """A sandbox outcome as the Result every evaluator returns (accuracy = validation accuracy)."""
    m = dict(sr.metrics)
    if sr.status == "complete" and "val_acc" in m:
        m["accuracy"] = m["val_acc"]
        m["test_accuracy"] = m.get("test_acc")
    m["isolation"] = sr.isolation
    if sr.traceback:
        m["traceback"] = sr.traceback
    return Result(sr.status, metrics=m, error=sr.error, category=sr.category, seconds=sr.seconds)


def safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata in a safetensors file's header (read without loading the tensors)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 100 * 2**20:
            raise ValueError(f"{path}: not a safetensors file (header of {n} bytes)")
        header = json.loads(f.read(n))
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def weights_accuracy(path: str | Path) -> float | None:
    """The validation accuracy a weights file was saved with (its metadata), or None."""
    try:
        return float(safetensors_metadata(path)["val_acc"])
    except (OSError, ValueError, KeyError, struct.error, json.JSONDecodeError):
        return None


class CodeEvaluator:
    """The evaluator of open-ended spaces: a candidate's genotype is its source code. It remembers the
    networks it has evaluated, so a new file that builds one of them again is not trained twice.

    With a `weights_dir` (a run's `weights/` folder) the trained weights of every complete candidate
    are written there as `trial-NNNN.safetensors` and the folder is pruned to the `keep_weights`
    most accurate (by the validation accuracy in each file's metadata; -1 keeps all, 0 none)."""

    def __init__(self, base: EvalRequest, executor=None, weights_dir: str | Path | None = None,
                 keep_weights: int = 5) -> None:  # fmt: skip
        self.base = base
        self.executor = executor
        self.structures: set[str] = set()
        self.weights_dir = Path(weights_dir) if weights_dir is not None else None
        self.keep_weights = keep_weights

    @property
    def saves_weights(self) -> bool:
        return self.weights_dir is not None and self.keep_weights != 0

    def observe(self, candidate: Candidate) -> None:
        """A candidate evaluated earlier (a resumed run replays them without evaluating)."""
        s = candidate.metrics.get("structure")
        if s and candidate.status in ("complete", "failed"):
            self.structures.add(s)

    def request(self, candidate: Candidate, fidelity: str | None = None) -> EvalRequest:
        req = EvalRequest(**{**self.base.to_dict(), "source": candidate.genotype,
                             "known_structures": sorted(self.structures)})  # fmt: skip
        if fidelity is not None:
            req.epochs = int(fidelity)
        req.save_weights = self.saves_weights and not req.checks_only
        return req

    def evaluate(self, candidate: Candidate, fidelity: str | None = None) -> Result:
        return self.evaluate_many([candidate], fidelity)[0]

    def evaluate_many(self, candidates: list[Candidate], fidelity: str | None = None) -> list[Result]:
        """Several candidates at once (as many in parallel as the executor runs)."""
        reqs = [self.request(c, fidelity) for c in candidates]
        t = time.time()
        srs = self.executor.map(reqs) if self.executor is not None else [run_request(r) for r in reqs]
        out = []
        for cand, sr in zip(candidates, srs):
            res = to_result(sr)
            res.seconds = sr.seconds or round(time.time() - t, 3)
            s = sr.metrics.get("structure")
            if s and sr.status in ("complete", "failed"):
                self.structures.add(s)
            for key in ("weights", "weights_pruned"):  # only this evaluator says where weights are
                res.metrics.pop(key, None)
            if sr.weights is not None and sr.status == "complete" and self.saves_weights:
                self._keep(cand.trial, sr.weights, res.metrics)
            out.append(res)
        return out

    # -- trained weights ------------------------------------------------------------------------
    def _keep(self, trial: int, data: bytes, metrics: dict[str, Any]) -> None:
        assert self.weights_dir is not None
        name = f"trial-{trial:04d}.safetensors"
        path = self.weights_dir / name
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
        try:
            self.weights_dir.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            if weights_accuracy(tmp) is None:
                tmp.unlink(missing_ok=True)
                metrics["weights_error"] = "the weights file the worker returned has no readable header; not kept"
                return
            os.replace(tmp, path)  # atomic: a resumed trial replaces its file whole
        except OSError as err:
            tmp.unlink(missing_ok=True)
            metrics["weights_error"] = f"could not write {path}: {err.strerror}"
            return
        metrics["weights"] = f"{self.weights_dir.name}/{name}"
        if path in self.prune():
            metrics.pop("weights")
            metrics["weights_pruned"] = True  # trained, but not among the keep_weights most accurate

    def prune(self) -> list[Path]:
        """Remove all but the `keep_weights` most accurate weight files (earlier trial first on ties)."""
        if self.weights_dir is None or self.keep_weights < 0 or not self.weights_dir.is_dir():
            return []
        acc = {p: weights_accuracy(p) for p in self.weights_dir.glob("trial-*.safetensors")}

        def rank(p: Path) -> tuple[float, int]:  # most accurate first; unreadable files last
            trial = p.stem.removeprefix("trial-")
            return (-(acc[p] if acc[p] is not None else -1.0), int(trial) if trial.isdigit() else 1 << 62)

        ranked = sorted(acc, key=rank)
        removed = ranked[self.keep_weights :]
        for p in removed:
            p.unlink(missing_ok=True)
        return removed
