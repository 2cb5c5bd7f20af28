"""The proxy trainer and the reference models: real training steps on real (small) data."""

import copy
import importlib.util

import numpy as np
import pytest
import torch

from fairnad.evaluate.code import EvalRequest, run_request
from fairnad.evaluate.datasets import dataset_spec
from fairnad.evaluate.train import (
    DeviceData,
    Divergence,
    ForeachOptimizer,
    TrainConfig,
    _param_groups,
    count_flops,
    train,
)
from fairnad.space.reference import REFERENCES, reference


def _load(ref):
    spec = importlib.util.spec_from_file_location(ref.name.replace("-", "_"), ref.path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_reference_1d_cnn_reaches_90_percent_on_mnist1d():
    r = run_request(EvalRequest(source=reference("mnist1d-cnn").source(), dataset="mnist1d", epochs=6, threads=2))
    assert r.status == "complete", r.error
    assert r.metrics["test_acc"] >= 90.0, r.metrics
    assert r.metrics["params"] == 37034 and r.metrics["flops"] > 0
    assert [c["epoch"] for c in r.curves] == list(range(1, 7))
    assert r.curves[-1]["train_loss"] < r.curves[0]["train_loss"]


@pytest.mark.parametrize("name", list(REFERENCES))
def test_reference_models_build_scale_and_give_logits(name):
    ref = reference(name)
    mod = _load(ref)
    ds = dataset_spec(ref.datasets[0])
    net = mod.build_model(num_classes=ds.num_classes, in_chans=ds.in_chans)
    out = net(torch.zeros(2, *ds.input_shape))
    assert out.shape == (2, ds.num_classes)
    base = sum(p.numel() for p in net.parameters())
    key = "width" if "width" in ref.scale else next(iter(ref.scale))
    bigger = mod.build_model(num_classes=ds.num_classes, in_chans=ds.in_chans, **{key: ref.scale[key] * 2})
    assert sum(p.numel() for p in bigger.parameters()) > base  # scaling arguments really scale


def test_resnet20_is_the_classic_size():
    net = _load(reference("resnet20")).build_model(num_classes=10, in_chans=3)
    assert sum(p.numel() for p in net.parameters()) == 272474  # He et al.'s 0.27M
    deeper = _load(reference("resnet20")).build_model(num_classes=10, in_chans=3, depth=56)
    assert sum(p.numel() for p in deeper.parameters()) == 855770  # ResNet-56, 0.85M


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_foreach_optimizer_matches_torch_optim(kind):
    torch.manual_seed(0)
    # (no bias before the BatchNorm: its gradient is round-off noise, which Adam amplifies chaotically)
    m1 = torch.nn.Sequential(torch.nn.Linear(5, 7, bias=False), torch.nn.BatchNorm1d(7), torch.nn.Linear(7, 3))
    m2 = copy.deepcopy(m1)
    o1 = ForeachOptimizer(_param_groups(m1, 0.01), kind, 0.05)
    g2 = _param_groups(m2, 0.01)
    o2 = torch.optim.SGD(g2, lr=0.05, momentum=0.9, nesterov=True) if kind == "sgd" else torch.optim.AdamW(g2, lr=0.05)
    for _ in range(25):
        x = torch.randn(16, 5)
        for m, o in ((m1, o1), (m2, o2)):
            o.zero_grad()
            m(x).pow(2).mean().backward()
            o.step()
    # SGD's scalars are identical; AdamW's bias corrections are float32 device tensors here (so a CUDA
    # graph can replay them) and float64 Python numbers in torch.optim: agreement to float32 rounding.
    tol = {"rtol": 1e-6, "atol": 1e-7} if kind == "sgd" else {"rtol": 2e-4, "atol": 2e-5}
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, **tol)


def test_augmentation_crops_and_flips_on_the_device():
    arrays = {f"{k}_{s}": v for s in ("train", "val", "test")
              for k, v in (("x", np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)), ("y", np.zeros(2, np.int64)))}  # fmt: skip
    arrays.update(mean=np.zeros(3, np.float32), std=np.ones(3, np.float32))
    data = DeviceData(arrays, torch.device("cpu"), augment=True)
    x = data.x["train"]
    gen = torch.Generator().manual_seed(0)
    seen_flip = seen_plain = False
    for _ in range(40):
        out = data.augment_batch(x, gen, pad=0)  # no padding: only flips can happen
        assert out.shape == x.shape
        for i in range(2):
            if torch.equal(out[i], x[i]):
                seen_plain = True
            else:
                assert torch.equal(out[i], x[i].flip(-1))
                seen_flip = True
    assert seen_flip and seen_plain
    crops = data.augment_batch(x, gen, pad=2)
    assert crops.shape == x.shape and int(crops.max()) <= int(x.max())


@pytest.mark.parametrize("channels_last", [False, True])
def test_augmented_batches_reach_the_model_in_the_layout_it_was_set_up_for(channels_last):
    """The pad-crop/flip gather returns channels-last strides; torch 2.14.1's CPU backward of a ResNet
    block segfaulted on such input (CI's CIFAR evaluation, killed by SIGSEGV). Every batch the model sees
    in training is contiguous, in channels-last only where the model was made channels-last."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3 * 8 * 8, 10)

        def forward(self, x):
            if self.training:
                seen.append(x.is_contiguous(memory_format=layout))
            return self.fc(x.flatten(1))

    rng = np.random.default_rng(0)
    arrays = {f"x_{s}": rng.integers(0, 255, (32, 3, 8, 8), dtype=np.uint8) for s in ("train", "val", "test")}
    arrays.update({f"y_{s}": rng.integers(0, 10, 32) for s in ("train", "val", "test")})
    arrays.update(mean=np.zeros(3, np.float32), std=np.ones(3, np.float32))
    data = DeviceData(arrays, torch.device("cpu"), augment=True)
    assert not data.augment_batch(data.x["train"][:4], torch.Generator().manual_seed(0)).is_contiguous()
    train(Probe(), data, TrainConfig(epochs=1, batch_size=8, channels_last=channels_last))
    assert seen and all(seen)


def test_divergence_stops_training():
    class Exploding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            return self.w * x.flatten(1)[:, :10] * 1e30

    rng = np.random.default_rng(0)
    arrays = {f"x_{s}": rng.normal(size=(64, 1, 40)).astype(np.float32) for s in ("train", "val", "test")}
    arrays.update({f"y_{s}": rng.integers(0, 10, 64) for s in ("train", "val", "test")})
    with pytest.raises(Divergence, match="training loss is"):
        train(Exploding(), DeviceData(arrays, torch.device("cpu"), False), TrainConfig(epochs=2, batch_size=16))


def test_flop_count_of_a_linear_layer():
    assert count_flops(torch.nn.Linear(20, 10), (20,), torch.device("cpu")) == 2 * 20 * 10


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_flop_count_is_torchs_and_imports_no_compiler(name):
    """The same count as torch's FlopCounterMode, without the torch._dynamo import that mode pays for
    at its first op (1-1.5 s of every CPU evaluation, ~3-4 s on a GPU box)."""
    import subprocess
    import sys

    from torch.utils.flop_counter import FlopCounterMode

    ref = REFERENCES[name]
    shape = tuple(dataset_spec(ref.datasets[0]).input_shape)
    model = _load(ref).build_model(num_classes=10, in_chans=shape[0]).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros((1, *shape)))
    assert count_flops(model, shape, torch.device("cpu")) == counter.get_total_flops() > 0
    if name == "resnet20":  # in a fresh process: the compiler stays unimported
        probe = ("import importlib.util, sys, torch\nfrom fairnad.evaluate.train import count_flops\n"
                 f"spec = importlib.util.spec_from_file_location('m', {str(ref.path)!r})\n"
                 "mod = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(mod)\n"
                 "n = count_flops(mod.build_model(num_classes=10, in_chans=3), (3, 32, 32), torch.device('cpu'))\n"
                 "print(n, 'torch._dynamo' in sys.modules)\n")  # fmt: skip
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
        assert out == [str(counter.get_total_flops()), "False"]
