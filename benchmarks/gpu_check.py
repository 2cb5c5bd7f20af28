"""The one check a person with a GPU runs: do fairnad's CUDA paths work here, and how fast are they?

    python benchmarks/gpu_check.py [--json] [--gpu 0] [--epochs 12]

It runs the `gpu` tests (tests/test_gpu.py: the sandbox in its default isolation on CUDA), then measures
on data it makes itself (CIFAR-10's own pickle layout, 50,000 images whose classes can be learnt):
  1. the four CIFAR reference models, one evaluation each in the default isolation: wall, start-up to
     the first training step, training, what comes after training, img/s, CUDA graph or not;
  2. evaluations per minute with 1, 2, 4 and 8 workers sharing the one GPU (`--gpus 0,0,...`);
  3. fairnad's trainer against a plain PyTorch loop (benchmarks/train_throughput.py);
  4. an open FairNAD search on CUDA end to end, `--llm none`, 20 evaluations with 4 workers.
It needs only fairnad's own dependencies (pytest for step 0) and finishes in about 5 minutes on one
H100/H200. `--device cpu --quick` runs the same steps on the CPU with tiny sizes: that is how the
script itself is tested where there is no GPU (the figures then mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's writer of CIFAR's file layout

MODELS = ("resnet20", "nb201", "mobilenetv2", "convnext-small")


def log(msg: str) -> None:
    print(f"gpu_check: {msg}", file=sys.stderr, flush=True)


def facts(device: str) -> dict:
    """The machine: GPU, driver, torch, and what the sandbox can use here."""
    from fairnad.evaluate.sandbox import _pids_cgroup_root, namespaces_available

    probe = ("import json, torch; c = torch.cuda.is_available(); print(json.dumps({'torch': torch.__version__, "
             "'cuda_build': torch.version.cuda, 'gpus': torch.cuda.device_count() if c else 0, "
             "'gpu': torch.cuda.get_device_name(0) if c else None}))")  # fmt: skip
    out = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True)  # fmt: skip
        out["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 and smi.stdout.strip() else None
    out.update(device=device, cpus=os.cpu_count(), namespaces=namespaces_available(),
               pids_cgroup=str(_pids_cgroup_root() or ""))  # fmt: skip
    return out


def gpu_tests() -> dict:
    """tests/test_gpu.py with pytest (without the suite's xdist options, which a GPU image may lack)."""
    if not (ROOT / "tests" / "test_gpu.py").is_file():
        return {"ran": False, "why": "tests/test_gpu.py is not here (a checkout of fairnad has it)"}
    t = time.time()
    r = subprocess.run([sys.executable, "-m", "pytest", "tests/test_gpu.py", "-m", "gpu", "-q", "-rfEs",
                        "-o", "addopts=", "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr.strip()[-300:]
    failed = [ln.split(" ")[1] for ln in r.stdout.splitlines() if ln.startswith(("FAILED ", "ERROR "))]
    return {"ran": True, "returncode": r.returncode, "summary": tail, "failed": failed, "seconds": round(time.time() - t, 1),
            **({"output_tail": r.stdout[-4000:] + r.stderr[-2000:]} if r.returncode not in (0, 5) else {})}


def make_data(root: Path, quick: bool) -> Path:
    from datafiles import write_cifar10

    n = 200 if quick else 10_000  # per training batch file: 5 files (50,000 images, as CIFAR-10)
    write_cifar10(root, n_train_per_batch=n, n_test=n, learnable=True)
    return root


def _request(data: Path, device: str, name: str, epochs: int, seed: int = 0):
    from fairnad.evaluate.code import EvalRequest
    from fairnad.space.reference import reference

    return EvalRequest(source=reference(name).source(), dataset="cifar10", data_dir=str(data), device=device,
                       epochs=epochs, seed=seed, memory_mb=32000)  # fmt: skip


def _row(name: str, r) -> dict:
    m, st = r.metrics, r.stages
    train_s = m.get("train_seconds")
    return {
        "model": name, "status": r.status, "error": (r.error or "")[:300] or None, "isolation": r.isolation,
        "wall_s": r.seconds, "startup_s": r.startup_seconds, "train_s": train_s,
        "wall_minus_train_s": round(r.seconds - train_s, 2) if train_s is not None else None,
        "after_training_s": round(r.seconds - st["trained"], 2) if "trained" in st else None,
        "flops_s": round(st["flops"] - st["trained"], 2) if {"flops", "trained"} <= set(st) else None,
        "torch_import_s": st.get("import"), "img_s": m.get("images_per_second"), "cuda_graph": m.get("cuda_graph"),
        "val_acc": m.get("val_acc"), "params": m.get("params"),
    }  # fmt: skip


def reference_models(data: Path, device: str, epochs: int, models) -> list[dict]:
    from fairnad.evaluate.code import run_request

    run_request(_request(data, device, "resnet20", 1))  # the dataset cache and the page cache warm
    rows = []
    for name in models:
        r = run_request(_request(data, device, name, epochs))
        rows.append(_row(name, r))
        log(f"{name}: {rows[-1]}")
    return rows


def worker_scaling(data: Path, device: str, epochs: int, counts, gpu: int, quick: bool) -> list[dict]:
    """Evaluations per minute with n workers on one GPU (the local pool's slots all naming it)."""
    from fairnad.evaluate.executors import LocalPool

    rows = []
    for n in counts:
        jobs = 2 * n if quick else max(8, 2 * n)
        pool = LocalPool(workers=n, gpus=[gpu] * n if device.startswith("cuda") else None)
        t = time.time()
        results = pool.map([_request(data, device, "resnet20", epochs, seed=s) for s in range(jobs)])
        wall = time.time() - t
        pool.close()
        ok = sum(r.status == "complete" for r in results)
        rows.append({"workers": n, "evaluations": jobs, "complete": ok, "wall_s": round(wall, 1),
                     "per_minute": round(60 * ok / wall, 1),
                     "mean_train_s": round(sum(r.metrics.get("train_seconds") or 0 for r in results) / jobs, 2)})  # fmt: skip
        log(f"{n} workers: {rows[-1]}")
    base = rows[0]["per_minute"] or 1e-9
    for row in rows:
        row["speedup"] = round(row["per_minute"] / base, 2)
    return rows


def trainer_throughput(device: str, quick: bool) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), "--device", device, "--json",
           "--steps", "20" if quick else "200", "--warmup", "3" if quick else "30",
           "--batch-size", "32" if quick else "256"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-500:]}
    return json.loads(r.stdout)


def open_search(data: Path, device: str, budget: int, workers: int, epochs: int, gpu: int) -> dict:
    """`fairnad search --space open ... --llm none` from the shell, as a user runs it."""
    with tempfile.TemporaryDirectory(prefix="fairnad-gpu-check-") as cwd:
        cmd = [sys.executable, "-m", "fairnad", "search", "--space", "open", "--dataset", "cifar10", "--data-dir",
               str(data), "--device", device, "--strategy", "fairnad", "--llm", "none", "--budget", str(budget),
               "--epochs", str(epochs), "--seed", "0", "--json"]  # fmt: skip
        cmd += ["--gpus", ",".join([str(gpu)] * workers)] if device.startswith("cuda") else ["--workers", str(workers)]
        t = time.time()
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        wall = time.time() - t
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["(no output)"])[-1][:500], "wall_s": round(wall, 1)}
    out = json.loads(r.stdout)
    best = out.get("best") or {}
    return {"evaluations": out.get("evaluations"), "wall_s": round(wall, 1),
            "per_minute": round(60 * (out.get("evaluations") or 0) / wall, 1),
            "best_accuracy": best.get("accuracy"), "best_params": best.get("params")}  # fmt: skip


def render(res: dict) -> str:
    f = res["facts"]
    lines = [f"{f.get('gpu') or f['device']} (driver {f.get('driver')}), torch {f['torch']} (CUDA {f['cuda_build']}), "
             f"{f['cpus']} cores; namespaces {'yes' if f['namespaces'] else 'no'}, pids cgroup "
             f"{f['pids_cgroup'] or 'no'}", ""]  # fmt: skip
    t = res["tests"]
    lines += [f"gpu tests: {t.get('summary') if t.get('ran') else 'not run: ' + t.get('why', '')}"
              + (f"; FAILED {', '.join(t['failed'])}" if t.get("failed") else ""), ""]  # fmt: skip
    lines += [f"| model ({res['epochs']} epochs) | wall | start-up to first step | training | wall - training | after "
              "training (FLOPs count) | img/s | CUDA graph | val acc |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["models"]:
        if r["status"] != "complete":
            lines.append(f"| {r['model']} | failed: {r['error']} | | | | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['wall_s']:.1f} s | {r['startup_s']:.1f} s (torch {r['torch_import_s']:.1f} s) "
                     f"| {r['train_s']:.1f} s | {r['wall_minus_train_s']:.1f} s | {r['after_training_s']} s "
                     f"({r['flops_s']} s) | {r['img_s']:,.0f} | {r['cuda_graph']} | {r['val_acc']:.1f}% |")  # fmt: skip
    lines += ["", "| workers on one GPU | evaluations | wall | per minute | vs 1 worker | mean training |",
              "|---|---|---|---|---|---|"]
    for r in res["workers"]:
        lines.append(f"| {r['workers']} | {r['complete']}/{r['evaluations']} | {r['wall_s']} s | {r['per_minute']} | "
                     f"{r['speedup']}x | {r['mean_train_s']} s |")  # fmt: skip
    tp = res["throughput"]
    lines += [""]
    if "error" in tp:
        lines.append(f"trainer vs plain loop: failed: {tp['error']}")
    else:
        lines.append(f"trainer vs plain loop (ResNet-20, batch {tp['batch_size']}): plain {tp['reference_img_s']:,} img/s, "
                     f"fairnad {tp['fairnad_img_s']:,} ({tp['ratio']}x), with augmentation "
                     f"{tp['fairnad_augmented_img_s']:,} ({tp['ratio_augmented']}x), no CUDA graph "
                     f"{tp['fairnad_eager_img_s']:,} ({tp['ratio_eager']}x)")  # fmt: skip
    s = res["search"]
    lines.append(f"open search, FairNAD --llm none, {res['search_workers']} workers: "
                 + (f"failed: {s['error']}" if "error" in s else
                    f"{s['evaluations']} evaluations in {s['wall_s']} s ({s['per_minute']}/min), best "
                    f"{s['best_accuracy']}% at {s['best_params']:,} params"))  # fmt: skip
    lines.append(f"total {res['seconds']:.0f} s")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--device", default="cuda", help="cuda (default), or cpu with --quick to test this script")
    ap.add_argument("--gpu", type=int, default=0, help="the GPU the workers share")
    ap.add_argument("--epochs", type=int, default=12, help="epochs of each reference model (CIFAR's recipe: 12)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (to test the script, not to measure)")
    ap.add_argument("--skip-tests", action="store_true", help="measure only")
    a = ap.parse_args()
    t0 = time.time()
    res: dict = {"facts": facts(a.device)}
    if a.device.startswith("cuda") and not res["facts"]["gpus"]:
        print(f"gpu_check: torch {res['facts']['torch']} sees no CUDA device here; nothing to check "
              "(`--device cpu --quick` tests this script)", file=sys.stderr)  # fmt: skip
        return 2
    device = f"cuda:{a.gpu}" if a.device == "cuda" else a.device
    quick = a.quick
    res["tests"] = {"ran": False, "why": "--skip-tests"} if a.skip_tests else gpu_tests()
    log(f"tests: {res['tests'].get('summary') or res['tests'].get('why')}")
    with tempfile.TemporaryDirectory(prefix="fairnad-gpu-data-") as tmp:
        os.environ.setdefault("FAIRNAD_CACHE", str(Path(tmp) / "cache"))  # the dataset cache: made here, dropped after
        data = make_data(Path(tmp) / "cifar", quick)
        res["epochs"] = 1 if quick else a.epochs
        res["models"] = reference_models(data, device, res["epochs"], MODELS[:1] if quick else MODELS)
        res["workers"] = worker_scaling(data, device, 1 if quick else 2, (1, 2) if quick else (1, 2, 4, 8), a.gpu, quick)
        res["throughput"] = trainer_throughput(a.device, quick)
        res["search_workers"] = 2 if quick else 4
        res["search"] = open_search(data, a.device, 4 if quick else 20, res["search_workers"], 1 if quick else 2, a.gpu)
    res["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(res, indent=1) if a.json else render(res))
    bad = (res["tests"].get("ran") and res["tests"]["returncode"] not in (0, 5)) or "error" in res["search"] \
        or any(r["status"] != "complete" for r in res["models"])  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
