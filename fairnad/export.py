"""Export a run's best models: `fairnad export RUN_DIR --top N -o DIR`.

Open (code) runs: each of the N most accurate candidates (by the validation accuracy the search
saw) becomes three files in DIR:

- `<name>.py`: a short docstring (where it came from, metrics, how to use it), the candidate's
  code verbatim, and a timm entry point `<name>(pretrained=False, **kwargs)` registered with
  `timm.models.register_model`, so `timm.create_model("<name>", pretrained=True)` works once the
  file is imported;
- `<name>.safetensors`: its trained weights, copied from the run's `weights/` folder when the run
  kept them (`open.keep_weights`); otherwise the export says so and writes no weights file;
- `<name>.json`: metrics, trial, parents, origin, run, dataset, input shape, classes, preprocessing,
  training recipe, fairnad version.

Tabular runs are benchmark lookups: nothing was trained and there is no code, so only the JSON is
written (metrics and the architecture as the benchmark describes it).

The candidate's code is untrusted (an LLM or a mutation wrote it): export copies it as text and
never runs it. Everything else written into the .py comes from fairnad and is built only from
checked identifiers and numbers, so neither a run name nor the code can change the wrapper.
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairnad import __version__
from fairnad.config import SearchConfig
from fairnad.errors import ConfigError, FairnadError, one_line
from fairnad.space.candidate import Candidate
from fairnad.problem import Objective
from fairnad.store import RunStore
from fairnad.store.summary import run_objective


class ExportError(FairnadError):
    """The run cannot be exported as asked (nothing completed, output folder not writable, ...)."""


@dataclass
class Exported:
    name: str
    trial: int
    accuracy: float | None
    test_accuracy: float | None
    files: dict[str, str | None] = field(default_factory=dict)  # code / weights / metrics -> path or None
    note: str | None = None  # why something is missing (no weights kept, ...)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- names ----------------------------------------------------------------------------------------
def identifier(text: str, fallback: str = "model") -> str:
    """`text` as a lower-case Python identifier of ASCII letters, digits and underscores."""
    name = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    name = re.sub(r"_+", "_", name) or fallback
    if name[0].isdigit():
        name = f"m_{name}"
    if keyword.iskeyword(name):
        name += "_"
    return name


def model_name(prefix: str, what: str, trial: int) -> str:
    """E.g. fairnad_mnist1d_t7: prefix, dataset or benchmark, trial; a valid identifier."""
    return identifier(f"{prefix}_{what}_t{trial}")


def _safe_text(text: str, limit: int = 120) -> str:
    """Free text (a run folder's name) reduced to characters that cannot leave a docstring or comment."""
    out = re.sub(r"[^A-Za-z0-9 ._+-]", "_", text)[:limit]
    return out.replace("..", "._")


# -- the run --------------------------------------------------------------------------------------
def _ranked(cands: list[Candidate], top: int, objective: Objective) -> list[Candidate]:
    """The `top` best completed candidates by the run's objective (its direction: a table whose metric is
    better lower exports its lowest), the earlier trial first on ties."""
    done = [c for c in cands if c.ok and isinstance(c.metrics.get(objective.name), (int, float))]
    return sorted(done, key=lambda c: (-objective.score(float(c.metrics[objective.name])), c.trial))[:top]


def _writable_dir(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".fairnad-export-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ExportError(f"cannot write to the output folder {out}: {err.strerror or err}") from None
    return out


def export_run(run_dir: str | Path, out: str | Path, top: int = 3, prefix: str = "fairnad") -> dict[str, Any]:
    """Export the `top` best candidates of the run at `run_dir` into `out`; returns what was written."""
    if top < 1:
        raise ConfigError(f"--top {top}: must be at least 1")
    run_dir, out = Path(run_dir), Path(out)
    with RunStore.open(run_dir, readonly=True) as store:  # readonly: works while the run is still going
        meta = store.meta()
        cands = store.candidates()
    try:
        cfg = SearchConfig.model_validate(meta["config"])
    except Exception as err:  # noqa: BLE001 - a run written by another version
        raise ExportError(f"{run_dir}: cannot read the run's config ({str(err).splitlines()[0]})") from None
    best = _ranked(cands, top, run_objective(meta))
    if not best:
        raise ExportError(f"{run_dir}: no completed candidates to export")
    _writable_dir(out)
    run = {"run": run_dir.resolve().name, "run_dir": str(run_dir.resolve()), "strategy": cfg.strategy,
           "seed": cfg.seed, "fairnad_version": __version__, "run_fairnad_version": meta.get("fairnad_version")}  # fmt: skip
    notes: list[str] = []
    if cfg.space == "open":
        pre = _preprocessing(cfg, notes)
        models = [_export_open(c, cfg, run, run_dir, out, prefix, pre) for c in best]
        missing = [m for m in models if m.files.get("weights") is None]
        if missing:
            notes.append(f"{len(missing)} of {len(models)} models have no trained weights in the run "
                         f"(open.keep_weights={cfg.open.keep_weights}); their .py builds an untrained model")  # fmt: skip
    else:
        models = _export_tabular(best, cfg, run, out, prefix, notes)
        notes += ["tabular run: the candidates are benchmark lookups, so there are no trained weights and no model "
                 "code; wrote each model's metrics and architecture (JSON) only"]  # fmt: skip
    return {"run_dir": str(run_dir), "out": str(out), "space": cfg.space,
            "benchmark": cfg.benchmark_name,
            "models": [m.to_dict() for m in models], "notes": notes}  # fmt: skip


# -- open runs ------------------------------------------------------------------------------------
def _preprocessing(cfg: SearchConfig, notes: list[str]) -> dict[str, Any]:
    """How the models' inputs were prepared; a dataset whose statistics cannot be read adds a note."""
    from fairnad.evaluate.datasets import cached_path, dataset_spec

    spec = dataset_spec(cfg.open.dataset)
    if not spec.pixels:
        return {"kind": "none", "text": "float32 inputs as the dataset gives them, no normalisation"}
    pre: dict[str, Any] = {"kind": "pixels", "text": "uint8 pixels / 255, then (x - mean) / std per channel, with the "
                           "training split's mean and std"}  # fmt: skip
    try:
        import numpy as np

        with np.load(cached_path(cfg.open.dataset, cfg.open.data_dir), allow_pickle=False) as z:
            pre["mean"] = [round(float(v), 6) for v in z["mean"]]
            pre["std"] = [round(float(v), 6) for v in z["std"]]
    except (FairnadError, OSError, KeyError, ValueError) as err:
        pre["text"] += " (not in this machine's dataset cache: see the dataset's training split)"
        notes.append(f"dataset {cfg.open.dataset}: its mean and std cannot be read from this machine's dataset cache "
                     f"({one_line(str(err), 160) or type(err).__name__}); the models' preprocessing is written "
                     "without them")  # fmt: skip
    return pre


def _weights_source(c: Candidate, run_dir: Path, keep: int) -> tuple[Path | None, str | None]:
    rel = c.metrics.get("weights")
    if isinstance(rel, str):
        path = (run_dir / rel).resolve()
        if path.parent == (run_dir / "weights").resolve() and path.is_file():
            return path, None
        return None, (f"weights of trial {c.trial} were kept but later pruned (open.keep_weights={keep} keeps "
                      "only the most accurate)")  # fmt: skip
    if c.metrics.get("weights_error"):
        return None, f"weights of trial {c.trial} were not kept: {c.metrics['weights_error']}"
    if c.metrics.get("weights_pruned"):
        return None, f"weights of trial {c.trial} were not among the {keep} most accurate kept (open.keep_weights)"
    if keep == 0:
        return None, f"the run kept no weights (open.keep_weights=0); trial {c.trial} has none"
    return None, f"no weights were kept for trial {c.trial} (the run predates weight keeping, or training did not save them)"


def _export_open(c: Candidate, cfg: SearchConfig, run: dict, run_dir: Path, out: Path, prefix: str,
                 preprocessing: dict[str, Any]) -> Exported:  # fmt: skip
    from fairnad.evaluate.code import EvalRequest
    from fairnad.evaluate.datasets import dataset_spec

    o = cfg.open
    spec = dataset_spec(o.dataset)
    name = model_name(prefix, cfg.benchmark_name, c.trial)  # a .npz dataset: its file name
    m = c.metrics
    src, missing = _weights_source(c, run_dir, o.keep_weights)
    weights_path = out / f"{name}.safetensors"
    if src is not None:
        try:
            _copy(src, weights_path)
        except FileNotFoundError:  # pruned by the run while we export
            src, missing = None, f"weights of trial {c.trial} were pruned by the run during the export"
    if src is None:
        weights_path.unlink(missing_ok=True)  # a file from an earlier export would not match this one
    recipe = EvalRequest(source="", dataset=o.dataset, epochs=o.epochs, train=dict(o.train)).recipe()
    info = {
        "name": name, **run, "trial": c.trial, "parents": c.parents, "origin": c.origin,
        "dataset": o.dataset, "input_shape": list(spec.input_shape), "num_classes": spec.num_classes,
        "in_chans": spec.in_chans, "preprocessing": preprocessing, "training": recipe,
        "accuracy": m.get("accuracy"), "test_accuracy": m.get("test_accuracy"), "params": m.get("params"),
        "flops": m.get("flops"), "metrics": {k: v for k, v in m.items() if k != "traceback"},
        "files": {"code": f"{name}.py", "weights": f"{name}.safetensors" if src else None, "metrics": f"{name}.json"},
        "weights_note": missing,
    }  # fmt: skip
    code_path = out / f"{name}.py"
    _write_text(code_path, render_module(name, c, info))
    json_path = out / f"{name}.json"
    _write_text(json_path, json.dumps(info, indent=1, default=str) + "\n")
    return Exported(name, c.trial, m.get("accuracy"), m.get("test_accuracy"),
                    {"code": str(code_path), "weights": str(weights_path) if src else None,
                     "metrics": str(json_path)}, missing)  # fmt: skip


def _num(v: Any, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else "n/a"


def _pct(v: Any) -> str:
    return _num(v, ".2f") + "%" if isinstance(v, (int, float)) and not isinstance(v, bool) else "n/a"


def _epochs(n: Any) -> str:
    n = int(n or 0)
    return f"{n} epoch{'s' if n != 1 else ''}"


def render_module(name: str, c: Candidate, info: dict[str, Any]) -> str:
    """The exported .py: header docstring (or comments), the code verbatim, the timm entry point."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"{name!r} is not a usable model name")
    code = c.genotype if c.genotype.endswith("\n") else c.genotype + "\n"
    shape = ", ".join(str(int(d)) for d in info["input_shape"])
    weights = info["files"]["weights"]
    lines = [
        f"{name}: a model found by fairnad {_safe_text(str(info['fairnad_version']), 20)} (trial {int(c.trial)} "
        f"of run {_safe_text(info['run'])}).",
        "",
        f"Dataset: {_safe_text(info['dataset'], 40)}, input (B, {shape}), {int(info['num_classes'])} classes; "
        f"preprocessing: {info['preprocessing']['kind']} (see {name}.json).",
        f"Validation accuracy {_pct(info['accuracy'])} (what the search saw), test accuracy "
        f"{_pct(info['test_accuracy'])}, after {_epochs(info['training'].get('epochs'))} of proxy training.",
        f"Params {_num(info['params'], ',')}, FLOPs {_num(info['flops'], ',')} (one input).",
        f"Weights: {weights} (next to this file)." if weights else
        "Weights: none (the run did not keep them): pretrained=True is refused, pretrained=False builds it untrained.",
        "",
        "Use (this folder on sys.path):",
        "",
        f"    import timm, {name}",
        f"    model = timm.create_model({name!r}, pretrained={bool(weights)}).eval()",
        "",
        "Between the two marker lines below is the candidate's code, verbatim, as the search generated it",
        "(an LLM or a mutation wrote it; fairnad did not review it and `fairnad export` did not run it).",
        "Importing this file runs that code: read it first. The entry point after it was written by fairnad.",
    ]  # fmt: skip
    for line in lines:  # every piece above is an identifier, a number or _safe_text: it cannot end the docstring
        assert '"""' not in line and "\\" not in line and "\n" not in line
    if _has_future_import(code):  # nothing but a docstring may precede `from __future__`: use comments
        header = "".join(f"# {line}".rstrip() + "\n" for line in lines) + "\n"
    else:
        header = '"""' + "\n".join(lines) + '\n"""\n\n'
    begin = f"# ---- generated code of trial {int(c.trial)}, verbatim " + "-" * 40 + "\n"
    end = "# ---- end of the generated code " + "-" * 58 + "\n"
    footer = _entry_point(name, info)
    compile(header + footer, f"{name}.py", "exec")  # fairnad's own parts are valid Python on their own
    return header + begin + code + end + footer


def _has_future_import(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in tree.body)


def _entry_point(name: str, info: dict[str, Any]) -> str:
    weights = info["files"]["weights"]
    nc, ic = int(info["num_classes"]), int(info["in_chans"])
    return f'''
# Written by `fairnad export`: the timm entry point. Everything here uses private names, so the
# generated code above cannot be shadowed by it (nor it by the generated code).
import os as _fairnad_os

from timm.models import register_model as _fairnad_register_model

_FAIRNAD_BUILD = build_model  # the generated code's builder, captured before anything can rebind it
_FAIRNAD_WEIGHTS = {weights!r}  # next to this file; None: the run kept no weights
_FAIRNAD_NUM_CLASSES = {nc}
_FAIRNAD_IN_CHANS = {ic}
# what timm.create_model passes to every entry point, which a plain model does not take
_FAIRNAD_TIMM_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "pretrained_model_args")


@_fairnad_register_model
def {name}(pretrained=False, **kwargs):
    """The exported model; pretrained=True loads the trained weights (num_classes={nc}, in_chans={ic})."""
    for key in _FAIRNAD_TIMM_KWARGS:
        kwargs.pop(key, None)
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    kwargs.setdefault("num_classes", _FAIRNAD_NUM_CLASSES)
    kwargs.setdefault("in_chans", _FAIRNAD_IN_CHANS)
    if pretrained:
        if _FAIRNAD_WEIGHTS is None:
            raise RuntimeError("{name}: the run kept no trained weights for this model; use pretrained=False")
        if (kwargs["num_classes"], kwargs["in_chans"]) != (_FAIRNAD_NUM_CLASSES, _FAIRNAD_IN_CHANS):
            raise ValueError("{name}: the weights are for num_classes={nc}, in_chans={ic}; "
                             f"got num_classes={{kwargs['num_classes']}}, in_chans={{kwargs['in_chans']}}")
    model = _FAIRNAD_BUILD(**kwargs)
    if pretrained:
        from safetensors.torch import load_file

        here = _fairnad_os.path.dirname(_fairnad_os.path.abspath(__file__))
        model.load_state_dict(load_file(_fairnad_os.path.join(here, _FAIRNAD_WEIGHTS)), strict=True)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model
'''


# -- tabular runs ---------------------------------------------------------------------------------
def _export_tabular(best: list[Candidate], cfg: SearchConfig, run: dict, out: Path, prefix: str,
                    notes: list[str]) -> list[Exported]:  # fmt: skip
    from fairnad.evaluate.tabular import load_table

    try:
        bench = load_table(cfg.benchmark, cfg.benchmark_file, cfg.space_file)
    except FairnadError as err:  # the table is gone (a user's file moved): the run's own records still export
        bench = None
        notes.append(f"{cfg.benchmark_file or cfg.benchmark}: the run's table cannot be loaded ({one_line(str(err), 160)}); "
                     "the models are written without their description, option labels and dataset")  # fmt: skip
    models = []
    for c in best:
        name = model_name(prefix, cfg.benchmark_name, c.trial)
        m = c.metrics
        arch: dict[str, Any] = {"genotype": c.genotype, "arch": m.get("arch")}
        note = None
        if bench is not None:
            try:
                arch["description"] = bench.space.describe(c.genotype)
                arch["labels"] = [str(x) for x in bench.space.labels(c.genotype)]
                arch["skeleton"] = bench.space.description.architecture or None
            except ValueError as err:  # the table changed since the run (a user's file rewritten)
                note = (f"trial {c.trial}: its genotype is not in the space of {bench.name} now ({one_line(str(err), 160)}); "
                        "written without its description and option labels")  # fmt: skip
        info = {
            "name": name, **run, "trial": c.trial, "parents": c.parents, "origin": c.origin,
            "benchmark": cfg.benchmark_name, "dataset": bench.spec.dataset if bench is not None else None,
            "architecture": arch, "accuracy": m.get("accuracy"), "test_accuracy": m.get("test_accuracy"),
            "rank": m.get("rank"), "params": m.get("params"), "flops": m.get("flops"), "metrics": m,
            "files": {"code": None, "weights": None, "metrics": f"{name}.json"},
            "weights_note": "tabular benchmark lookup: no trained weights or code exist",
        }  # fmt: skip
        path = out / f"{name}.json"
        _write_text(path, json.dumps(info, indent=1, default=str) + "\n")
        models.append(Exported(name, c.trial, m.get("accuracy"), m.get("test_accuracy"),
                               {"code": None, "weights": None, "metrics": str(path)}, note))  # fmt: skip
    return models


# -- files ----------------------------------------------------------------------------------------
def _write_text(path: Path, text: str) -> None:
    try:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        raise ExportError(f"cannot write {path}: {err.strerror or err}") from None


def _copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except FileNotFoundError:
        if src.exists():  # then it is the destination that is missing
            raise ExportError(f"cannot write {dst}: its folder disappeared") from None
        raise
    except OSError as err:
        raise ExportError(f"cannot copy {src} to {dst}: {err.strerror or err}") from None
