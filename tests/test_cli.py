"""The CLI as a user runs it: search, resume, runs, benchmarks, bench; --json; clear errors."""

import json
import sqlite3

import pytest

from fairnad.store import RunStore

from conftest import ROOT

EX = ROOT / "docs" / "examples"


def _json(proc):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_search_json_has_the_documented_fields(run_cli, tmp_path):
    out = _json(run_cli("search", "-b", "nb201-cifar10", "-s", "regevo", "-n", "25", "--seed", "3", "--json"))
    assert {"run_dir", "strategy", "benchmark", "evaluations", "best", "llm"} <= set(out)
    assert out["strategy"] == "regevo" and out["benchmark"] == "nb201-cifar10" and out["evaluations"] == 25
    assert {"genotype", "accuracy", "rank"} <= set(out["best"])
    assert {"calls", "tokens_in", "tokens_out"} <= set(out["llm"])
    assert out["best"]["accuracy"] != out["best"]["search_accuracy"]  # NB201: test reported, validation searched
    assert (tmp_path / out["run_dir"] / "run.db").is_file()


def test_search_text_output_and_runs_listing(run_cli, tmp_path):
    p = run_cli("search", "-b", "nas-bench-macro", "-s", "random", "-n", "12", "--run-dir", "runs/mine")
    assert p.returncode == 0, p.stderr
    for word in ("best genotype", "accuracy", "rank", "params / FLOPs", "of 6561"):
        assert word in p.stdout
    listing = _json(run_cli("runs", "--json"))
    assert [r["run_dir"] for r in listing["runs"]] == ["runs/mine"]
    shown = _json(run_cli("runs", "show", "runs/mine", "--json", "--candidates"))
    assert len(shown["candidates"]) == 12 and shown["events"][0]["kind"] == "started"
    assert shown["best"]["description"].startswith("layer2=")
    again = run_cli("search", "-b", "nas-bench-macro", "-s", "random", "-n", "12", "--run-dir", "runs/mine")
    assert again.returncode == 2 and "already holds a run" in again.stderr and "fairnad resume" in again.stderr
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "run.db").write_text("not a database")  # not "resume it": resume could not
    p = run_cli("search", "-b", "nas-bench-macro", "-s", "random", "-n", "2", "--run-dir", "junk")
    assert p.returncode != 0 and "junk/run.db: a file that is not a fairnad run database" in p.stderr, p.stderr
    assert (tmp_path / "junk" / "run.db").read_text() == "not a database"  # left as it was


def test_config_file_and_flag_override(run_cli, tmp_path):
    (tmp_path / "c.yaml").write_text("benchmark: channel-bench-mobilenet\nstrategy: regevo\nbudget: 30\n"
                                     "strategies:\n  regevo: {population: 5, sample: 2}\n")  # fmt: skip
    out = _json(run_cli("search", "-c", "c.yaml", "-n", "12", "--json"))
    assert out["benchmark"] == "channel-bench-mobilenet" and out["evaluations"] == 12
    cfg = RunStore.open(tmp_path / out["run_dir"], readonly=True).meta()["config"]
    # every setting is stored, the defaults too: a default changed later does not change a resume
    assert cfg["strategies"]["regevo"] == {"population": 5, "sample": 2, "mutation_tries": 100} and cfg["budget"] == 12


def test_user_benchmark_files_from_the_cli(run_cli):
    out = _json(run_cli("search", "--benchmark-file", str(EX / "toy-table.csv"), "--space-file",
                        str(EX / "toy-space.yaml"), "-s", "random", "-n", "18", "--json"))  # fmt: skip
    assert out["benchmark"] == "toy-table" and out["best"]["rank"] == 1  # all 18 seen: the optimum is found


@pytest.mark.parametrize(
    "args,expected",
    [
        (["-b", "nas-bench-999"], "unknown benchmark 'nas-bench-999'; built-in ones:"),
        (["-s", "magic"], "unknown strategy 'magic'; available:"),
        (["-c", "missing.yaml"], "missing.yaml: config file not found"),
        (["-c", "bad.yaml"], "bad.yaml: budget: Input should be greater than or equal to 1"),
        (["-c", "typo.yaml"], "typo.yaml: budgett: Extra inputs are not permitted"),
        (["--set", "strategies.regevo.population=1", "-s", "regevo"], "strategies.regevo: population: Input should be"),
        (["--set", "strategies.regvo.population=4", "-s", "regevo"], "strategies.regvo: no strategy of that name"),
        (["--set", "strategies.fairnad.probs={idea: -1}", "-s", "regevo"], "strategies.fairnad: probs: Value error"),
        (["--benchmark-file", "t.csv"], "--benchmark-file and --space-file go together"),
        (["-b", "nb201-cifar10", "--benchmark-file", "t.csv"], "-b nb201-cifar10 and --benchmark-file t.csv: give one"),
        (["--epochs", "3"], "--workers, --gpus and --max-params are open-space settings; this search is on a table"),
        (["--space", "open", "-b", "nb201-cifar10"], "-b: tabular settings, but this search is --space open"),
        (["--space", "open", "--gpus", "x"], "--gpus 'x': expected comma-separated GPU ids like 0,1"),  # (README's flag)
        (["--llm", "ftp://x"], "--llm 'ftp://x': use 'embedded[:NAME]', an http(s) URL"),
        (["-s", "genius", "--llm", "replay:nowhere"], "--llm replay:nowhere: 'nowhere' is not a run folder (no run.db)"),
        (["--space", "open", "--set", "open.train.lr=abc"], "open.train: Value error, lr='abc': Input should be a valid number"),
        (["--space", "open", "--set", "open.train.device=cuda"], "device: not a recipe setting; use --device"),
        (["--fidelity", "12"], "benchmark nas-bench-macro has no fidelity '12' (available: none)"),
        # YAML reads {idea:-1} as the key "idea:-1"; the message shows it as it is (no emoji for ":-1:")
        (["-s", "fairnad", "--set", "strategies.fairnad.probs={idea:-1}"], "probs.idea:-1: Input should be a valid number"),
    ],
)
def test_bad_input_gets_one_clear_line(run_cli, tmp_path, args, expected):
    (tmp_path / "bad.yaml").write_text("budget: 0\n")
    (tmp_path / "typo.yaml").write_text("budgett: 5\n")
    (tmp_path / "t.csv").write_text("genotype,acc\n")
    p = run_cli("search", *args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "runs").exists()  # nothing half-created
    pj = run_cli("search", *args, "--json")
    assert json.loads(pj.stdout)["exit_code"] == 2 and expected in json.loads(pj.stdout)["error"]


def test_malformed_benchmark_file_from_the_cli(run_cli, tmp_path):
    (tmp_path / "t.csv").write_text("genotype,val_acc,test_acc,params\na11,80,79,1\nq11,1,1,1\n")
    p = run_cli("search", "--benchmark-file", "t.csv", "--space-file", str(EX / "toy-space.yaml"))
    assert p.returncode == 2 and "t.csv (line 3): genotype 'q11'" in p.stderr


def test_benchmarks_listing(run_cli):
    out = _json(run_cli("benchmarks", "--json"))
    names = {b["name"]: b for b in out["benchmarks"]}
    assert len(names) == 6
    macro = names["nas-bench-macro"]
    assert macro["size"] == 6561 and "22212220" in macro["optimum"]["tied"]
    assert abs(macro["optimum"]["accuracy"] - 93.1267) < 1e-4
    assert names["nb201-cifar10"]["fidelities"] == ["12"] and names["nb201-cifar10"]["report_metric"] == "test_acc_200"


def test_bench_grid_and_its_tables(run_cli, tmp_path):
    args = ["bench", "--benchmarks", "nas-bench-macro,nb201-cifar10", "--strategies", "random,regevo", "--seeds", "3",
            "--budgets", "5,20", "--out", "b", "--json"]  # fmt: skip
    out = _json(run_cli(*args))
    rows = out["rows"]
    assert len(rows) == 2 * 2 * 3  # (random expectation + 2 strategies) x 2 budgets x 2 benchmarks
    exp = [r for r in rows if r["strategy"].startswith("random (exact")]
    assert {(r["benchmark"], r["budget"]) for r in exp} == {(b, k) for b in ("nas-bench-macro", "nb201-cifar10")
                                                             for k in (5, 20)}  # fmt: skip
    reg = next(r for r in rows if r["strategy"] == "regevo" and r["budget"] == 20 and r["benchmark"] == "nb201-cifar10")
    assert reg["runs"] == 3 and reg["acc_mean"] > 80 and reg["rank_mean"] >= 1
    md = (tmp_path / "b" / "bench.md").read_text()
    assert "| nb201-cifar10 | regevo |" in md and "± " in md
    assert (tmp_path / "b" / "bench.csv").read_text().startswith("benchmark,strategy,budget")
    # a second call reuses the finished runs and gives the same table
    again = _json(run_cli(*args))
    assert again["rows"] == rows


def test_second_process_on_a_run_is_refused(run_cli, tmp_path):
    _json(run_cli("search", "-s", "random", "-n", "5", "--run-dir", "r", "--json"))
    with RunStore.open(tmp_path / "r"):  # this process holds the run
        p = run_cli("resume", "r", "--budget", "9")
        assert p.returncode == 4 and "r is in use by process" in p.stderr
    out = _json(run_cli("resume", "r", "--budget", "9", "--json"))
    assert out["evaluations"] == 9


def test_resume_of_a_finished_run_changes_nothing(run_cli, tmp_path):
    first = _json(run_cli("search", "-s", "regevo", "-n", "20", "--run-dir", "r", "--json"))
    db = tmp_path / "r" / "run.db"
    before = sqlite3.connect(db).execute("SELECT * FROM candidates").fetchall()
    second = _json(run_cli("resume", "r", "--json"))
    assert second["best"] == first["best"]
    assert sqlite3.connect(db).execute("SELECT * FROM candidates").fetchall() == before
