"""Space descriptions, genotype handling, and users' own benchmark files (good and malformed)."""

import json

import jsonschema
import numpy as np
import pytest
import yaml

from fairnad.errors import ConfigError
from fairnad.evaluate.tabular import load_benchmark, load_user_benchmark

from conftest import ROOT

EX = ROOT / "docs" / "examples"


def test_genotype_round_trip_and_labels():
    sp = load_benchmark("channel-bench-resnet").space
    g = "4344424"
    assert sp.format(sp.parse(g)) == g
    labels = sp.labels(g)
    assert labels == [256, 192, 256, 512, 512, 256, 512]
    assert sp.from_labels(labels) == g
    assert sp.from_labels([256.0, "192", 256, 512, 512, 256, 512]) == g  # tolerant of 256.0 and "192"


@pytest.mark.parametrize(
    "bad,msg",
    [
        ([64, 64, 64, 128, 128, 128], "expected a list of 7"),
        ([64, 64, 64, 128, 128, 128, 100], "channels[6]: 100 is not one of 128, 256, 384, 512"),
        ("64,64", "expected a list of 7"),
    ],
)
def test_from_labels_says_what_is_wrong(bad, msg):
    sp = load_benchmark("channel-bench-resnet").space
    with pytest.raises(ValueError, match=None) as e:
        sp.from_labels(bad)
    assert msg in str(e.value)


def test_parse_rejects_bad_genotypes():
    sp = load_benchmark("nas-bench-macro").space
    with pytest.raises(ValueError, match="layer4 has no option '7'"):
        sp.parse("00700000")
    with pytest.raises(ValueError, match="has 3 positions, the space has 8"):
        sp.parse("000")


def test_mutation_changes_exactly_one_position():
    sp = load_benchmark("nb201-cifar10").space
    rng = np.random.default_rng(0)
    g = "012340"
    for _ in range(200):
        child = sp.mutate(g, rng)
        assert sum(a != b for a, b in zip(g, child)) == 1
    assert len(sp.neighbours(g)) == 6 * 4


def test_answer_schema_accepts_exactly_the_space():
    sp = load_benchmark("channel-bench-mobilenet").space
    schema = sp.answer_schema()
    jsonschema.validate({"architecture": sp.labels("1234123"), "rationale": "ok"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"architecture": [32, 192, 192, 192, 64, 384, 999], "rationale": "x"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"architecture": [32, 192], "rationale": "x"}, schema)


def test_user_benchmark_csv_and_json(tmp_path):
    b = load_user_benchmark(EX / "toy-table.csv", EX / "toy-space.yaml")
    assert len(b) == 18 and b.space.size == 18
    m = b.lookup("b33")
    assert m["accuracy"] > m["test_accuracy"]  # searched on val, reported test
    assert m["rank"] == 1 + int(np.sum(b.columns["test_acc"] > m["test_accuracy"]))
    # the same table as JSON, with a list-valued column flattened to acc_1..acc_2
    rows = {r.split(",")[0]: r.split(",") for r in (EX / "toy-table.csv").read_text().split()[1:]}
    table = {g: {"val_acc": float(v[1]), "test_acc": float(v[2]), "params": int(v[3]), "acc": [1, 2]}
             for g, v in rows.items()}  # fmt: skip
    (tmp_path / "t.json").write_text(json.dumps(table))
    bj = load_user_benchmark(tmp_path / "t.json", EX / "toy-space.yaml")
    assert bj.lookup("b33")["accuracy"] == m["accuracy"]
    assert bj.row("a11")["acc_2"] == 2


def _space(tmp_path, **change):
    data = yaml.safe_load((EX / "toy-space.yaml").read_text())
    data.update(change)
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(
    "table,expected",
    [
        ("genotype,val_acc,test_acc\na11,80,79\nz11,81,80\n", "(line 3): genotype 'z11': stage1_kernel has no option 'z'"),
        ("genotype,val_acc,test_acc,params\na11,80,79,1\na12,eighty,79,1\n",
         "entry 'a12', column 'val_acc': 'eighty' is not a number"),
        ("genotype,test_acc,params\na11,80,1\n", "no column 'val_acc' (metrics.search in"),
        ("genotype,val_acc,test_acc\na11,80,79\n", "no column 'params' (metrics.params in"),
        ("genotype,val_acc,test_acc,params\na11,,79,1\n", "entry 'a11' has no value for 'val_acc'"),
        ("arch,val_acc\na11,80\n", "needs a 'genotype' column"),
        ("genotype,val_acc\n", "the table is empty"),
    ],
)
def test_malformed_csv_tables(tmp_path, table, expected):
    p = tmp_path / "t.csv"
    p.write_text(table)
    with pytest.raises(ConfigError) as e:
        load_user_benchmark(p, EX / "toy-space.yaml")
    assert expected in str(e.value) and str(p) in str(e.value)


def test_malformed_json_table(tmp_path):
    p = tmp_path / "t.json"
    p.write_text('{"a11": {"val_acc": 80,}')
    with pytest.raises(ConfigError, match=r"t.json: not valid JSON \(line 1"):
        load_user_benchmark(p, EX / "toy-space.yaml")
    p.write_text('[1, 2]')
    with pytest.raises(ConfigError, match="expected a JSON object mapping each genotype"):
        load_user_benchmark(p, EX / "toy-space.yaml")
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ConfigError, match="t.json"):
        load_user_benchmark(p, EX / "toy-space.yaml")
    row = '{"val_acc": 80, "test_acc": 79, "params": 1}'
    p.write_text(f'{{"a11": {row}, "a12": {row}, "a11": {row}}}')  # json would keep the last a11 silently
    with pytest.raises(ConfigError, match="t.json: key 'a11' appears twice in one object"):
        load_user_benchmark(p, EX / "toy-space.yaml")


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"dimensions": [{"name": "x", "choices": "nope"}]}, "choices 'nope' is not one of"),
        ({"choices": {"kernel": []}}, "choices.kernel is empty"),
        ({"metrics": {"report": "test_acc"}}, "metrics.search: Field required"),
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
        ({"choices": {"kernel": [{"code": "ab", "label": 3, "name": "x"}]}}, "need a `separator`"),
    ],
)
def test_malformed_space_files(tmp_path, change, expected):
    p = _space(tmp_path, **change)
    with pytest.raises(ConfigError) as e:
        load_user_benchmark(EX / "toy-table.csv", p)
    assert expected in str(e.value) and "space.yaml" in str(e.value)


def test_space_file_not_yaml_or_missing(tmp_path):
    p = tmp_path / "space.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"space.yaml: line \d+ not valid YAML"):
        load_user_benchmark(EX / "toy-table.csv", p)
    with pytest.raises(ConfigError, match="nothere.yaml: space file not found"):
        load_user_benchmark(EX / "toy-table.csv", tmp_path / "nothere.yaml")
    with pytest.raises(ConfigError, match="benchmark file not found"):
        load_user_benchmark(tmp_path / "none.csv", EX / "toy-space.yaml")


def test_unknown_builtin_benchmark():
    with pytest.raises(ConfigError, match="unknown benchmark 'nas-bench-999'; built-in ones: nas-bench-macro"):
        load_benchmark("nas-bench-999")


def _space_calls() -> set[str]:
    """The attributes the search and the lifecycle read on a space (`space.X`, `study.space.X`, ...)."""
    import ast

    names = set()
    for f in [*(ROOT / "fairnad" / "search").glob("*.py"), ROOT / "fairnad" / "lifecycle.py"]:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Attribute):
                v = node.value
                if (isinstance(v, ast.Name) and v.id == "space") or (isinstance(v, ast.Attribute) and v.attr == "space"):
                    names.add(node.attr)
    return names


def test_the_space_protocols_hold_what_the_search_calls():
    """Problem.space is a Space (what the Study and every strategy call), a TableSpace on a table
    (what the strategies of tabular problems call besides); each implementation is checked against
    its protocol, and a tabular problem refuses a space without positions."""
    from fairnad.evaluate.tabular import TabularEvaluator
    from fairnad.problem import Problem, Space, TableSpace
    from fairnad.space.code import CodeSpace

    members = {n for n in dir(TableSpace) if not n.startswith("_")} | set(TableSpace.__annotations__)
    assert _space_calls() <= members, _space_calls() - members
    assert {"is_valid", "parse", "key", "describe"} <= {n for n in dir(Space) if not n.startswith("_")}
    bench = load_benchmark("nb201-cifar10")
    assert isinstance(bench.space, TableSpace)
    assert isinstance(CodeSpace("mnist1d"), Space) and not isinstance(CodeSpace("mnist1d"), TableSpace)
    with pytest.raises(ValueError, match="no code"):
        CodeSpace("mnist1d").parse("  ")
    with pytest.raises(TypeError, match="TableSpace"):
        Problem(kind="tabular", space=CodeSpace("mnist1d"), evaluator=TabularEvaluator(bench), dataset="cifar10")
