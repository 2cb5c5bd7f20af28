"""The proxy trainer that runs inside the sandbox: data resident on the device, no per-batch host work.

On CUDA the whole dataset sits on the GPU as uint8; normalisation and augmentation (pad-crop,
flip) run there, under bf16 autocast and channels_last. Non-finite or exploding loss stops
training early (category `nan`). Everything is seeded.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fairnad.evaluate.recipe import TrainConfig  # noqa: F401  (also the worker's import)


class Divergence(RuntimeError):
    """The loss became NaN/inf or exploded."""


class DeviceData:
    """Train / val / test tensors on the device, with on-device normalisation and augmentation."""

    def __init__(self, arrays: dict[str, np.ndarray], device: torch.device, augment: bool) -> None:
        self.device = device
        self.augment = augment
        self.pixels = arrays["x_train"].dtype == np.uint8
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
        self.x = {s: t(arrays[f"x_{s}"]) for s in ("train", "val", "test")}
        self.y = {s: t(arrays[f"y_{s}"]).long() for s in ("train", "val", "test")}
        if self.pixels:
            shape = (1, -1) + (1,) * (arrays["x_train"].ndim - 2)
            self.mean = torch.as_tensor(arrays["mean"], device=device).view(shape)
            self.std = torch.as_tensor(arrays["std"], device=device).view(shape)

    def prepare(self, xb: torch.Tensor) -> torch.Tensor:
        if not self.pixels:
            return xb
        return (xb.float() / 255.0 - self.mean) / self.std

    def augment_batch(self, xb: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
        """Random pad-crop and horizontal flip of an image batch, as one gather on the device."""
        b, _, h, w = xb.shape
        padded = F.pad(xb, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b, 1, 1), device=xb.device, generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (b, 1, 1), device=xb.device, generator=gen)
        rows = torch.arange(h, device=xb.device).view(1, h, 1) + dy
        cols = torch.arange(w, device=xb.device).view(1, 1, w) + dx
        flip = torch.rand(b, 1, 1, device=xb.device, generator=gen) < 0.5
        cols = torch.where(flip, dx + (w - 1) - torch.arange(w, device=xb.device).view(1, 1, w), cols)
        idx = torch.arange(b, device=xb.device).view(b, 1, 1)
        return padded[idx, :, rows, cols].permute(0, 3, 1, 2)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, ...], device: torch.device) -> int:
    """FLOPs of one forward pass on one input (torch's formulas: a multiply-add counts 2)."""
    was_training = model.training
    model.eval()
    x = torch.zeros((1, *input_shape), device=device)
    counter = _FlopCount()
    with torch.no_grad(), counter:
        model(x)
    model.train(was_training)
    return int(counter.total)


class _FlopCount(torch.utils._python_dispatch.TorchDispatchMode):
    """torch.utils.flop_counter.FlopCounterMode's count with its formulas (flop_registry), without its
    per-module bookkeeping. Torch wraps a dispatch mode's handler so that the compiler skips it, and that
    wrapper imports torch._dynamo at the first op: 1.0-1.5 s on a CPU and ~3-4 s on a GPU box, paid by
    every sandboxed evaluation for a number that takes 10 ms to count (benchmarks/gpu_check.py)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:  # nothing here is ever compiled
        return False

    def __init__(self) -> None:
        from torch.utils.flop_counter import flop_registry

        super().__init__()
        self.formulas = flop_registry
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func._overloadpacket not in self.formulas and func is not torch.ops.prim.device.default:
            with self:  # an op torch counts through its parts (as FlopCounterMode does)
                out = func.decompose(*args, **kwargs)
                if out is not NotImplemented:
                    return out
        out = func(*args, **kwargs)
        formula = self.formulas.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)  # no decay on norms and biases
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class ForeachOptimizer:
    """SGD (Nesterov momentum) and AdamW (decoupled decay) written with torch._foreach ops.

    Same maths as torch.optim.SGD / AdamW (the tests compare them). Written here for two reasons:
    constructing any torch.optim optimiser imports torch._dynamo, 1-4 s of every sandboxed
    evaluation's start-up, and keeping the learning rate and step count in device tensors lets
    the whole step be captured in one CUDA graph and replayed with a changing schedule.
    """

    def __init__(self, groups: list[dict], kind: str, lr: float, momentum=0.9, nesterov=True, betas=(0.9, 0.999),
                 eps=1e-8, device: torch.device | str = "cpu") -> None:  # fmt: skip
        if kind not in ("sgd", "adamw"):
            raise ValueError(f"unknown optimizer {kind!r} (sgd or adamw)")
        self.param_groups = [{**g, "lr": torch.tensor(float(lr), device=device), "params": list(g["params"])}
                             for g in groups]  # fmt: skip
        self.kind, self.momentum, self.nesterov, self.betas, self.eps = kind, momentum, nesterov, betas, eps
        self.state: dict[int, list] = {}
        self.t = torch.zeros((), device=device)
        self._bufs_ready = False

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    def _buffers(self, gi: int, params: list[torch.Tensor]) -> list:
        if gi not in self.state:
            n = 1 if self.kind == "sgd" else 2
            self.state[gi] = [[torch.zeros_like(p) for p in params] for _ in range(n)]
        return self.state[gi]

    def reset_state(self) -> None:
        """Back to 'no step taken' (used after the warm-up steps of a graph capture)."""
        self.t.zero_()
        for bufs in self.state.values():
            for b in bufs:
                torch._foreach_zero_(b)

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        for gi, g in enumerate(self.param_groups):
            params = [p for p in g["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            lr, wd = g["lr"], g["weight_decay"]
            if self.kind == "sgd":
                if wd:
                    grads = torch._foreach_add(grads, params, alpha=wd)
                if self.momentum:
                    (bufs,) = self._buffers(gi, params)
                    torch._foreach_mul_(bufs, self.momentum)
                    torch._foreach_add_(bufs, grads)
                    grads = torch._foreach_add(grads, bufs, alpha=self.momentum) if self.nesterov else bufs
                torch._foreach_sub_(params, torch._foreach_mul(grads, lr))
            else:  # adamw
                b1, b2 = self.betas
                m, v = self._buffers(gi, params)
                if wd:
                    torch._foreach_mul_(params, 1 - lr * wd)
                torch._foreach_lerp_(m, grads, 1 - b1)
                torch._foreach_mul_(v, b2)
                torch._foreach_addcmul_(v, grads, grads, 1 - b2)
                denom = torch._foreach_sqrt(v)
                torch._foreach_div_(denom, torch.sqrt(1 - b2**self.t))
                torch._foreach_add_(denom, self.eps)
                update = torch._foreach_div(m, denom)
                torch._foreach_mul_(update, lr / (1 - b1**self.t))
                torch._foreach_sub_(params, update)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> ForeachOptimizer:
    return ForeachOptimizer(_param_groups(model, cfg.weight_decay), cfg.optimizer, cfg.lr, cfg.momentum, cfg.nesterov,
                            device=cfg.device)  # fmt: skip


@torch.no_grad()
def accuracy(model: nn.Module, data: DeviceData, split: str, cfg: TrainConfig, amp: bool, cl: bool) -> float:
    model.eval()
    x, y = data.x[split], data.y[split]
    correct = torch.zeros((), device=data.device, dtype=torch.long)
    for i in range(0, len(x), cfg.eval_batch_size):
        xb = data.prepare(x[i : i + cfg.eval_batch_size])
        if cl:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(xb)
        correct += (out.argmax(1) == y[i : i + cfg.eval_batch_size]).sum()
    model.train()
    return 100.0 * correct.item() / len(x)


class EagerStep:
    """One optimisation step, op by op."""

    graphed = False

    def __init__(self, model: nn.Module, opt, cfg: TrainConfig, amp: bool) -> None:
        self.model, self.opt, self.cfg, self.amp = model, opt, cfg, amp
        self.device_type = next(model.parameters()).device.type if any(True for _ in model.parameters()) else "cpu"

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.model(xb)
            loss = F.cross_entropy(out.float(), yb, label_smoothing=self.cfg.label_smoothing)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip, foreach=True)
        self.opt.step()
        return loss.detach(), (out.detach().argmax(1) == yb).sum()


class GraphedStep(EagerStep):
    """The whole step (forward, backward, clipping, optimiser) captured once as a CUDA graph and
    replayed: small proxy models are launch-bound, and replay removes the per-kernel CPU cost.
    Capture needs a few warm-up steps; the model and optimiser state are restored after them,
    so training is the same as the eager path's."""

    graphed = True

    def __init__(self, model, opt, cfg, amp, x0: torch.Tensor, y0: torch.Tensor) -> None:
        super().__init__(model, opt, cfg, amp)
        self.x, self.y = x0.clone(), y0.clone()
        tensors = list(model.parameters()) + list(model.buffers())
        saved = [t.detach().clone() for t in tensors]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                super().__call__(self.x, self.y)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                out = model(self.x)
                loss = F.cross_entropy(out.float(), self.y, label_smoothing=cfg.label_smoothing)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip, foreach=True)
            opt.step()
            self.loss = loss.detach()
            self.correct = (out.detach().argmax(1) == self.y).sum()
        with torch.no_grad():  # undo the warm-up: as if no step had been taken
            for t, v in zip(tensors, saved):
                t.copy_(v)
            opt.reset_state()

    def __call__(self, xb, yb):
        self.x.copy_(xb)
        self.y.copy_(yb)
        self.graph.replay()
        return self.loss, self.correct


def make_step(model, opt, cfg: TrainConfig, amp: bool, x0, y0) -> tuple[EagerStep, str | None]:
    """A graphed step where the model allows it (static shapes, no host syncs), else the eager one.
    Returns the step and, if capture failed, why."""
    if not (cfg.cuda_graph and x0.is_cuda):
        return EagerStep(model, opt, cfg, amp), None
    try:
        return GraphedStep(model, opt, cfg, amp, x0, y0), None
    except Exception as err:  # noqa: BLE001 - any capture failure means: train eagerly
        torch.cuda.synchronize()
        return EagerStep(model, opt, cfg, amp), f"{type(err).__name__}: {str(err)[:200]}"


def train(
    model: nn.Module,
    data: DeviceData,
    cfg: TrainConfig,
    on_epoch: Callable[[dict], None] | None = None,
    on_first_step: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Train for cfg.epochs; returns validation/test accuracy, per-epoch curves and seconds."""
    device = data.device
    cuda = device.type == "cuda"
    amp = cuda if cfg.amp is None else cfg.amp
    four_d = data.x["train"].ndim == 4
    cl = (cuda and four_d) if cfg.channels_last is None else (cfg.channels_last and four_d)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    opt = make_optimizer(model, cfg)
    n = len(data.x["train"])
    bs = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // bs)  # drop the ragged last batch: fixed shapes, one captured graph
    total = steps_per_epoch * cfg.epochs
    warm = int(cfg.warmup_epochs * steps_per_epoch)

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    def set_lr(step: int) -> None:
        for g in opt.param_groups:
            g["lr"].fill_(cfg.lr * lr_at(step))

    def batch(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xb, yb = data.x["train"][idx], data.y["train"][idx]
        if data.augment and four_d:
            xb = data.augment_batch(xb, gen)
        xb = data.prepare(xb)
        # the augmented gather comes out in channels-last strides; every batch gets the layout the model
        # was set up for (torch 2.14.1's CPU backward of a strided ResNet block segfaults on such input)
        return xb.contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format), yb

    check = cfg.check_every or (50 if cuda else 1)
    limit = 5.0 * math.log(max(2, int(data.y["train"].max().item()) + 1)) + 5.0  # a loss this high has diverged
    curves: list[dict] = []
    model.train()
    t_start = time.perf_counter()
    step_fn, graph_note = None, None
    step = 0
    for epoch in range(cfg.epochs):
        t_epoch = time.perf_counter()
        perm = torch.randperm(n, device=device, generator=gen)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for i in range(steps_per_epoch):
            xb, yb = batch(perm[i * bs : (i + 1) * bs])
            if step_fn is None:
                step_fn, graph_note = make_step(model, opt, cfg, amp, xb, yb)
            set_lr(step)
            loss, hits = step_fn(xb, yb)
            loss_sum += loss
            correct += hits
            step += 1
            if step == 1 and on_first_step is not None:
                on_first_step()
            if step % check == 0 or step == 1:
                v = loss.item()
                if not math.isfinite(v) or v > limit:
                    raise Divergence(f"training loss is {v:.4g} at step {step} (epoch {epoch + 1}); stopped early")
        train_loss = loss_sum.item() / steps_per_epoch
        if not math.isfinite(train_loss):
            raise Divergence(f"mean training loss of epoch {epoch + 1} is {train_loss}")
        val = accuracy(model, data, "val", cfg, amp, cl)
        row = {
            "epoch": epoch + 1,
            "train_loss": round(train_loss, 5),
            "train_acc": round(100.0 * correct.item() / (steps_per_epoch * bs), 3),
            "val_acc": round(val, 3),
            "seconds": round(time.perf_counter() - t_epoch, 3),
        }
        curves.append(row)
        if on_epoch is not None:
            on_epoch(row)
    train_seconds = time.perf_counter() - t_start
    return {
        "val_acc": curves[-1]["val_acc"] if curves else accuracy(model, data, "val", cfg, amp, cl),
        "test_acc": round(accuracy(model, data, "test", cfg, amp, cl), 3),
        "train_seconds": round(train_seconds, 3),
        "images_per_second": round(steps_per_epoch * bs * cfg.epochs / max(train_seconds, 1e-9), 1),
        "curves": curves,
        "steps": step,
        "cuda_graph": bool(step_fn is not None and step_fn.graphed),
        **({"cuda_graph_error": graph_note} if graph_note else {}),
    }
