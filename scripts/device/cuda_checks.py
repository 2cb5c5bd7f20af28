"""CUDA checks run on a GPU machine (not in CI): the sandboxed CUDA evaluation path end to end.

    PYTHONPATH=. python scripts/device/cuda_checks.py OUT_DIR
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from datafiles import write_cifar10  # noqa: E402

from fairnad.evaluate.code import EvalRequest, run_request  # noqa: E402
from fairnad.evaluate.sandbox import _pids_cgroup_root, namespaces_available  # noqa: E402
from fairnad.space.reference import reference  # noqa: E402

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
data = Path(tempfile.mkdtemp()) / "cifar"
write_cifar10(data, n_train_per_batch=2000, n_test=2000)  # 10k train images, CIFAR's exact format
report = {"namespaces": namespaces_available(), "pids_cgroup": str(_pids_cgroup_root())}
for name, args in [("resnet20", {}), ("mobilenetv2", {"width": 0.5}), ("nb201", {}), ("convnext-small", {})]:
    t = time.time()
    r = run_request(EvalRequest(source=reference(name).source(), dataset="cifar10", data_dir=str(data), device="cuda",
                                epochs=3, model_args=args, memory_mb=32000))
    report[name] = {"status": r.status, "category": r.category, "error": r.error, "isolation": r.isolation,
                    "startup_s": r.startup_seconds, "wall_s": round(time.time() - t, 2), "stages": r.stages,
                    "cuda_graph": r.metrics.get("cuda_graph"), "graph_error": r.metrics.get("cuda_graph_error"),
                    **{k: r.metrics.get(k) for k in ("params", "flops", "val_acc", "train_seconds", "images_per_second",
                                                     "peak_memory_mb")}}
    print(name, report[name], flush=True)
hostile = "import torch\nx = torch.empty(int(4e11), device='cuda')\n"
r = run_request(EvalRequest(source=hostile, dataset="cifar10", data_dir=str(data), device="cuda", epochs=1))
report["cuda_oom_at_import"] = {"category": r.category, "error": (r.error or "")[:200]}
print("hostile", report["cuda_oom_at_import"])
(out / "cuda_checks.json").write_text(json.dumps(report, indent=1))
