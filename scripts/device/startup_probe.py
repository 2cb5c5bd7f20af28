"""Where does a sandboxed CUDA evaluation's start-up go? (device-only diagnostic)

    python3 scripts/device/startup_probe.py MODEL BENCHMARK(0|1) GRAPH(0|1)
"""

import sys
import time

t0 = time.time()
import torch  # noqa: E402

sys.path.insert(0, ".")
from fairnad.evaluate.train import DeviceData, TrainConfig, make_optimizer, make_step  # noqa: E402

marks = {"import": time.time() - t0}
model_name, bench, graph = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
cl, amp = sys.argv[4] == "1", sys.argv[5] == "1"
torch.backends.cudnn.benchmark = bench
torch.zeros(1, device="cuda")
marks["cuda_init"] = time.time() - t0
import importlib.util  # noqa: E402

from fairnad.space.reference import reference  # noqa: E402

spec = importlib.util.spec_from_file_location("m", reference(model_name).path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
model = mod.build_model(num_classes=10, in_chans=3).cuda()
if cl:
    model = model.to(memory_format=torch.channels_last)
cfg = TrainConfig(batch_size=256, lr=0.1, optimizer="sgd", device="cuda", cuda_graph=graph)
opt = make_optimizer(model, cfg)
x = torch.randn(256, 3, 32, 32, device="cuda")
if cl:
    x = x.contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (256,), device="cuda")
marks["model"] = time.time() - t0
step, note = make_step(model, opt, cfg, amp, x, y)
torch.cuda.synchronize()
marks["make_step"] = time.time() - t0
for i in range(3):
    step(x, y)
    torch.cuda.synchronize()
    marks[f"step{i + 1}"] = time.time() - t0
t = time.time()
for _ in range(50):
    step(x, y)
torch.cuda.synchronize()
marks["img_s"] = round(50 * 256 / (time.time() - t))
print(model_name, "benchmark" if bench else "heuristic", "graph" if graph else "eager", "CL" if cl else "NCHW",
      "bf16" if amp else "fp32", {k: round(v, 2) for k, v in marks.items()}, note or "", flush=True)
