"""The one wiring place: searches and knowledge builds are created, opened, resumed, executed and
summarised here, with one way to set up the LLM for both; the commands that browse (trees, runs,
reports, exports, tables, strategies, models) reach their stage here too. cli.py parses arguments
and renders what these functions return (render.py); the stages (ingest, knowledge, search,
evaluate, store) know nothing of each other beyond their inputs.

    cli.py -> lifecycle -> knowledge/ (build), search/ (Study + strategy) <-> evaluate/, llm/ -> store/
"""

from __future__ import annotations

import dataclasses
import hashlib
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fairnad.config import LLMConfig, SearchConfig, parse_llm_flag
from fairnad.errors import ConfigError, FairnadError, RunPaused
from fairnad.evaluate.benchmark import TabularBenchmark
from fairnad.evaluate.tabular import (TabularEvaluator, list_benchmarks, load_benchmark, load_table,
                                      load_user_benchmark)  # fmt: skip
from fairnad.export import export_run  # noqa: F401 - `fairnad export` reaches it here, as every command its stage
from fairnad.llm import (LLMBudgetExceeded, LLMError, LLMUnavailable, RecordingLLM, ReplayBackend, ReplayExhausted,
                         ReplayMismatch)
from fairnad.llm.provider import BackendProvider
from fairnad.llm.recorder import replayable
from fairnad.problem import ACCURACY, FLOPS, PARAMS, Objective, Problem
from fairnad.search.base import create_strategy
from fairnad.search.study import ResumeMismatch, Study, recorded_by
from fairnad.space.candidate import Candidate
from fairnad.space.code import own_frames
from fairnad.store import BuildStore, RunStore, StoreError, is_run_dir
from fairnad.store.summary import list_runs, summarize  # noqa: F401 - list_runs: `fairnad runs`
from fairnad.versions import versions


SHIPPED_TREES = {"papers13": "papers13.json", "template": "template.json"}  # --knowledge NAME


def shipped_tree(name: str) -> Path | None:
    """A tree that ships with fairnad (knowledge/ in a checkout, fairnad/_knowledge in a wheel)."""
    here = Path(__file__).resolve().parent
    for root in (here / "_knowledge", here.parent / "knowledge"):
        if (root / SHIPPED_TREES[name]).is_file():
            return root / SHIPPED_TREES[name]
    return None


def load_tree(source: str | Path | None = None):
    """An attribute tree: a tree file, or a shipped tree's name (papers13: built from 13 papers;
    template: the template's own examples, the default). A file that exists wins over a name, for
    every command alike (`search --knowledge`, `knowledge show/search/stats/browse`)."""
    from fairnad.knowledge.template import load_template
    from fairnad.knowledge.tree import AttributeTree
    from fairnad.prompts import templates_dir

    source = str(source or "template")
    if Path(source).exists() or source not in SHIPPED_TREES:
        return AttributeTree.load(source)
    path = shipped_tree(source)
    if path is not None:
        return AttributeTree.load(path)
    if source == "template":  # a checkout without the built file: the template itself
        return AttributeTree.from_template(load_template(templates_dir() / "fairnad.yaml"))
    raise ConfigError(f"the shipped tree {source} is missing from this installation: build it with `make tree`, "
                      "or give a tree file")


# the idea source of an open search that names none: the template's examples. On the tree shipped now
# (8304e28) FairNAD with the 1.5B ended below them in issue 35's 3-seed search on open MNIST-1D
# (97.80 +- 0.53 best validation accuracy against 98.07 +- 0.23; docs/performance.md), and issue 35's rule
# keeps the template then. papers13 was the default on the trees of c18177d-ee46900, e565482, 86f5a05 and
# 8d5bbe0, which were not below it, and the template on those of a0c4e88, f026346 and c8920ca. Runs that
# stored no source were made with the template (KNOWLEDGE_BEFORE); a run keeps the source it stored.
DEFAULT_KNOWLEDGE, KNOWLEDGE_BEFORE = "template", "template"


def default_knowledge() -> str:
    """The shipped tree a search uses when it names none (DEFAULT_KNOWLEDGE), or the template where an
    installation lacks the built file."""
    return DEFAULT_KNOWLEDGE if shipped_tree(DEFAULT_KNOWLEDGE) is not None else KNOWLEDGE_BEFORE


def load_knowledge(cfg: SearchConfig):
    """The attribute tree of ideas a search samples: --knowledge (load_tree), the run's stored source."""
    return load_tree(cfg.knowledge or KNOWLEDGE_BEFORE)


def run_cost(cfg: SearchConfig) -> str:
    """The run's cost axis: `cost`, or what FairNAD's own `cost` setting said (runs that set it there)."""
    own = (cfg.strategies.get("fairnad") or {}).get("cost") if cfg.strategy == "fairnad" else None
    if cfg.cost and own and own != cfg.cost:
        raise ConfigError(f"strategies.fairnad.cost={own} differs from cost={cfg.cost}; set the run's cost only")
    return cfg.cost or own or "params"


def tabular_problem(cfg: SearchConfig) -> Problem:
    bench = open_benchmark(cfg)
    m = bench.spec.metrics
    cost = run_cost(cfg)
    columns = {"params": m.params, "flops": m.flops}
    if cfg.cost and not columns[cost]:
        raise ConfigError(f"cost={cost}: the table {bench.spec.name} has no {cost} column; use cost="
                          f"{'flops' if cost == 'params' else 'params'} or leave it out")  # fmt: skip
    if not columns[cost] and columns[{"params": "flops", "flops": "params"}[cost]]:
        cost = "flops" if cost == "params" else "params"  # the table's one cost column
    # a candidate's "accuracy" is the table's search column, whichever way it is better
    primary = ACCURACY if m.higher_is_better else Objective("accuracy", "min", label=m.search)
    problem = Problem(kind="tabular", space=bench.space, evaluator=TabularEvaluator(bench, cfg.fidelity),
                      dataset=bench.spec.dataset, objectives=(primary, *(o for o, c in ((PARAMS, m.params),
                      (FLOPS, m.flops)) if c)), domain=bench.keys, bench=bench, cost=cost)  # fmt: skip
    if columns[cost]:
        col = bench.columns[columns[cost]]  # the mean cost, on the run's cost axis, of each option
        idx = np.array([bench.space.parse(k) for k in bench.keys])
        # the mean cost of the entries that use each option at each position: what "bigger" means
        problem.option_costs = [[float(col[idx[:, d] == j].mean()) if (idx[:, d] == j).any() else 0.0
                                 for j in range(len(opts))] for d, opts in enumerate(bench.space.options)]  # fmt: skip

        def cost_of(g: str) -> str:
            row = bench.lookup(g) or {}
            return ", ".join(f"{k} {row[k]:,}" for k in ("params", "flops") if row.get(k) is not None) or "cost unknown"

        problem.cost_of = cost_of
        problem.cost_range = {k: (float(max(1, bench.columns[c].min())), float(max(2, bench.columns[c].max())))
                              for k, c in (("params", m.params), ("flops", m.flops)) if c}  # fmt: skip
    return problem


def open_problem(cfg: SearchConfig, run_dir: Path | None = None) -> Problem:
    """Model code trained on cfg.open.dataset; the trained weights kept in <run_dir>/weights."""
    from fairnad.evaluate.code import CodeEvaluator, EvalRequest, run_request
    from fairnad.evaluate.datasets import dataset_spec, prepare
    from fairnad.evaluate.executors import make_executor
    from fairnad.prompts import render
    from fairnad.space.code import CodeSpace
    from fairnad.space.reference import for_dataset, reference

    o = cfg.open
    spec = dataset_spec(o.dataset)
    prepare(o.dataset, o.data_dir)  # a missing or malformed data folder fails here, before the run starts
    initial = []
    for item in o.initial or [f"ref:{r.name}" for r in for_dataset(o.dataset, spec.input_shape)]:
        if item.startswith("ref:"):
            initial.append(reference(item[4:]).source())
        else:
            try:
                initial.append(Path(item).read_text())
            except OSError as err:
                raise ConfigError(f"open.initial: cannot read {item} ({err.strerror})") from None
    if not initial:
        raise ConfigError(f"open.initial: no reference model for {o.dataset}; give starting model files")
    base = EvalRequest(source="", dataset=o.dataset, epochs=o.epochs, data_dir=o.data_dir, device=o.device,
                       seed=cfg.seed, max_params=o.max_params, train=dict(o.train), timeout=o.timeout,
                       memory_mb=o.memory_mb, threads=o.threads)  # fmt: skip
    executor = make_executor(o.executor, o.workers, o.gpus, o.address, o.device, o.isolation)
    evaluator = CodeEvaluator(base, executor, weights_dir=Path(run_dir) / "weights" if run_dir is not None else None,
                              keep_weights=o.keep_weights)  # fmt: skip

    def probe(source: str, **extra) -> dict:
        """A sandbox run reduced to what a strategy may read: the same for the same code on every run
        (no paths, no timings), so stored probes answer a resume or replay exactly."""
        r = run_request(EvalRequest(**{**base.to_dict(), "source": source, "checks_only": True, **extra}),
                        o.isolation).report()  # fmt: skip
        m = r.get("metrics") or {}
        return {"status": r["status"], "category": r.get("category"), "error": r.get("error"),
                "traceback": own_frames(r.get("traceback") or "")[-1500:] or None,
                **{k: m.get(k) for k in ("params", "flops", "val_acc", "structure")}}  # fmt: skip

    contract = render("contract.j2", dataset=o.dataset, input_shape=list(spec.input_shape),
                      num_classes=spec.num_classes, max_params=o.max_params)  # fmt: skip
    return Problem(
        kind="open", space=CodeSpace(o.dataset), evaluator=evaluator, dataset=o.dataset,
        objectives=(Objective("accuracy", "max", "%", "validation accuracy"), PARAMS, FLOPS), cost=run_cost(cfg),
        ideas=load_knowledge(cfg), contract=contract, initial=initial, max_params=o.max_params,
        # through Study.probe: stored and counted. check: builds, output shape, params/FLOPs; train: one epoch
        probes={"check": probe, "train": lambda src: probe(src, checks_only=False, epochs=1)},
        executor=executor,
    )  # fmt: skip


def make_problem(cfg: SearchConfig, run_dir: Path | None = None) -> Problem:
    """The run's problem; an open one keeps trained weights in <run_dir>/weights (none without a run)."""
    return open_problem(cfg, run_dir) if cfg.space == "open" else tabular_problem(cfg)


def open_benchmark(cfg: SearchConfig) -> TabularBenchmark:
    return load_table(cfg.benchmark, cfg.benchmark_file, cfg.space_file)


def default_run_name(cfg: SearchConfig) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3]
    return f"{cfg.benchmark_name}-{cfg.strategy}-s{cfg.seed}-{stamp}"


@dataclass
class RunHandle:
    """What a run needs while it executes; built the same way for a new and a resumed run."""

    cfg: SearchConfig
    store: RunStore
    problem: Problem

    @property
    def bench(self) -> TabularBenchmark | None:
        return self.problem.bench

    @property
    def run_dir(self) -> Path:
        return self.store.run_dir

    @property
    def done(self) -> int:
        """Evaluations the run has made so far (all sessions)."""
        return sum(c.counted for c in self.store.candidates())


# -- the LLM, one way for searches and knowledge builds ------------------------------------------
def llm_config(flag: str | None, model: str | None = None, api_key_env: str | None = None) -> LLMConfig:
    """The LLM settings a --llm/--model/--api-key-env triple means (default: the embedded model)."""
    fields: dict[str, Any] = parse_llm_flag(flag) if flag else {"backend": "embedded"}
    if model:
        fields["model"] = model
    if api_key_env:
        fields["api_key_env"] = api_key_env
    return LLMConfig.model_validate(fields)


def recorded_llm(cfg: LLMConfig, store: RunStore | BuildStore, provider: BackendProvider) -> RecordingLLM:
    """The LLM as a run or build sees it: every call recorded in its store and answered from there
    when it was asked before. `replay` answers from another folder of the same kind: a run's calls
    in order (a search is re-executed exactly), a build's by request (papers may come in any order).
    A run's soft prompt tunings are recorded and replayed the same way (`prompt_tuned` events, the
    prompt as a file in the run folder). The call and token caps of the settings hold, replayed calls
    included."""
    own = store.llm_calls()
    is_build = isinstance(store, BuildStore)
    kind = BuildStore if is_build else RunStore
    live: Any = None
    recorded, cache = (own if not is_build else ()), (own if is_build else ())
    tunings = [] if is_build else _tunings(store)
    if cfg.backend == "replay":
        src_dir = replay_source(cfg, kind)
        with kind.open(src_dir, readonly=True) as src:
            source_calls = src.llm_calls()
            source_tunings = [] if is_build else _tunings(src)
        if is_build:
            cache = [*own, *source_calls]
        else:
            live = ReplayBackend(source_calls, source=str(src_dir), start=len(replayable(own)),
                                 tunings=source_tunings, tuning_start=len(tunings), folder=src_dir)  # fmt: skip
    else:
        live = provider.lazy(cfg.model_dump())
    sink = None if is_build else (lambda rec: store.add_event("prompt_tuned", **rec))
    return RecordingLLM(live, sink=store.add_llm_call, recorded=recorded, cache=cache, max_calls=cfg.max_calls,
                        max_tokens=cfg.max_tokens, source=str(src_dir if cfg.backend == "replay" and is_build
                                                              else store.run_dir),
                        tunings=tunings, tuning_sink=sink, folder=store.run_dir,
                        note="" if is_build else f" ({recorded_by(store)})")  # fmt: skip


def _tunings(store: RunStore) -> list[dict[str, Any]]:
    """The run's recorded soft prompt tunings, in order (events of runs made before they were replayable
    carry no key and are not among them: such a run trains again on resume)."""
    return [e for e in store.events() if e["kind"] == "prompt_tuned" and e.get("key")]


def replay_source(cfg: LLMConfig, kind=RunStore) -> Path:
    """The folder whose recorded calls answer `--llm replay:DIR`: a run (or, kind BuildStore, a
    knowledge build); refused before anything is written."""
    src = cfg.replay_from
    if not src or not (Path(src) / kind.DB).is_file():
        what = "knowledge build" if kind is BuildStore else "run"
        raise ConfigError(f"--llm replay:{src or ''}: {src!r} is not a {what} folder (no {kind.DB}); give the folder "
                          f"of the {what} whose answers to replay")  # fmt: skip
    return Path(src)


def check_llm_none(cfg: SearchConfig, strategy) -> None:
    """--llm none only where every LLM step has a deterministic counterpart (new runs and resumes)."""
    if cfg.llm.backend == "none" and strategy.uses_llm and cfg.space not in strategy.runs_without_llm:
        able = (f"{' and '.join(strategy.runs_without_llm)} spaces only" if strategy.runs_without_llm
                else "fairnad on tables and open spaces; llmatic and evoprompting on tables")  # fmt: skip
        raise ConfigError(f"--llm none: {strategy.name} has no run without its LLM here ({able}); give it an LLM")


def _check_other_settings(cfg: SearchConfig) -> None:
    """Settings for strategies this run does not use are still checked: a misspelt name
    (`strategies.regvo.population`) would otherwise be ignored without a word."""
    from fairnad.search.base import list_strategies, strategy_infos

    others = {n: p for n, p in cfg.strategies.items() if n != cfg.strategy}
    known = {i.name for i in strategy_infos()} if others else set()  # (plug-ins loaded once, and only then)
    for name, params in others.items():
        if name not in known:  # (a broken plug-in says what is broken below)
            raise ConfigError(f"strategies.{name}: no strategy of that name; available: "
                              f"{', '.join(list_strategies())}")  # fmt: skip
        create_strategy(name, params)


def create_run(cfg: SearchConfig, run_dir: str | Path | None = None) -> RunHandle:
    """Validate everything that can be checked before writing, then create the run folder."""
    strategy = create_strategy(cfg.strategy, cfg.strategies.get(cfg.strategy))  # refuse bad settings early
    _check_other_settings(cfg)
    if cfg.space not in strategy.spaces:
        from fairnad.search.base import strategy_infos

        able = sorted(i.name for i in strategy_infos() if i.ok and cfg.space in i.cls.spaces)
        raise ConfigError(f"strategy {strategy.name} cannot search {cfg.space} spaces; use one of: {', '.join(able)}")
    check_llm_none(cfg, strategy)
    if cfg.llm.backend == "replay" and strategy.uses_llm:
        replay_source(cfg.llm)
    run_dir = Path(run_dir) if run_dir else Path(cfg.runs_dir) / default_run_name(cfg)
    if cfg.space == "open" and cfg.knowledge is None:
        cfg.knowledge = default_knowledge()  # stored: a later default does not change what this run resumes with
    problem = make_problem(cfg, run_dir)
    if cfg.fidelity is not None and problem.bench is not None:
        problem.bench.search_column(cfg.fidelity)
    # every setting of the strategy is stored, defaults included: a default changed later does not change
    # what a resume of this run replays
    cfg.strategies = {**cfg.strategies, cfg.strategy: strategy.config.model_dump(mode="json")}
    try:
        store = RunStore.create(run_dir, cfg.model_dump(mode="json"))
    except Exception:
        problem.close()
        raise
    try:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        store.set_meta(versions=versions(),  # what the run was made with: shown by the report
                       objectives=[dataclasses.asdict(o) for o in problem.objectives],  # what "best" means, for readers
                       cost=problem.cost)  # the front's cost axis (the verdicts stored with the candidates use it)
    except (OSError, StoreError) as err:
        store.close()
        problem.close()
        if isinstance(err, StoreError):
            raise
        raise StoreError(f"{run_dir / 'config.yaml'}: cannot write ({err.strerror or err})") from None
    return RunHandle(cfg, store, problem)


# FairNAD settings added after runs began storing their settings, with the behaviour of runs made before
FAIRNAD_BEFORE = {"evidence_prior": 0, "stall": 0, "new_idea_on_duplicate": False, "adaptive": False}


def _as_created(config: dict[str, Any]) -> dict[str, Any]:
    """A stored config with the defaults its run was made under, where they have changed since and the
    run did not store them (runs store every strategy setting since FairNAD's evidence_prior)."""
    if config.get("strategy") == "fairnad":
        own = (config.get("strategies") or {}).get("fairnad") or {}
        old = {k: v for k, v in FAIRNAD_BEFORE.items() if k not in own}
        if old:
            config = {**config, "strategies": {**(config.get("strategies") or {}), "fairnad": {**own, **old}}}
    return config


def open_run(run_dir: str | Path, budget: int | None = None, *, below_done: bool = True,
             llm: str | None = None) -> RunHandle:  # fmt: skip
    """A stored run, its budget set to `budget` (below_done=False: not below what it has evaluated:
    a user extending a run has mistyped), its LLM switched to the --llm flag `llm` for the calls still
    to make (stored with its config)."""
    store = RunStore.open(run_dir)
    try:
        cfg = SearchConfig.model_validate(_as_created(store.meta()["config"]))
        new_llm = LLMConfig.model_validate({**cfg.llm.model_dump(), **parse_llm_flag(llm)}) if llm is not None else None
        if budget is not None:
            if budget < 1:
                raise ConfigError(f"--budget {budget}: must be at least 1")
            done = sum(c.counted for c in store.candidates()) if not below_done else 0
            if budget < done:
                raise ConfigError(f"--budget {budget}: {run_dir} has {done} evaluations already; give {done} or more "
                                  "(or leave -n out to finish its own budget)")  # fmt: skip
            cfg.budget = budget
            store.set_meta(config=cfg.model_dump(mode="json"))
        problem = make_problem(cfg, store.run_dir)
        if new_llm is not None:
            cfg.llm = new_llm
            store.set_meta(config=cfg.model_dump(mode="json"))
        return RunHandle(cfg, store, problem)
    except Exception:
        store.close()
        raise


def run_to_budget(handle: RunHandle, on_result: Callable[[Study, Candidate], None] | None = None) -> dict[str, Any]:
    """`fairnad search` and `resume`: execute the run with LLM backends of its own (stopped after),
    then close its store; the run's summary."""
    with BackendProvider(handle.store.run_dir) as provider:
        try:
            return execute(handle, provider, on_result)
        finally:
            handle.store.close()


def execute(
    handle: RunHandle, provider: BackendProvider, on_result: Callable[[Study, Candidate], None] | None = None
) -> dict[str, Any]:
    """Drive the run to its budget. LLM outages pause it cleanly (RunPaused, resumable)."""
    cfg, store, problem = handle.cfg, handle.store, handle.problem
    strategy = create_strategy(cfg.strategy, cfg.strategies.get(cfg.strategy))
    try:
        check_llm_none(cfg, strategy)  # (a resume may have switched the LLM off)
    except ConfigError:
        problem.close()
        raise
    llm = recorded_llm(cfg.llm, store, provider) if strategy.uses_llm and cfg.llm.backend != "none" else None
    study = Study(
        problem=problem, store=store, budget=cfg.budget, seed=cfg.seed, llm=llm,
        fidelity=cfg.fidelity if problem.bench is not None else None, max_seconds=cfg.max_seconds,
        max_probes=cfg.max_probes,
    )  # fmt: skip
    if on_result is not None:
        study.callbacks.append(on_result)
    if cfg.space == "open":
        _log_sandbox(store, cfg.open.isolation)
    t0 = time.time()
    finished = False
    try:
        study.optimize(strategy)
        finished = True
    except ReplayMismatch as err:  # the run's own record differs: a resume cannot go past it, so it is no pause
        store.set_meta(status="failed")
        store.add_event("failed", reason=str(err), evaluations=study.evaluations)
        raise ResumeMismatch(str(err)) from None
    except (LLMUnavailable, LLMBudgetExceeded, ReplayExhausted) as err:
        store.set_meta(status="paused")
        store.add_event("paused", reason=str(err), evaluations=study.evaluations)
        raise RunPaused(f"{err}. The run is saved; continue it with: fairnad resume {shlex.quote(str(store.run_dir))}") from None
    except (LLMError, FairnadError) as err:
        store.set_meta(status="failed")
        store.add_event("failed", reason=str(err), evaluations=study.evaluations)
        raise
    finally:
        problem.close()
        try:
            _close_session(store, study, llm, t0, cfg.space == "open")
        except StoreError:
            if finished:  # else the error that stopped the run is the one to report
                raise
    return summarize(store, problem.bench)


def _log_sandbox(store: RunStore, isolation: str) -> None:
    """What generated code can see, in the run log (`runs show`): a user on a machine without
    namespaces learns that candidates run with limits only."""
    from fairnad.evaluate.sandbox import jail_paths, namespaces_available

    jailed = isolation == "namespaces" or (isolation == "auto" and namespaces_available())
    if jailed:
        store.add_event("sandbox", isolation="namespaces", readable=jail_paths(), network=False)
    else:
        store.add_event("sandbox", isolation="limits", readable="everything this user can read", network=True,
                        note="Linux namespaces are unavailable or switched off (open.isolation): candidates run "
                             "with rlimits, a watchdog and a stripped environment only")  # fmt: skip


def _close_session(store: RunStore, study: Study, llm: RecordingLLM | None, t0: float, open_space: bool) -> None:
    """The session's bookkeeping: the best model as a plain file, time used, the session event."""
    best = study.best()
    if open_space and best is not None:  # the best model as a plain file, ready to use
        path = store.run_dir / "best_model.py"
        try:
            path.write_text(best.genotype)
        except OSError as err:
            raise StoreError(f"{path}: cannot write ({err.strerror or err}); the run itself is saved") from None
    elapsed = store.meta().get("seconds", 0.0) + (time.time() - t0)
    store.set_meta(seconds=round(elapsed, 3))
    store.add_event(
        "session", seconds=round(time.time() - t0, 3), evaluations=study.evaluations,
        llm=llm.stats() if llm is not None else None,
    )  # fmt: skip



# -- knowledge builds ---------------------------------------------------------------------------
def build_dir_for(out: Path) -> Path:
    """Where a build keeps its state by default: runs/knowledge-<tree name>, unless that folder is the
    state of another output file (`a/tree.json` and later `b/tree.json`): then
    runs/knowledge-<tree name>-<hash of the output's full path>, so a tree never holds the papers of a
    build it was not given."""
    out = Path(out)
    plain = Path("runs") / f"knowledge-{out.stem}"
    if not (plain / BuildStore.DB).is_file():
        return plain
    with BuildStore.open(plain, readonly=True) as st:
        made_for = (st.meta().get("config") or {}).get("out")
    if made_for is None or Path(made_for).resolve() == out.resolve():
        return plain
    return Path("runs") / f"knowledge-{out.stem}-{hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:8]}"


def open_build(build_dir: Path, meta: dict[str, Any]) -> BuildStore:
    """The build's store: resumed when it exists (papers already read are not read again)."""
    if (Path(build_dir) / BuildStore.DB).is_file():
        return BuildStore.open(build_dir)
    return BuildStore.create(build_dir, meta)


def knowledge_inputs(papers: Path, template_path: Path | None = None,
                     options: dict[str, Any] | None = None) -> tuple[list[Path], Any]:  # fmt: skip
    """What `fairnad knowledge build` reads: the PDFs of a folder (searched recursively) and the
    structural template (default: FairNAD's, templates/fairnad.yaml); ConfigError saying what is missing
    or which of the build's `options` (BuildOptions fields) is out of range."""
    o = options or {}
    for name, flag in (("candidates", "--candidates"), ("max_pages", "--max-pages")):
        if o.get(name) is not None and o[name] < 1:
            raise ConfigError(f"{flag} {o[name]}: give a whole number of 1 or more")
    if (o.get("find_by_name") or 0) < 0:
        raise ConfigError(f"--find-by-name {o['find_by_name']}: give 0 (off) or a number of sentences")
    from fairnad.knowledge.build import find_pdfs
    from fairnad.knowledge.template import load_template
    from fairnad.prompts import templates_dir

    template = load_template(template_path or templates_dir() / "fairnad.yaml")
    if not papers.is_dir():
        raise ConfigError(f"{papers}: not a folder of PDF papers")
    pdfs = find_pdfs(papers)
    if not pdfs:
        raise ConfigError(f"{papers}: no .pdf files in this folder")
    return pdfs, template


def build_knowledge(pdfs: list[Path], template, out: Path, build_dir: Path | None, llm_cfg: LLMConfig,
                    options: dict[str, Any] | None = None, *, note: Callable[[str | None, str], None] | None = None,
                    extra_mentions=None, extra_papers=None, graphml: bool = True) -> dict[str, Any]:  # fmt: skip
    """Read `pdfs` into the build at `build_dir` (default build_dir_for(out); resumable), consolidate
    everything it holds into the attribute tree, write it to `out` (and its GraphML), and return the
    build's summary. `options`: BuildOptions fields. `note(paper, stage)` hears each paper's stages,
    then (None, "consolidating")."""
    from fairnad.knowledge.build import BuildOptions, assemble, process_papers
    from fairnad.knowledge.embed import Embedder
    from fairnad.store.sqlite import clean_text
    from fairnad.store.summary import knowledge_summary

    if llm_cfg.backend == "none":
        raise ConfigError("--llm none: a knowledge build reads papers with an LLM; give it one (default: embedded)")
    if llm_cfg.backend == "replay":
        replay_source(llm_cfg, BuildStore)  # before the build folder is made
    t0 = time.time()
    note = note or (lambda paper, stage: None)
    opts = BuildOptions(**(options or {}))
    build_dir = build_dir or build_dir_for(out)
    store = open_build(build_dir, {"template": template.model_dump(), "out": str(Path(out).resolve())})
    try:
        with BackendProvider(build_dir) as provider:
            llm = recorded_llm(llm_cfg, store, provider)
            if opts.confirm_duplicates is None:  # only a capable model is worth asking about duplicates
                opts.confirm_duplicates = llm_cfg.backend == "openai"
            embedder = Embedder()
            process_papers(pdfs, template, store, llm, opts, note, embedder=embedder)
            read = [p for p in store.papers() if p["status"] == "done"]
            if not read and not extra_mentions:  # an empty tree would replace nothing with nothing
                why = "; ".join(str(p.get("error")) for p in store.papers()[:3])
                raise ConfigError(f"no paper could be read ({why}); no tree was written. Give PDFs of papers "
                                  "(text, not scanned images)")  # fmt: skip
            note(None, "consolidating")
            tree, report = assemble(template, store, embedder, opts, llm=llm, extra_mentions=extra_mentions,
                                    extra_papers=extra_papers, build_dir=str(build_dir))  # fmt: skip
            tree.save(out)
            if graphml:
                tree.export_graphml(Path(out).with_suffix(".graphml"))
            store.add_event("tree_saved", tree=str(out), attributes=len(tree.attributes()))
            all_papers = store.papers()
            wanted = {clean_text(str(p)) for p in pdfs}  # as stored (a non-UTF-8 name is stored cleaned)
            papers = [p for p in all_papers if p["path"] in wanted] or all_papers
            s = knowledge_summary(tree, report, papers, llm, time.time() - t0, out)
            # which papers the tree holds, and which of them this build was not given (an earlier build's,
            # in the same --build-dir, or what `knowledge add` carried over from the tree)
            given = {p["name"] for p in papers}
            s["tree_papers"] = sorted(p["name"] for p in tree.papers if p.get("name"))
            s["earlier_papers"] = [n for n in s["tree_papers"] if n not in given]
            s["build_dir"] = str(build_dir)
            return s
    finally:
        store.close()


def add_paper(paper: Path, tree_path: Path, build_dir: Path | None, llm_cfg: LLMConfig, *,
              note: Callable[[str | None, str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """`fairnad knowledge add`: read one more paper and consolidate it with everything the tree at
    `tree_path` holds (its build folder's papers, and the papers only the tree remembers); the tree is
    written back in place. Checked before anything is opened or rewritten."""
    from fairnad.knowledge.build import mentions_from_tree
    from fairnad.knowledge.tree import AttributeTree

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
    return build_knowledge([paper], tree.template, tree_path, bdir, llm_cfg, note=note, extra_mentions=extra,
                           extra_papers=papers)  # fmt: skip


# -- browsing trees -------------------------------------------------------------------------------
def tree_view(source: str | Path) -> dict[str, Any]:
    """A tree (load_tree) as levels > categories > sub-categories > ideas with counts."""
    from fairnad.report.tree_html import tree_payload

    return tree_payload(load_tree(source))


def search_tree(source: str | Path, query: str, limit: int) -> dict[str, Any]:
    """The ideas of a tree that match `query`, best first: {"query", "total", "hits" (at most `limit`)}."""
    found = load_tree(source).search(query, limit=None)
    hits = [{"name": a["name"], "category": a["category"], "subcategory": a.get("subcategory"),
             "description": a.get("description"), "frequency": a["frequency"], "aliases": a.get("aliases", []),
             "sources": [{k: s.get(k) for k in ("paper", "page", "quote")} for s in a["sources"]]}
            for a in found[:limit]]  # fmt: skip
    return {"query": query, "total": len(found), "hits": hits}


def tree_stats(source: str | Path) -> dict[str, Any]:
    """Frequency per category (tree.stats) and per idea (`ideas`), beside the fair shares."""
    tree = load_tree(source)
    return {**tree.stats(), "ideas": tree.idea_shares()}


def check_knowledge(source: str | Path, out: Path, llm_cfg: LLMConfig, dataset: str = "mnist1d", *,
                    note: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """`fairnad knowledge check`: every idea fair sampling would draw, applied once by the model to the
    dataset's first reference model with a FairNAD idea prompt; an idea is actionable when the child
    builds and is another network. The evidence goes into each idea (`actionable`), the tree to `out`;
    sampling then passes over the ideas that failed (AttributeTree.sampled)."""
    from fairnad.evaluate.code import EvalRequest, run_request
    from fairnad.evaluate.datasets import dataset_spec, prepare
    from fairnad.prompts import render
    from fairnad.search.actionable import check_idea
    from fairnad.search.ideas import IdeaSpace
    from fairnad.space.reference import for_dataset

    if llm_cfg.backend in ("none", "replay"):
        raise ConfigError(f"--llm {llm_cfg.backend}: a check asks the model to apply each idea; give it a live one")
    tree = load_tree(source)
    spec = dataset_spec(dataset)
    prepare(dataset)
    parent = for_dataset(dataset, spec.input_shape)[0].source()

    def probe(code: str) -> dict[str, Any]:
        r = run_request(EvalRequest(source=code, dataset=dataset, checks_only=True, timeout=180)).report()
        m = r.get("metrics") or {}
        return {"status": r["status"], "category": r.get("category"), "error": r.get("error"),
                "structure": m.get("structure"), "params": m.get("params")}  # fmt: skip

    parent_check = probe(parent)
    contract = render("contract.j2", dataset=dataset, input_shape=list(spec.input_shape),
                      num_classes=spec.num_classes, max_params=1_500_000)  # fmt: skip
    ideas = IdeaSpace.from_tree(tree, checked=False).by_id  # every idea sampling would draw, checked or not
    drawn = [a for attrs in tree.sampled(checked=False).values() for a in attrs]
    t0 = time.time()
    with BackendProvider() as provider:
        llm = provider.backend(llm_cfg.model_dump())
        model = llm_cfg.embedded_model or llm_cfg.model or llm_cfg.backend
        for i, a in enumerate(drawn, 1):
            if note is not None:
                note(i, len(drawn), a["name"])
            ev = check_idea(llm, ideas[a["key"]], parent, parent_check, contract, probe)
            tree.g.nodes[a["node"]]["actionable"] = {**ev, "model": model, "dataset": dataset}
    tree.save(out)
    checked = [tree.g.nodes[a["node"]]["actionable"] for a in drawn]
    return {"tree": str(out), "checked": len(checked), "actionable": sum(c["ok"] for c in checked),
            "builds": sum(c["builds"] for c in checked), "seconds": round(time.time() - t0, 1),
            "not_actionable": [{"name": a["name"], "why": tree.g.nodes[a["node"]]["actionable"]["why"]}
                               for a in drawn if not tree.g.nodes[a["node"]]["actionable"]["ok"]]}  # fmt: skip


def write_tree_page(source: str | Path, out: Path) -> Path:
    """The tree as one self-contained HTML page at `out`."""
    from fairnad.report.tree_html import write_tree_html

    tree = load_tree(source)
    if out.is_dir():
        raise ConfigError(f"{out}: a folder; give -o the HTML file to write (e.g. {out / 'tree.html'})")
    try:
        return write_tree_html(tree, out)
    except OSError as err:
        raise ConfigError(f"{out}: cannot write the page ({err.strerror or err}); give -o a file path you can write") from None



# -- evaluating model files ---------------------------------------------------------------------
def model_source(arg: str) -> tuple[str, str]:
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


def evaluate_models(models: list[str], request: dict[str, Any], pool: dict[str, Any], *,
                    rungs: list[int] | None = None, eta: float = 3.0, top_k: int = 1, final_epochs: int | None = None,
                    on_rung: Callable[[int, list], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """`fairnad evaluate`: model files (paths or ref:NAME) trained in the sandbox with `request`'s
    fields (EvalRequest; `train` checked as recipe overrides), on an executor made from `pool`
    (executor, workers, gpus, address, isolation). With `rungs`, successive halving over those
    epochs: {"dataset", "rungs", "eta", "models"}; else {"results": one row per model}."""
    from fairnad.evaluate.code import EvalRequest
    from fairnad.evaluate.datasets import dataset_spec, prepare
    from fairnad.evaluate.executors import make_executor
    from fairnad.evaluate.fidelity import successive_halving
    from fairnad.evaluate.recipe import check_overrides

    try:
        request = {**request, "train": check_overrides(request.get("train") or {})}
    except ValueError as err:
        raise ConfigError(f"--train {err}") from None
    sources = [model_source(m) for m in models]
    dataset = request["dataset"]
    dataset_spec(dataset)
    prepare(dataset, request.get("data_dir"))  # fail early (and once) on a missing or malformed data folder
    executor = make_executor(pool["executor"], pool["workers"], pool.get("gpus"), pool.get("address"),
                             request["device"], pool["isolation"])  # fmt: skip
    try:
        if rungs:
            entries = successive_halving(
                len(sources), lambda i, e: EvalRequest(source=sources[i][1], **{**request, "epochs": e}), executor,
                rungs, eta, top_k, final_epochs, on_rung or (lambda r, alive: None),
            )  # fmt: skip
            return {"dataset": dataset, "rungs": rungs, "eta": eta,
                    "models": [{"model": sources[e.index][0], "rungs": e.rungs, "final": e.final} for e in entries]}  # fmt: skip
        results = executor.map([EvalRequest(source=src, **request) for _, src in sources])
    finally:
        executor.close()
    rows = [{"model": label, "dataset": dataset, **r.to_dict()} for (label, _), r in zip(sources, results)]
    for r in rows:
        r["metrics"].pop("curves", None)
    return {"results": rows}


# -- browsing runs --------------------------------------------------------------------------------
def show_run(run_dir: str | Path, candidates: bool = False) -> dict[str, Any]:
    """`fairnad runs show`: the run's summary (read-only, while it may still run) with its events,
    and with `candidates` every candidate (Candidate.to_dict)."""
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
    return s


def write_report(run_dirs: list[Path], compare: bool = False, out: Path | None = None) -> dict[str, Any]:
    """One self-contained HTML page of a run (default RUN/report.html), or of several with `compare`
    (default compare.html): {"html", "runs"}."""
    from fairnad.report.html import write_compare_report, write_run_report

    for d in run_dirs:
        if not is_run_dir(d):
            raise ConfigError(f"{d} is not a run folder (no run.db in it); `fairnad runs` lists the runs")
    if len(run_dirs) > 1 and not compare:
        raise ConfigError(f"{len(run_dirs)} run folders given: add --compare to overlay them on one page")
    if compare:
        path = write_compare_report(run_dirs, out or Path("compare.html"))
    else:
        path = write_run_report(run_dirs[0], out or run_dirs[0] / "report.html")
    return {"html": str(path), "runs": [str(d) for d in run_dirs]}


# -- what there is to choose from: tables, strategies, reference models, embedded LLMs ------------
def benchmark_rows() -> list[dict[str, Any]]:
    """The built-in tabular benchmarks with their size and optimum."""
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
    return rows


def relabel_benchmark(name: str, seed: int, out: Path, space_file: Path | None = None) -> dict[str, Any]:
    """A built-in benchmark (or a user's table with its space file) relabelled with `seed`, written to
    `out` as a table and its space file: {"benchmark", "table", "space_file", "size"}."""
    from fairnad.evaluate.relabel import relabel, write_relabelled

    if space_file is None and Path(name).suffix.lower() in (".csv", ".json"):
        raise ConfigError(f"{name}: your own table needs its space file: add --space-file SPACE.yaml")
    bench = relabel(load_user_benchmark(name, space_file) if space_file else load_benchmark(name), seed)
    table, space = write_relabelled(bench, out)
    return {"benchmark": bench.spec.name, "table": str(table), "space_file": str(space), "size": len(bench)}


def strategy_rows() -> list[dict[str, Any]]:
    """Every strategy, built-in and plug-in, as `fairnad strategies` lists it (broken ones with the reason)."""
    from fairnad.search.base import strategy_infos

    return [i.describe() for i in strategy_infos()]


def reference_models() -> list[dict[str, Any]]:
    """The reference models (ref:NAME): file, datasets, scaling arguments, summary."""
    from fairnad.space.reference import REFERENCES

    return [{"name": r.name, "file": str(r.path), "datasets": list(r.datasets), "scale": r.scale, "summary": r.summary}
            for r in REFERENCES.values()]  # fmt: skip


def llm_models(assemble: bool = False, on_assemble: Callable[[str, Path], None] | None = None) -> dict[str, Any]:
    """The embedded models, installed or not: {"models", "default", "cache"}. With `assemble`, every
    installed chunked model is assembled into the cache first (`on_assemble(name, cache)` before each)."""
    from fairnad.llm import models

    if assemble:
        for row in models.listing():
            if not row["missing_packages"] and not row["assembled"]:
                if on_assemble is not None:
                    on_assemble(row["name"], models.home())
                models.resolve(row["name"])
    return {"models": models.listing(), "default": models.DEFAULT_MODEL, "cache": str(models.home())}
