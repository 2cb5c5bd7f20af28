"""The sandboxed side of an evaluation: `python -m fairnad.evaluate.worker JOB.json`.

Runs the checks in order - import, build, parameter budget, forward shape, then training - and
reports each failure with its category and trimmed traceback. Events go to the file descriptor
named by FAIRNAD_RESULT_FD as JSON lines, so nothing the candidate prints can be mistaken for
a result. This process runs untrusted code: it is started only by fairnad.evaluate.sandbox.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

T0 = float(os.environ.get("FAIRNAD_T0", time.time()))


class Channel:
    def __init__(self, fd: int | None) -> None:
        self._f = os.fdopen(fd, "w", buffering=1) if fd is not None else None

    def send(self, **event) -> None:
        if self._f is None:
            print(json.dumps(event), file=sys.__stderr__)
            return
        try:
            self._f.write(json.dumps(event, default=float) + "\n")
        except (OSError, ValueError):
            pass  # the candidate closed our descriptor: the parent will report a crash


def trimmed_traceback(exc: BaseException, limit: int = 4000) -> str:
    """The traceback from the candidate's own frames on (harness frames dropped), at most `limit` chars."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [i for i, f in enumerate(frames) if f.filename.endswith("candidate.py")]
    if own:
        frames = frames[own[0] :]
    text = "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(exc), exc))
    return text if len(text) <= limit else "..." + text[-limit:]


class ShapeTrace:
    """Forward hooks that note each module's input and output shapes during the shape check, so a
    shape error says where it happened and what came in ("in features.1.se.fc (Linear(in_features=32,
    out_features=8)), input (2, 40)"): the feedback a small model needs to fix it."""

    def __init__(self, model) -> None:
        self.entered: list[tuple[str, str, str]] = []  # (name, module repr, input shapes), in call order
        self.done: list[tuple[str, str]] = []  # (name, output shape), in return order
        self.hooks = []
        for name, m in model.named_modules():
            if not name:
                continue
            self.hooks.append(m.register_forward_pre_hook(lambda mod, args, n=name: self._enter(n, mod, args)))
            self.hooks.append(m.register_forward_hook(lambda mod, args, out, n=name: self._leave(n, out)))

    @staticmethod
    def _shape(x) -> str:
        if hasattr(x, "shape"):
            return str(tuple(x.shape))
        if isinstance(x, (tuple, list)):
            return ", ".join(ShapeTrace._shape(v) for v in x[:3])
        return type(x).__name__

    def _enter(self, name, mod, args) -> None:
        extra = mod.extra_repr()
        self.entered.append((name, f"{type(mod).__name__}({extra[:80]})", self._shape(args)))

    def _leave(self, name, out) -> None:
        self.done.append((name, self._shape(out)))

    def close(self) -> None:
        for h in self.hooks:
            h.remove()
        self.hooks = []

    def flow(self, depth: int = 2, limit: int = 16) -> list[str]:
        """Output shapes of the outer modules in the order they returned (`features.0 -> (2, 32, 40)`):
        shown with the model in prompts, so a change can be written to fit the tensors it meets."""
        out = [f"{n} -> {s}" for n, s in self.done if n.count(".") < depth]
        return out if len(out) <= limit else out[: limit - 1] + [f"... ({len(out) - limit + 1} more)"]

    def describe(self, last: int = 4) -> str:
        """The module that was running when the error came (entered, never left), and the last outputs."""
        left = {n for n, _ in self.done}
        open_ = [e for e in self.entered if e[0] not in left]
        lines = []
        if open_:
            name, kind, shapes = open_[-1]
            lines.append(f"It failed in {name} ({kind}), whose input was {shapes}.")
        if self.done:
            lines.append("Before that: " + "; ".join(f"{n} gave {s}" for n, s in self.done[-last:]) + ".")
        return " ".join(lines)


def fail(ch: Channel, category: str, exc: BaseException | None = None, message: str | None = None, **metrics) -> None:
    if exc is not None and message is None:
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    ch.send(event="result", status="failed", category=category, error=(message or category)[:2000],
            traceback=trimmed_traceback(exc) if exc is not None else None, metrics=metrics)  # fmt: skip


def main(job_path: str) -> int:
    with open(job_path) as f:
        job = json.load(f)
    fd = os.environ.get("FAIRNAD_RESULT_FD")
    ch = Channel(int(fd) if fd else None)
    ch.send(event="stage", stage="start", t=time.time() - T0)

    import numpy as np
    import torch

    from fairnad.evaluate.train import DeviceData, Divergence, TrainConfig, count_params, train

    threads = int(job.get("threads", 1))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    seed = int(job.get("seed", 0))
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    device = torch.device(job.get("device", "cpu"))
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        fail(ch, "crash", message=cuda_not_visible(device, torch))
        return 0
    # cuDNN autotuning (benchmark mode) measured +6 to +25 s of start-up per model on an H100 for
    # at most a few percent of throughput: short proxy trainings are better off with its heuristics.
    torch.backends.cudnn.benchmark = False
    spec = job["dataset"]
    num_classes, in_shape = int(spec["num_classes"]), tuple(spec["input_shape"])

    # 1. import the candidate (its top-level code runs here)
    ch.send(event="stage", stage="import", t=time.time() - T0)
    import importlib.util

    try:
        mod_spec = importlib.util.spec_from_file_location("candidate", job["source"])
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules["candidate"] = module
        mod_spec.loader.exec_module(module)
    except SystemExit as exc:
        fail(ch, "import", exc, f"the module called sys.exit({exc.code!r}) while being imported")
        return 0
    except (MemoryError, torch.cuda.OutOfMemoryError) as exc:
        fail(ch, "memory", exc)
        return 0
    except BaseException as exc:  # noqa: BLE001 - anything the candidate raises is its failure
        fail(ch, "import", exc)
        return 0
    builder = getattr(module, job.get("builder", "build_model"), None)
    if not callable(builder):
        fail(ch, "import", message=f"the file defines no callable {job.get('builder', 'build_model')}(num_classes, in_chans)")
        return 0

    # 2. build
    ch.send(event="stage", stage="build", t=time.time() - T0)
    try:
        model = builder(num_classes=num_classes, in_chans=in_shape[0], **job.get("model_args", {}))
    except SystemExit as exc:
        fail(ch, "build", exc, f"building the model called sys.exit({exc.code!r})")
        return 0
    except (MemoryError, torch.cuda.OutOfMemoryError) as exc:
        fail(ch, "memory", exc)
        return 0
    except BaseException as exc:  # noqa: BLE001
        fail(ch, "build", exc)
        return 0
    if not isinstance(model, torch.nn.Module):
        fail(ch, "build", message=f"build_model returned {type(model).__name__}, not a torch.nn.Module")
        return 0

    # 3. parameter budget (before touching the device: a 100M-parameter model fails here, cheaply);
    # lazy layers (nn.LazyLinear, ...) have no size before the first batch: counted after step 4
    max_params = job.get("max_params")

    def over_budget(params: int) -> bool:
        if max_params is not None and params > max_params:
            fail(ch, "budget", message=f"{params:,} parameters, over the budget of {int(max_params):,}", params=params)
            return True
        return False

    lazy = any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in model.parameters())
    params = None if lazy else count_params(model)
    if params is not None and over_budget(params):
        return 0

    # 4. forward shape
    ch.send(event="stage", stage="forward", t=time.time() - T0)
    trace = None
    try:
        model = model.to(device)
        probe = torch.randn((2, *in_shape), generator=torch.Generator().manual_seed(1234)).to(device)
        trace = ShapeTrace(model)
        with torch.no_grad():
            model.eval()
            out = model(probe)
            model.train()
        trace.close()
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            fail(ch, "shape", message=f"a batch of 2 inputs {in_shape} gave output {got}, expected (2, {num_classes})",
                 params=params)  # fmt: skip
            return 0
    except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
        fail(ch, "memory", exc, params=params)
        return 0
    except BaseException as exc:  # noqa: BLE001
        where = ""
        if trace is not None:  # (moving the model to the device can fail before the trace exists)
            trace.close()
            where = trace.describe()
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        fail(ch, "shape", exc, message=f"{message}\n{where}" if where else None, params=params)
        return 0
    if params is None:
        if any(isinstance(p, torch.nn.parameter.UninitializedParameter) for p in model.parameters()):
            fail(ch, "shape", message="a layer whose input size is inferred (nn.LazyLinear, ...) is never used in "
                 "the forward pass, so it has no size; remove it or give its sizes")  # fmt: skip
            return 0
        params = count_params(model)
        if over_budget(params):
            return 0
    # the same network (whatever its code looks like) built from the same seed gives the same
    # parameters and the same outputs: a duplicate of a model already evaluated is not trained again
    structure = structure_hash(model, out, probe)
    if structure in set(job.get("known_structures") or ()):
        ch.send(event="result", status="duplicate", category="duplicate", error="the same network as a model already "
                "evaluated (same parameter shapes and outputs)", traceback=None,
                metrics={"params": params, "structure": structure})  # fmt: skip
        return 0
    depth, width = shape_descriptors(model)
    ch.send(event="checked", params=params, structure=structure, depth=depth, width=width, shapes=trace.flow(),
            t=time.time() - T0)  # fmt: skip
    if job.get("checks_only"):
        flops = _flops(model, in_shape, device)
        ch.send(event="result", status="complete", category=None, error=None, traceback=None,
                metrics={"params": params, "flops": flops, "macs": flops // 2 if flops else None,
                         "structure": structure})  # fmt: skip
        return 0

    # 5. train
    from fairnad.evaluate.datasets import load

    try:
        arrays = load(spec["path"])
        data = DeviceData(arrays, device, augment=bool(spec.get("augment")))
        cfg = TrainConfig(**job["train"], device=str(device), seed=seed)
        first = {}

        def on_first_step():
            first["t"] = time.time() - T0
            ch.send(event="stage", stage="first_step", t=first["t"])

        res = train(model, data, cfg, on_epoch=lambda row: ch.send(event="epoch", **row), on_first_step=on_first_step)
    except Divergence as exc:
        fail(ch, "nan", message=str(exc), params=params)
        return 0
    except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
        fail(ch, "memory", exc, params=params)
        return 0
    except SystemExit as exc:
        fail(ch, "crash", exc, f"training called sys.exit({exc.code!r})", params=params)
        return 0
    except BaseException as exc:  # noqa: BLE001
        fail(ch, "crash", exc, params=params)
        return 0
    ch.send(event="stage", stage="trained", t=time.time() - T0)
    flops = _flops(model, in_shape, device)  # after training: a metric, not a check, and slow to set up
    ch.send(event="stage", stage="flops", t=time.time() - T0)
    metrics = {"params": params, "flops": flops, "macs": flops // 2 if flops else None, **res,
               "startup_seconds": first.get("t"), "structure": structure}  # fmt: skip
    if job.get("save_weights"):
        err = save_weights(model, job["weights_file"], metrics)
        if err:
            metrics["weights_error"] = err  # weights are a bonus: the metrics stand without them
        ch.send(event="stage", stage="weights", t=time.time() - T0)
    ch.send(event="result", status="complete", category=None, error=None, traceback=None, metrics=metrics)
    return 0


def cuda_not_visible(device, torch) -> str:
    """Why a CUDA evaluation cannot run, with the likely cause: the sandbox's isolation (a jail that
    hides what CUDA's initialisation needs) is told apart from a machine whose torch sees no GPU."""
    what = (f"device {device}: not visible to the evaluation process (torch {torch.__version__}, "
            f"{torch.cuda.device_count()} CUDA devices); the model was not run")
    isolation = os.environ.get("FAIRNAD_ISOLATION", "")
    if isolation.startswith("namespaces"):
        return (f"{what}. Likely the sandbox's namespace jail: if `--isolation limits` sees the GPU, the jail hides "
                "what CUDA needs (report it, with this machine's driver and container)")
    return f"{what}; check the driver, CUDA_VISIBLE_DEVICES and --gpus"


def save_weights(model, path: str, metrics: dict) -> str | None:
    """The trained state dict as safetensors, with the validation accuracy and size in its metadata
    (strings, as the format wants). Every tensor is a contiguous CPU copy of its own: tied weights
    (one tensor under two names) would otherwise be refused. Returns why it failed, or None."""
    try:
        import torch
        from safetensors.torch import save_file

        state = model.state_dict()
        bad = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
        if bad:
            return f"the state dict holds non-tensor entries ({', '.join(bad[:3])}); weights not saved"
        tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()}
        meta = {"format": "pt", "val_acc": repr(float(metrics.get("val_acc") or 0.0)),
                "test_acc": repr(float(metrics.get("test_acc") or 0.0)), "params": str(int(metrics.get("params") or 0))}
        save_file(tensors, path, metadata=meta)
        return None
    except Exception as exc:  # noqa: BLE001 - anything odd in the candidate's module: no weights, metrics stand
        return f"weights not saved: {type(exc).__name__}: {str(exc)[:300]}"


def shape_descriptors(model) -> tuple[int, float]:
    """Depth (layers with a weight matrix or kernel) and width (their mean output channels): LLMatic's descriptors."""
    outs = [p.shape[0] for name, p in model.named_parameters() if name.endswith("weight") and p.dim() >= 2]
    return len(outs), (float(sum(outs)) / len(outs) if outs else 0.0)


def structure_hash(model, out, probe=None) -> str:
    """What the network is, whatever its code looks like: parameter shapes in order, every module's
    type and settings (so a dropout rate, an activation or a norm swap counts even where eval-mode
    outputs agree), the (rounded) eval-mode outputs on a fixed input from the seeded initialisation,
    and, given `probe`, the train-mode outputs with a fixed seed (functional dropout shows there).
    Attribute names and formatting do not matter."""
    import copy
    import hashlib

    import numpy as np
    import torch

    shapes = "|".join(str(tuple(p.shape)) for p in model.parameters())
    kinds = sorted(f"{type(m).__name__}({m.extra_repr()})" for m in model.modules() if not list(m.children()))
    parts = [shapes.encode(), "|".join(kinds).encode(),
             np.round(out.detach().float().cpu().numpy().astype(np.float64), 3).tobytes()]  # fmt: skip
    if probe is not None:
        try:
            twin = copy.deepcopy(model).train()  # a copy: batch-norm statistics of the real one stay untouched
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(4321)
                train_out = twin(probe)
            if isinstance(train_out, torch.Tensor):
                parts.append(np.round(train_out.detach().float().cpu().numpy().astype(np.float64), 3).tobytes())
        except Exception:  # noqa: BLE001 - a model that cannot be copied is still told apart by the rest
            pass
    return hashlib.sha256(b"#".join(parts)).hexdigest()[:20]


def _flops(model, in_shape, device) -> int | None:
    from fairnad.evaluate.train import count_flops

    try:
        return count_flops(model, in_shape, device)
    except Exception:  # noqa: BLE001 - an op the counter cannot trace must not fail a trained model
        return None


if __name__ == "__main__":
    code = main(sys.argv[1])
    # The result is sent: end here, without the interpreter's and CUDA's teardown (freeing every module
    # and the device context), which the parent would otherwise wait for before the next evaluation.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
