"""Images/s of fairnad's proxy trainer against a plain best-practice PyTorch loop, same model, same data.

The model is the reference ResNet-20 (fairnad/space/reference/resnet_cifar.py); the data is
CIFAR-shaped uint8 tensors resident on the device. The reference loop is what a careful user
writes by hand: GPU-resident data, fused SGD, bf16 autocast and channels_last on CUDA, no
augmentation and no gradient clipping. fairnad's trainer is measured as it runs in the sandbox
(with clipping and divergence checks), with and without its on-device augmentation.

    python benchmarks/train_throughput.py --device cuda [--batch-size 256] [--steps 300] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fairnad.evaluate.train import DeviceData, TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent


MODEL = {"name": "resnet20"}


def resnet20(num_classes=10):
    """The benchmark's model (ResNet-20 unless --model names another reference model)."""
    from fairnad.space.reference import reference

    ref = reference(MODEL["name"])
    spec = importlib.util.spec_from_file_location("bench_model", ref.path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build_model(num_classes=num_classes, in_chans=3)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def reference_loop(arrays, device, batch, steps, warmup) -> float:
    """The hand-written baseline. Returns images/s over `steps` steps after `warmup` steps."""
    torch.manual_seed(0)
    cuda = device.type == "cuda"
    model = resnet20().to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                          fused=cuda or None)  # fmt: skip
    x = torch.from_numpy(arrays["x_train"]).to(device)
    y = torch.from_numpy(arrays["y_train"]).to(device)
    mean = torch.as_tensor(arrays["mean"], device=device).view(1, 3, 1, 1)
    std = torch.as_tensor(arrays["std"], device=device).view(1, 3, 1, 1)
    n = len(x)

    def step(i, perm):
        idx = perm[(i * batch) % (n - batch) : (i * batch) % (n - batch) + batch]
        xb = (x[idx].float() / 255 - mean) / std
        if cuda:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(model(xb).float(), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    perm = torch.randperm(n, device=device)
    for i in range(warmup):
        step(i, perm)
    sync(device)
    t = time.perf_counter()
    for i in range(steps):
        step(i, perm)
    sync(device)
    return steps * batch / (time.perf_counter() - t)


def fairnad_trainer(arrays, device, batch, steps, warmup, augment, graph=True) -> float:
    """fairnad's train(): one warm-up run, then a timed run of exactly `steps` steps (one epoch)."""
    n_train = steps * batch
    sub = dict(arrays, x_train=arrays["x_train"][:n_train], y_train=arrays["y_train"][:n_train])
    data = DeviceData(sub, device, augment=augment)
    cfg = TrainConfig(epochs=1, batch_size=batch, lr=0.1, optimizer="sgd", device=str(device), cuda_graph=graph)
    warm = dict(arrays, x_train=arrays["x_train"][: warmup * batch], y_train=arrays["y_train"][: warmup * batch])
    train(resnet20().to(device), DeviceData(warm, device, augment), cfg)
    model = resnet20().to(device)
    sync(device)
    timings = {}

    def first():
        timings["t0"] = time.perf_counter()

    train(model, data, cfg, on_epoch=lambda row: timings.setdefault("t1", time.perf_counter()),
                on_first_step=first)  # fmt: skip
    # the epoch callback fires after the validation pass: time it separately and take it out
    t_val = time.perf_counter()
    from fairnad.evaluate.train import accuracy

    accuracy(model, data, "val", cfg, device.type == "cuda", device.type == "cuda")
    sync(device)
    val_seconds = time.perf_counter() - t_val
    elapsed = timings["t1"] - timings["t0"] - val_seconds
    return (steps - 1) * batch / elapsed  # timing starts after the first step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--model", default="resnet20", help="a reference model (see `fairnad models`)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    MODEL["name"] = a.model
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    n = max(a.steps, a.warmup) * a.batch_size + a.batch_size
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), "y_train": rng.integers(0, 10, n),
        "x_val": rng.integers(0, 256, (512, 3, 32, 32), dtype=np.uint8), "y_val": rng.integers(0, 10, 512),
        "x_test": rng.integers(0, 256, (512, 3, 32, 32), dtype=np.uint8), "y_test": rng.integers(0, 10, 512),
        "mean": np.full(3, 0.5, np.float32), "std": np.full(3, 0.25, np.float32),
    }  # fmt: skip
    ref = reference_loop(arrays, device, a.batch_size, a.steps, a.warmup)
    ours = fairnad_trainer(arrays, device, a.batch_size, a.steps, a.warmup, augment=False)
    ours_aug = fairnad_trainer(arrays, device, a.batch_size, a.steps, a.warmup, augment=True)
    eager = fairnad_trainer(arrays, device, a.batch_size, a.steps, a.warmup, augment=False, graph=False)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    res = {"device": name, "model": a.model, "batch_size": a.batch_size, "steps": a.steps, "reference_img_s": round(ref),
           "fairnad_img_s": round(ours), "fairnad_augmented_img_s": round(ours_aug), "fairnad_eager_img_s": round(eager),
           "ratio": round(ours / ref, 3), "ratio_augmented": round(ours_aug / ref, 3),
           "ratio_eager": round(eager / ref, 3), "torch": torch.__version__}  # fmt: skip
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"{name}, {a.model}, batch {a.batch_size}: reference loop {ref:,.0f} img/s; fairnad {ours:,.0f} img/s "
              f"({ours / ref:.2f}x); with augmentation {ours_aug:,.0f} img/s ({ours_aug / ref:.2f}x); "
              f"without CUDA graph {eager:,.0f} img/s ({eager / ref:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
