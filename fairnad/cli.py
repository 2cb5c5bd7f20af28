"""The `fairnad` command line: parses arguments, calls the lifecycle (the one wiring place) and
renders what it returns (render.py). Nothing here opens a store, a table or an LLM.

Every command that produces results takes --json and then prints exactly one JSON object on
stdout; progress and messages go to stderr.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from fairnad import __version__, render
from fairnad.config import load_config, parse_assignments, parse_llm_flag
from fairnad.errors import ConfigError, FairnadError
from fairnad.llm import LLMBadRequest, LLMError
from fairnad.render import err_console

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
def _run(handle, label: str, as_json: bool) -> None:
    """Execute a created or reopened run with a progress line, then print its summary."""
    from fairnad import lifecycle

    with render.run_progress(label, handle.cfg.budget, handle.done) as on_result:
        summary = lifecycle.run_to_budget(handle, on_result)
    if as_json:
        summary.pop("trajectory", None)
        _emit_json(summary)
    else:
        render.run_summary(summary)


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
    from fairnad import lifecycle

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
    handle = lifecycle.create_run(cfg, run_dir)
    err_console.print(f"run folder: {handle.run_dir}")
    _run(handle, f"{cfg.strategy} · {cfg.benchmark_name}", as_json)


@app.command()
@handles_errors
def resume(
    run_dir: Path = typer.Argument(..., help="The run folder to continue."),
    budget: Optional[int] = typer.Option(None, "--budget", "-n", help="A new total budget (to extend a run)."),
    llm: Optional[str] = typer.Option(None, help="Another endpoint for the calls still to make."),
    as_json: bool = JSON_OPT,
) -> None:
    """Continue a stopped, paused or killed run to its budget; nothing done is redone."""
    from fairnad import lifecycle

    handle = lifecycle.open_run(run_dir, budget, below_done=False, llm=llm)
    _run(handle, f"{handle.cfg.strategy} · {handle.cfg.benchmark_name} (resumed)", as_json)


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
    from fairnad.bench import run_bench

    overrides: dict[str, Any] = {"llm.model": model}
    if llm is not None:
        overrides.update({f"llm.{k}": v for k, v in parse_llm_flag(llm).items()})
    base = load_config(config, overrides, set_)
    if (benchmark_file or space_file) and not (benchmark_file and space_file):
        raise ConfigError("--benchmark-file and --space-file go together: a table needs its space description")
    chosen = benchmarks_ if benchmarks_ is not None else ("" if benchmark_file else "all")
    names = None if chosen == "all" else [b.strip() for b in chosen.split(",") if b.strip()]
    if relabel is not None and relabel < 0:
        raise ConfigError(f"--relabel {relabel}: a seed of 0 or more")
    if max_params is not None and max_params < 1:
        raise ConfigError(f"--max-params {max_params}: must be at least 1")
    strats = [s.strip() for s in strategies.split(",") if s.strip()]
    if not strats:
        raise ConfigError("--strategies: none given; name one or more, e.g. random,regevo,fairnad (`fairnad strategies`)")
    if workers < 1 or llm_servers < 1:
        raise ConfigError(f"--workers {workers} / --llm-servers {llm_servers}: each must be at least 1")
    try:
        ks = sorted({int(k) for k in budgets.split(",") if k.strip()})
    except ValueError:
        raise ConfigError(f"--budgets {budgets!r}: expected comma-separated integers like 10,50,100") from None
    if not ks or ks[0] < 1 or seeds < 1:
        raise ConfigError("--budgets and --seeds must be positive")
    if first_seed < 0:
        raise ConfigError(f"--first-seed {first_seed}: a seed of 0 or more")
    with render.bench_progress() as bar:
        res = run_bench(base, names, strats, list(range(first_seed, first_seed + seeds)), ks, out,
                        own_table=(benchmark_file, space_file) if benchmark_file else None, relabel=relabel,
                        ablate=ablate, max_params=max_params, workers=workers, llm_servers=llm_servers,
                        on_start=bar.start, on_progress=bar.advance)  # fmt: skip
    _emit_json(res) if as_json else render.bench(res)
    if res["failures"]:
        raise typer.Exit(1)


# -- evaluate / models ---------------------------------------------------------------------------
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
    from fairnad import lifecycle

    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"--device {device!r}: use cpu or cuda")
    for flag, n in (("--epochs", epochs), ("--final-epochs", final_epochs), ("--workers", workers)):
        if n is not None and n < 1:
            raise ConfigError(f"{flag} {n}: must be at least 1")
    request = dict(dataset=dataset, epochs=epochs, data_dir=str(data_dir) if data_dir else None, device=device,
                   seed=seed, max_params=max_params, train=dict(parse_assignments(train_opt, "--train", "NAME=VALUE")),
                   model_args=dict(parse_assignments(model_arg, "--model-arg", "NAME=VALUE")), timeout=timeout,
                   memory_mb=memory_mb, threads=threads)  # fmt: skip
    pool = dict(executor=executor, workers=workers, gpus=_gpu_ids(gpus) if gpus else None,
                address=address, isolation=isolation)  # fmt: skip
    if rungs:
        try:
            ks = [int(k) for k in rungs.split(",")]
            if min(ks) < 1:
                raise ValueError(ks)
        except ValueError:
            raise ConfigError(f"--rungs {rungs!r}: expected comma-separated epochs like 1,3,9") from None
        out = lifecycle.evaluate_models(models, request, pool, rungs=ks, eta=eta, top_k=top_k, final_epochs=final_epochs,
                                        on_rung=lambda r, alive: err_console.print(
                                            f"rung {r + 1}/{len(ks)}: {len(alive)} models x {ks[r]} epochs"))  # fmt: skip
        _emit_json(out) if as_json else render.halving(out)
        return
    with err_console.status(f"evaluating {len(models)} model(s) on {dataset}"):
        rows = lifecycle.evaluate_models(models, request, pool)["results"]
    if as_json:
        _emit_json(rows[0] if len(rows) == 1 else {"results": rows})
    else:
        render.evaluations(rows)
    if any(r["status"] != "complete" for r in rows):
        raise typer.Exit(1)


@app.command("models")
@handles_errors
def models_cmd(as_json: bool = JSON_OPT) -> None:
    """List the reference models (use them as ref:NAME with evaluate, or as search starting points)."""
    from fairnad import lifecycle

    rows = lifecycle.reference_models()
    _emit_json({"models": rows}) if as_json else render.reference_models(rows)


@app.command("llms")
@handles_errors
def llms_cmd(
    assemble: bool = typer.Option(False, "--assemble", help="Assemble every installed chunked model into the cache now."),
    as_json: bool = JSON_OPT,
) -> None:
    """List the embedded models (use them as --llm embedded:NAME): installed or not, size, licence, speed."""
    from fairnad import lifecycle

    res = lifecycle.llm_models(assemble, on_assemble=lambda name, cache: err_console.print(
        f"assembling {name} into {cache} ..."))  # fmt: skip
    _emit_json(res) if as_json else render.llm_models(res)


# -- knowledge ---------------------------------------------------------------------------------
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
    candidates: int = typer.Option(40, help="Candidate ideas per paper (its design terms, run-in heads, headings, "
                                   "'we propose' sentences) the model names and files, at most."),
    max_pages: int = typer.Option(200, help="Pages read per paper, at most."),
    confirm_duplicates: Optional[bool] = typer.Option(None, "--confirm-duplicates/--no-confirm-duplicates",
                                                      help="Ask the LLM about near-duplicates (default: with your own server)."),
    find_by_name: int = typer.Option(2, help="Look every idea up by name in the other papers: one that states it in this "
                                     "many sentences (or one saying how its network uses it) gets a source; 0: off."),
    template_examples: bool = typer.Option(True, "--template-examples/--no-template-examples",
                                           help="Look the template's examples up by name too: one that a paper states "
                                           "becomes an idea of that paper."),
    as_json: bool = JSON_OPT,
) -> None:
    """Read a folder of papers with the LLM and build the attribute tree of design ideas."""
    from fairnad import lifecycle

    options = dict(candidates=candidates, max_pages=max_pages, confirm_duplicates=confirm_duplicates,
                   find_by_name=find_by_name, template_examples=template_examples)  # fmt: skip
    pdfs, template = lifecycle.knowledge_inputs(papers, template_path, options)
    llm_cfg = lifecycle.llm_config(llm, model, api_key_env)
    with render.paper_progress(len(pdfs)) as note:
        s = lifecycle.build_knowledge(pdfs, template, out, build_dir, llm_cfg, options, note=note)
    _emit_json(s) if as_json else render.knowledge_summary(s)


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
    from fairnad import lifecycle

    llm_cfg = lifecycle.llm_config(llm, model, api_key_env)
    with render.paper_progress(1) as note:
        s = lifecycle.add_paper(paper, tree_path, build_dir, llm_cfg, note=note)
    _emit_json(s) if as_json else render.knowledge_summary(s)


@knowledge_app.command("show")
@handles_errors
def knowledge_show(
    tree_path: Path = typer.Argument(..., help="A tree file, or a shipped tree: papers13, template."),
    depth: int = typer.Option(4, help="1 levels, 2 categories, 3 sub-categories, 4 attributes."),
    as_json: bool = JSON_OPT,
) -> None:
    """The tree in the terminal, with counts."""
    from fairnad import lifecycle

    payload = lifecycle.tree_view(tree_path)
    _emit_json(payload) if as_json else render.tree(payload, depth)


@knowledge_app.command("search")
@handles_errors
def knowledge_search(
    tree_path: Path = typer.Argument(..., help="A tree file, or a shipped tree: papers13, template."),
    query: str = typer.Argument(..., help="Text to look for in names, descriptions and quotes."),
    limit: int = typer.Option(50, help="Ideas shown at most, best matches first."),
    as_json: bool = JSON_OPT,
) -> None:
    """Find design ideas in a tree."""
    from fairnad import lifecycle

    if not query.strip():
        raise ConfigError("knowledge search: give a word to look for (`knowledge show` lists every idea)")
    if limit < 1:
        raise ConfigError(f"--limit {limit}: give a whole number of 1 or more")
    res = lifecycle.search_tree(tree_path, query, limit)
    _emit_json(res) if as_json else render.tree_hits(res)


@knowledge_app.command("stats")
@handles_errors
def knowledge_stats(
    tree_path: Path = typer.Argument(..., help="A tree file, or a shipped tree: papers13, template."),
    ideas: int = typer.Option(6, help="Ideas plotted per category (FairNAD's Figure 2); 0 for none."),
    as_json: bool = JSON_OPT,
) -> None:
    """Frequency per category and per idea, beside the fair (uniform per category) sampling FairNAD uses."""
    from fairnad import lifecycle

    st = lifecycle.tree_stats(tree_path)
    _emit_json(st) if as_json else render.tree_stats(st, ideas)


@knowledge_app.command("check")
@handles_errors
def knowledge_check(
    tree_path: Path = typer.Argument(..., help="A tree file, or a shipped tree: papers13, template."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="The checked tree (default: in place)."),
    dataset: str = typer.Option("mnist1d", help="Whose first reference model the ideas are applied to."),
    llm: Optional[str] = typer.Option(None, help="embedded | http(s)://HOST:PORT/v1"), model: Optional[str] = None,
    as_json: bool = JSON_OPT,
) -> None:
    """Which ideas the search can apply (the model applies each once to a reference model); others are not sampled."""
    from fairnad import lifecycle

    s = lifecycle.check_knowledge(tree_path, out or tree_path, lifecycle.llm_config(llm, model), dataset, note=render.idea_progress)
    _emit_json(s) if as_json else render.knowledge_check(s)


@knowledge_app.command("browse")
@handles_errors
def knowledge_browse(
    tree_path: Path = typer.Argument(..., help="A tree file, or a shipped tree: papers13, template."),
    out: Path = typer.Option(Path("tree.html"), "-o", "--out", help="HTML file to write."),
    as_json: bool = JSON_OPT,
) -> None:
    """Write one self-contained HTML page to browse the tree (search, filters, quotes and pages)."""
    from fairnad import lifecycle

    path = lifecycle.write_tree_page(tree_path, out)
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
    from fairnad import lifecycle

    rows = lifecycle.list_runs(root)
    _emit_json({"root": str(root), "runs": rows}) if as_json else render.runs(root, rows)


@runs_app.command("show")
@handles_errors
def runs_show(
    run_dir: Path = typer.Argument(..., help="A run folder."),
    candidates: bool = typer.Option(False, "--candidates", help="Also list every candidate."),
    as_json: bool = JSON_OPT,
) -> None:
    """Summarise one run: best candidate, budget used, LLM usage, events."""
    from fairnad import lifecycle

    s = lifecycle.show_run(run_dir, candidates)
    if as_json:
        _emit_json(s)
        return
    render.run_summary(s)
    if candidates:
        render.candidates(s["candidates"])


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
    from fairnad import lifecycle

    res = lifecycle.write_report(run_dirs, compare, out)
    if as_json:
        _emit_json(res)
    else:
        err_console.print(f"wrote {res['html']}")


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
    from fairnad import lifecycle

    res = lifecycle.export_run(run_dir, out, top=top, prefix=prefix)
    render.export_notes(res)
    _emit_json(res) if as_json else render.exported(res)


# -- benchmarks --------------------------------------------------------------------------------
@benchmarks_app.callback()
@handles_errors
def benchmarks(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """List the built-in tabular benchmarks with their size and optimum."""
    if ctx.invoked_subcommand is not None:
        return
    from fairnad import lifecycle

    rows = lifecycle.benchmark_rows()
    _emit_json({"benchmarks": rows}) if as_json else render.benchmarks(rows)


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
    from fairnad import lifecycle

    info = lifecycle.relabel_benchmark(name, seed, out, space_file)
    _emit_json(info) if as_json else render.relabelled(info)


# -- strategies --------------------------------------------------------------------------------
@app.command("strategies")
@handles_errors
def strategies_cmd(as_json: bool = JSON_OPT) -> None:
    """List the search strategies, built-in and installed as plug-ins (entry points in the group
    fairnad.strategies; docs/strategies.md): where each comes from, whether it asks an LLM, the spaces
    it searches, its settings (--set strategies.NAME.FIELD=VALUE); broken plug-ins with the reason."""
    from fairnad import lifecycle

    rows = lifecycle.strategy_rows()
    _emit_json({"strategies": rows}) if as_json else render.strategies(rows)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
