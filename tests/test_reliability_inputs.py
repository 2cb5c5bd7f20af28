"""Bad input, fuzzed and broken (issue 8): configs, templates, benchmark and space files, genotypes,
LLM answers and model code, and broken papers. Each input either works or is refused with the
product's own error type, in one line that names the file or field; nothing crashes with a traceback.

Hypothesis runs derandomized with a bounded number of examples, so CI tries the same inputs every
time. How many inputs each target tried is counted; with FAIRNAD_RELIABILITY_OUT=path.json set, the
counts are written there (merged under "fuzz") for docs/reliability.md.
"""

from __future__ import annotations

import http.server
import json
import os
import queue
import re
import threading
import time
from collections import Counter
from pathlib import Path

import jsonschema
import numpy as np
import pymupdf
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairnad.config import SearchConfig, load_config
from fairnad.errors import ConfigError
from fairnad.evaluate.tabular import DATA, load_space_description, load_user_benchmark
from fairnad.ingest.pdf import PaperError, parse_pdf
from fairnad.knowledge.extract import naming_schema
from fairnad.knowledge.template import Template, load_template
from fairnad.llm import LLMOutputError, OpenAICompatible
from fairnad.llm.structured import check_answer, parse_json
from fairnad.search.base import create_strategy
from fairnad.space.code import CodeSpace, builder_defaults, code_key, extract_code, scale, shrink_to_budget
from fairnad.space.tabular import TabularSpace

from conftest import ROOT, record_reliability
from pdfs import make_encrypted, make_image_only, make_paper, make_truncated
from test_knowledge import MINI

TRIED: Counter = Counter()  # inputs tried per fuzz target


def fuzz(n: int):
    """Reproducible, bounded hypothesis settings (the same inputs on every run, no example database)."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _write_counts():
    yield
    record_reliability("fuzz", TRIED)


def one_line_naming(err: BaseException, *names) -> str:
    msg = str(err)
    assert "\n" not in msg and "\r" not in msg, f"not one line: {msg!r}"
    assert any(msg.startswith(str(n)) for n in names), f"does not name {names}: {msg!r}"
    return msg


# -- what YAML files are made of, including what trips YAML parsers ----------------------------
TRICKY = ["2021-13-45", "2021-02-30 25:61:00", "1e400", "9" * 5000, ".nan", "-.inf", "0o777", "0x1F", "~", "null",
          "yes", "'", '"', "{", "[", "]", "}", "&a [*a]", "*undefined", "!!binary /w==", "!!python/object:os.system",
          "!!set {a, b}", "<<: {budget: 3}", "\t", "\x00", "\ufeff", "- - -", "? complex key", "|", ">-", "%YAML 9.9",
          "---", "...", "[" * 3000, "{a: " * 400, "[/x]", "[bold]", "a\nb", "\u202e", "\\", "#", "𝔘𝔫𝔦"]  # fmt: skip

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=16), st.sampled_from(TRICKY),
)  # fmt: skip
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                      max_leaves=10)  # fmt: skip


def _keys(model) -> list[str]:
    out = []
    for name, f in model.model_fields.items():
        out.append(name)
        sub = getattr(f.annotation, "model_fields", None)
        if sub:
            out += [f"{name}.{k}" for k in sub]
    return out


CONFIG_KEYS = _keys(SearchConfig) + ["strategies.genius", "strategies.regevo.population", "strategies.fairnad.x"]


def _nest(flat: dict) -> dict:
    out: dict = {}
    for dotted, v in flat.items():
        cur = out
        *head, last = dotted.split(".")
        for k in head:
            cur = cur.setdefault(k, {}) if isinstance(cur.get(k, {}), dict) else {}
        cur[last] = v
    return out


def _mutated_text(base: str):
    """Texts made from a valid file: lines replaced, inserted or cut, tricky fragments spliced in."""

    @st.composite
    def build(draw):
        lines = base.splitlines()
        for _ in range(draw(st.integers(1, 4))):
            op = draw(st.sampled_from(["replace", "insert", "delete", "splice", "truncate"]))
            i = draw(st.integers(0, max(0, len(lines) - 1)))
            frag = draw(st.one_of(st.sampled_from(TRICKY), st.text(max_size=20)))
            if op == "replace" and lines:
                key = lines[i].split(":")[0]
                lines[i] = f"{key}: {frag}" if ":" in lines[i] else frag
            elif op == "insert":
                lines.insert(i, frag)
            elif op == "delete" and lines:
                del lines[i]
            elif op == "splice" and lines:
                j = draw(st.integers(0, len(lines[i])))
                lines[i] = lines[i][:j] + frag + lines[i][j:]
            elif op == "truncate":
                lines = lines[: i + 1]
        return "\n".join(lines) + "\n"

    return build()


GOOD_CONFIG = """benchmark: nb201-cifar10
strategy: regevo
budget: 50
seed: 0
fidelity: null
llm:
  backend: openai
  base_url: http://127.0.0.1:8000/v1
  timeout: 120
strategies:
  genius: {temperature: 1.0, max_retries: 1}
  regevo: {population: 10, sample: 3}
"""


def _config_property(path: Path) -> None:
    """What `fairnad search --config` does before it touches a run folder."""
    try:
        cfg = load_config(path)
    except ConfigError as err:
        one_line_naming(err, path)
        return
    json.dumps(cfg.model_dump(mode="json"))  # create_run stores it as JSON and YAML
    yaml.safe_dump(cfg.model_dump(mode="json"))
    try:
        create_strategy(cfg.strategy, cfg.strategies.get(cfg.strategy))
    except ConfigError as err:
        assert "\n" not in str(err)


@fuzz(250)
@given(flat=st.dictionaries(st.sampled_from(CONFIG_KEYS), values, max_size=6))
def test_fuzzed_config_values(tmp_path, flat):
    TRIED["config (values)"] += 1
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(_nest(flat), allow_unicode=True))
    _config_property(p)


@fuzz(250)
@given(text=st.one_of(_mutated_text(GOOD_CONFIG), st.text(max_size=200)))
def test_fuzzed_config_text(tmp_path, text):
    TRIED["config (text)"] += 1
    p = tmp_path / "c.yaml"
    p.write_bytes(text.encode("utf-8", "surrogatepass"))
    _config_property(p)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("budgett: 5\n", "budgett: Extra inputs are not permitted"),
        ("budget: 2021-13-45\n", "a value cannot be read (month must be in 1..12); quote it if it is text"),
        ("strategy: random\nstrategies: &x {a: *x}\n", "refers to a value that contains it"),
        ("a0: &a0 [1,1,1,1,1,1,1,1,1,1]\n" + "".join(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)),
         "expands to more than"),  # "a billion laughs": 10^9 values from nine short lines
        ("seed: 1\n" + "x: " + "[" * 3000 + "\n", "nested too deeply"),
        ('"a\\nb": 1\n', "a\\nb: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_bad_config_files_are_one_line_errors(tmp_path, text, expected):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert expected in one_line_naming(e.value, p)


@pytest.mark.slow
def test_cli_refuses_a_bad_config_in_one_line(run_cli, tmp_path):
    (tmp_path / "bad.yaml").write_text("strategy: random\nbudget: 0\n")
    p = run_cli("search", "--config", "bad.yaml")
    assert p.returncode == 2 and p.stderr == "error: bad.yaml: budget: Input should be greater than or equal to 1\n"
    (tmp_path / "date.yaml").write_text("strategy: random\nseed: 2024-02-30\n")
    p = run_cli("search", "--config", "date.yaml", "--json")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "date.yaml: a value cannot be read" in p.stderr
    assert json.loads(p.stdout)["kind"] == "ConfigError"
    assert not (tmp_path / "runs").exists()  # nothing was created for a refused config


def test_cli_error_text_is_not_read_as_markup(run_cli, tmp_path):
    (tmp_path / "m.yaml").write_text('"[/x]": 1\n')
    p = run_cli("search", "--config", "m.yaml")
    assert p.returncode == 2 and p.stderr == "error: m.yaml: [/x]: Extra inputs are not permitted\n"


def test_set_values_yaml_cannot_build_are_kept_as_text():
    cfg = load_config(None, sets=["strategies.genius.note=2021-13-45"])
    assert cfg.strategies["genius"]["note"] == "2021-13-45"


# -- templates ---------------------------------------------------------------------------------
TEMPLATE_KEYS = ["name", "description", "levels", "levels.0", "levels.0.id", "levels.0.name", "levels.0.categories",
                 "levels.0.categories.0.id", "levels.0.categories.0.examples", "levels.0.categories.0.description"]  # fmt: skip


@fuzz(200)
@given(text=st.one_of(_mutated_text(MINI), st.text(max_size=200)))
def test_fuzzed_templates(tmp_path, text):
    TRIED["template"] += 1
    p = tmp_path / "t.yaml"
    p.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        t = load_template(p)
    except ConfigError as err:
        one_line_naming(err, p)
        return
    assert isinstance(t, Template) and t.categories()


@fuzz(150)
@given(changes=st.dictionaries(st.sampled_from(TEMPLATE_KEYS), values, max_size=3))
def test_fuzzed_template_values(tmp_path, changes):
    TRIED["template (values)"] += 1
    data = yaml.safe_load(MINI)
    for dotted, v in changes.items():
        cur, *rest = dotted.split(".")
        node, parts = data, dotted.split(".")
        for k in parts[:-1]:
            node = node[int(k)] if isinstance(node, list) and k.isdigit() and int(k) < len(node) else (
                node.get(k) if isinstance(node, dict) else None)  # fmt: skip
            if node is None:
                break
        if isinstance(node, dict):
            node[parts[-1]] = v
        elif isinstance(node, list) and parts[-1].isdigit() and int(parts[-1]) < len(node):
            node[int(parts[-1])] = v
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        load_template(p)
    except ConfigError as err:
        one_line_naming(err, p)


# -- benchmark tables and space files ------------------------------------------------------------
TOY_SPACE = ROOT / "docs" / "examples" / "toy-space.yaml"
TOY_TABLE = ROOT / "docs" / "examples" / "toy-table.csv"
CELLS = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str), st.just(""),
                  st.sampled_from(["nan", "inf", "1e999", "9" * 400, "true", "85.3", "-", "N/A", "\x00", '"', ","]),
                  st.text(max_size=6))  # fmt: skip
GENOTYPES = st.one_of(st.text(alphabet="ab123q ", min_size=0, max_size=5), st.sampled_from(["a11", "b23", "a33"]))


def _bench_property(table: Path, space: Path) -> None:
    try:
        b = load_user_benchmark(table, space)
    except ConfigError as err:
        one_line_naming(err, table, space)
        return
    assert len(b) >= 1
    opt = b.optimum()
    assert opt["genotype"] in b.keys and np.isfinite(opt["test_accuracy"])
    for g in b.keys[:20]:
        m = b.lookup(g)
        assert np.isfinite(m["accuracy"]) and 1 <= m["rank"] <= len(b)
    assert np.isfinite(b.random_search_expectation(3)["mean"])


@fuzz(250)
@given(rows=st.lists(st.tuples(GENOTYPES, st.lists(CELLS, min_size=0, max_size=5)), max_size=8),
       header=st.sampled_from(["genotype,val_acc,test_acc,params", "\ufeffgenotype,val_acc,test_acc,params",
                               "val_acc,genotype,test_acc", "genotype,val_acc,test_acc,params,val_acc", "", "genotype"]),
       encoding=st.sampled_from(["utf-8", "latin-1", "utf-16"]))  # fmt: skip
def test_fuzzed_csv_tables(tmp_path, rows, header, encoding):
    TRIED["benchmark table (CSV)"] += 1
    text = "\n".join([header] + [",".join([g, *cells]) for g, cells in rows]) + "\n"
    p = tmp_path / "t.csv"
    p.write_bytes(text.encode(encoding, "replace"))
    _bench_property(p, TOY_SPACE)


JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                           max_leaves=6)  # fmt: skip


@fuzz(200)
@given(table=st.one_of(
    st.dictionaries(GENOTYPES, st.dictionaries(st.sampled_from(["val_acc", "test_acc", "params", "acc", ""]),
                                               JSON_VALUES, max_size=4), max_size=6),
    JSON_VALUES), raw=st.one_of(st.none(), st.sampled_from(["[" * 5000, '{"a11": {"val_acc": 1' + "0" * 5000 + "}}",
                                                              '{"a11": {"val_acc": NaN}}', "\xff\xfe", ""])))  # fmt: skip
def test_fuzzed_json_tables(tmp_path, table, raw):
    TRIED["benchmark table (JSON)"] += 1
    p = tmp_path / "t.json"
    p.write_bytes(raw.encode("latin-1") if raw is not None else json.dumps(table).encode())
    _bench_property(p, TOY_SPACE)


@fuzz(150)
@given(text=_mutated_text(TOY_SPACE.read_text()))
def test_fuzzed_space_files(tmp_path, text):
    TRIED["space file"] += 1
    p = tmp_path / "s.yaml"
    p.write_bytes(text.encode("utf-8", "surrogatepass"))
    _bench_property(TOY_TABLE, p)


def test_bad_tables_are_one_line_errors(tmp_path):
    cases = {
        "dup.csv": ("genotype,val_acc,test_acc,params\na11,1,1,1\na11,2,2,2\n", "(line 3): genotype 'a11' is already on line 2"),
        "extra.csv": ("genotype,val_acc,test_acc,params\na11,1,1,1,9\n", "(line 2): more values than the header line has columns"),
        "latin.csv": ("genotype,val_acc,test_acc,params\na11,1,1,caf\xe9\n", "not a UTF-8 text file"),
        "inf.csv": ("genotype,val_acc,test_acc,params\na11,inf,1,1\n", "entry 'a11', column 'val_acc': 'inf' is not a finite number"),
        "huge.csv": ("genotype,val_acc,test_acc,params\na11,1," + "9" * 400 + ",1\n", "is not a finite number"),
        "deep.json": ('{"a11": {"val_acc": ' + "[" * 5000 + "]" * 5000 + "}}", "nested too deeply"),
        "big.json": ('{"a11": {"val_acc": 1' + "0" * 400 + ', "test_acc": 1, "params": 1}}', "is not a finite number"),
        "noreport.csv": ("genotype,val_acc,test_acc,params\na11,1,,1\na12,2,2,2\n", "entry 'a11' has no value for 'test_acc'"),
    }  # fmt: skip
    for name, (text, expected) in cases.items():
        p = tmp_path / name
        p.write_bytes(text.encode("latin-1"))
        with pytest.raises(ConfigError) as e:
            load_user_benchmark(p, TOY_SPACE)
        assert expected in one_line_naming(e.value, p), name
    bom = tmp_path / "bom.csv"  # what spreadsheet programs write: a byte-order mark before the header
    bom.write_text("\ufeff" + TOY_TABLE.read_text())
    assert len(load_user_benchmark(bom, TOY_SPACE)) == len(load_user_benchmark(TOY_TABLE, TOY_SPACE))


# -- genotypes of every shipped space --------------------------------------------------------------
SPACES = {p.stem: TabularSpace(load_space_description(p)) for p in sorted((DATA / "spaces").glob("*.yaml"))}
SPACES["toy"] = load_user_benchmark(TOY_TABLE, TOY_SPACE).space


def _genotype_text(space: TabularSpace):
    codes = sorted({o.code for opts in space.options for o in opts})
    pieces = st.sampled_from(codes + [space.sep or "-", "", " ", "\x00", "é", "|"])
    near = st.lists(st.sampled_from(codes), min_size=max(0, space.ndim - 2), max_size=space.ndim + 2).map(space.sep.join)
    return st.one_of(st.text(max_size=3 * space.ndim), st.lists(pieces, max_size=2 * space.ndim + 2).map("".join), near)


@pytest.mark.parametrize("name", list(SPACES))
def test_fuzzed_genotypes(name):
    space = SPACES[name]

    @fuzz(300)
    @given(g=_genotype_text(space))
    def check(g):
        TRIED[f"genotype ({name})"] += 1
        try:
            idx = space.parse(g)
        except ValueError as err:
            assert not space.is_valid(g) and "\n" not in str(err)
            return
        assert space.is_valid(g) and space.format(idx) == g
        assert space.from_labels(space.labels(g)) == g and space.describe(g)
        assert len(space.neighbours(g)) == sum(len(o) - 1 for o in space.options)

    check()


# -- LLM answers: parse, repair, validate ---------------------------------------------------------
SCHEMAS = {f"answer:{n}": s.answer_schema(200) for n, s in SPACES.items()}
SCHEMAS["knowledge.name"] = naming_schema([1, 2, 3], ["operation/normalization", "operation/activation"])
SCHEMAS["consolidate.same"] = {"type": "object", "properties": {"same": {"type": "boolean"}}, "required": ["same"]}


def _valid_answer(name: str, draw) -> object:
    if name.startswith("answer:"):
        space = SPACES[name.split(":", 1)[1]]
        labels = [o.label for o in (opts[draw(st.integers(0, len(opts) - 1))] for opts in space.options)]
        return {"architecture": labels, "rationale": draw(st.text(max_size=30))}
    if name == "knowledge.name":
        return {"ideas": [{"n": n, "idea": draw(st.booleans()), "name": "batch normalization",
                           "category": draw(st.sampled_from(["operation/normalization", "operation/activation"])),
                           "description": draw(st.text(max_size=30))} for n in (1, 2, 3)]}  # fmt: skip
    return {"same": draw(st.booleans())}


@st.composite
def answers(draw, name):
    """Model answers around a valid one: prose, fences, truncation, trailing commas, junk, loops."""
    text = json.dumps(_valid_answer(name, draw), ensure_ascii=draw(st.booleans()))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["truncate", "fence", "prose", "comma", "delete", "insert", "replace_value"]))
        i = draw(st.integers(0, len(text)))
        if op == "truncate":
            text = text[:i]
        elif op == "fence":
            text = f"```json\n{text}\n```"
        elif op == "prose":
            text = draw(st.text(max_size=20)) + text + draw(st.text(max_size=20))
        elif op == "comma":
            text = re.sub(r"([}\]])", r",\1", text, count=1)
        elif op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 5)) :]
        elif op == "insert":
            text = text[:i] + draw(st.sampled_from(['"', "{", "}", "[", "]", ",", ":", "\\", "\n", "null"])) + text[i:]
        else:
            new = ": " + json.dumps(draw(JSON_VALUES))
            text = re.sub(r":\s*[^,}\]]+", lambda m: new, text, count=1)
    return text


LOOPS = st.sampled_from(["[" * 20000, "{" * 20000, '{"a":' * 5000, "```" * 100, '"\\' * 1000, "]" * 5000,
                         "[" * 900 + "]" * 900, json.dumps({"architecture": [[[]]] * 50})])  # fmt: skip


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_fuzzed_llm_answers(name):
    schema = SCHEMAS[name]
    space = SPACES.get(name.split(":", 1)[1]) if name.startswith("answer:") else None

    @fuzz(150)
    @given(text=st.one_of(answers(name), st.text(max_size=300), LOOPS))
    def check(text):
        TRIED[f"llm answer ({name})"] += 1
        try:
            parse_json(text)
        except ValueError as err:
            assert "\n" not in str(err)
        value, reason = check_answer(text, schema)
        assert isinstance(reason, str) and "\n" not in reason and len(reason) <= 400
        if not reason:
            jsonschema.validate(value, schema)
            if space is not None:  # a schema-valid answer always names a genotype
                assert space.is_valid(space.from_labels(value["architecture"]))
        elif space is not None and isinstance(value, dict):
            try:
                space.from_labels(value.get("architecture"))
            except ValueError as err:
                assert "\n" not in str(err)

    check()


class _FakeCompletions(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers each request with the next queued text."""

    answers: queue.Queue = queue.Queue()

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        text = self.answers.get_nowait() if not self.answers.empty() else ""
        body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "fuzz",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": text}}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def answer_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeCompletions)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_fuzzed_answers_through_the_repair_and_reask_loop(answer_server):
    """The real OpenAI-compatible backend, its repair and re-ask loop, over the wire: three fuzzed
    answers per request; the result is a schema-valid parse or LLMOutputError, never anything else."""
    llm = OpenAICompatible(answer_server, "fuzz", structured="prompt", max_retries=0, schema_retries=2)
    schema = SCHEMAS["answer:nb201"]

    @fuzz(60)
    @given(texts=st.lists(st.one_of(answers("answer:nb201"), st.text(max_size=100), LOOPS), min_size=3, max_size=3))
    def check(texts):
        TRIED["llm answer (over HTTP, repair + re-ask)"] += 1
        while not _FakeCompletions.answers.empty():
            _FakeCompletions.answers.get_nowait()
        for t in texts:
            _FakeCompletions.answers.put(t)
        try:
            out = llm.complete([{"role": "user", "content": "propose"}], schema=schema)
        except LLMOutputError as err:
            assert "\n" not in str(err) and "gave no schema-valid JSON after 3 tries" in str(err)
            return
        jsonschema.validate(out.parsed, schema)
        assert SPACES["nb201"].is_valid(SPACES["nb201"].from_labels(out.parsed["architecture"]))

    check()


# -- model code in LLM answers --------------------------------------------------------------------
GOOD_MODEL = (ROOT / "fairnad" / "space" / "reference").glob("*.py")
MODEL_SOURCE = next(p for p in sorted(GOOD_MODEL) if "build_model" in p.read_text()).read_text()
CODE_JUNK = st.sampled_from(["-" * 100000 + "1", "(" * 300 + ")" * 300, "def build_model(width=" + "-" * 50000 + "1): pass",
                             "x = 1\x00", "\udcff", "```python\n" * 50, "def build_model(", "\t\t\x0b"])  # fmt: skip


@st.composite
def code_answers(draw):
    src = MODEL_SOURCE
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(src)))
        op = draw(st.sampled_from(["cut", "insert", "fence", "prose", "junk"]))
        if op == "cut":
            src = src[:i]
        elif op == "insert":
            src = src[:i] + draw(st.text(max_size=10)) + src[i:]
        elif op == "fence":
            src = f"Here is the model:\n```python\n{src}\n```\nIt should work."
        elif op == "prose":
            src = draw(st.text(max_size=40)) + "\n" + src
        else:
            src = src[:i] + draw(CODE_JUNK) + src[i:]
    return src


def test_fuzzed_code_answers():
    space = CodeSpace("mnist1d")
    rng = np.random.default_rng(0)

    @fuzz(150)
    @given(text=st.one_of(code_answers(), st.text(max_size=300), CODE_JUNK))
    def check(text):
        TRIED["llm code answer"] += 1
        code = extract_code(text)
        assert code is None or isinstance(code, str)
        for src in filter(None, [code, text]):
            assert len(code_key(src)) == 20
            assert isinstance(builder_defaults(src), dict)
            for kind in ("up", "down", "tune"):
                out = scale(src, kind, rng)
                assert out is None or isinstance(out[0], str)
            shrink_to_budget(src, 2_000_000, 1_000_000)
            try:
                space.parse(src)
            except ValueError:
                assert not space.is_valid(src)
            space.describe(src)

    check()


# -- broken papers ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_pdf(tmp_path_factory):
    return make_paper(tmp_path_factory.mktemp("pdf") / "good.pdf")


@fuzz(60)
@given(ops=st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "zero", "truncate"]), st.floats(0, 1),
                              st.binary(min_size=1, max_size=64)), min_size=1, max_size=4))  # fmt: skip
def test_fuzzed_pdf_bytes(tmp_path, good_pdf, ops):
    TRIED["paper (PDF bytes)"] += 1
    data = bytearray(good_pdf.read_bytes())
    for op, where, junk in ops:
        i = int(where * len(data))
        if op == "flip":
            data[i : i + len(junk)] = junk
        elif op == "cut":
            del data[i : i + 8 * len(junk)]
        elif op == "insert":
            data[i:i] = junk
        elif op == "zero":
            data[i : i + 8 * len(junk)] = b"\0" * (8 * len(junk))
        else:
            del data[i:]
    p = tmp_path / "m.pdf"
    p.write_bytes(bytes(data))
    try:
        doc = parse_pdf(p)
    except PaperError as err:
        msg = one_line_naming(err, p)
        assert "report this file" not in msg, f"an internal error, not a reason: {msg}"
        return
    assert doc.pages and all(isinstance(pg.text, str) for pg in doc.pages)


def _pages(path: Path, n: int) -> Path:
    doc = pymupdf.open()
    for i in range(n):
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(72, 72, 540, 720), f"{i + 1} Section\n" + "Residual connections let gradients "
                            "flow through many layers, so that very deep models can be trained well. " * 12, fontsize=10)  # fmt: skip
    doc.save(path)
    doc.close()
    return path


def _cover_then_text(path: Path, good: Path) -> Path:
    """A scanned cover page (an image, no text) before a normal paper."""
    image = pymupdf.open(make_image_only(path.with_name("cover.pdf")))
    doc = pymupdf.open(good)
    doc.insert_pdf(image, start_at=0)
    doc.save(path)
    return path


def test_a_500_page_paper_is_read_within_the_page_cap_quickly(tmp_path):
    big = _pages(tmp_path / "huge.pdf", 500)
    t = time.perf_counter()
    doc = parse_pdf(big)  # the default cap, 200 pages
    seconds = time.perf_counter() - t
    assert len(doc.pages) == 200 and doc.skipped_pages == 300 and doc.pages[-1].number == 200
    assert seconds < 10, f"{seconds:.1f}s for 200 text pages"  # ~0.3 s here: pages without drawings skip the table finder
    assert len(parse_pdf(big, max_pages=5).pages) == 5


def test_a_scanned_cover_page_before_the_text_is_fine(tmp_path, good_pdf):
    doc = parse_pdf(_cover_then_text(tmp_path / "cover-first.pdf", good_pdf))
    assert len(doc.pages) == 3 and doc.pages[0].text == ""
    assert doc.title == "Residual Blocks with Separable Convolutions"


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(200), "not a PDF (it starts like binary data"),
        (b"PK\x03\x04" + bytes(range(256)) * 4, "not a PDF (it starts like binary data"),
        (b"%PDF-1.7\n%%EOF\n", "damaged or truncated PDF"),
        (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
         b"trailer<</Root 1 0 R>>\n%%EOF\n", "damaged or truncated PDF"),
        (b"Just some notes, saved with the wrong extension.\n" * 30, "not a PDF (it starts like text"),
    ],
)  # fmt: skip
def test_more_files_that_are_not_papers(tmp_path, data, reason):
    p = tmp_path / "x.pdf"
    p.write_bytes(data)
    with pytest.raises(PaperError) as e:
        parse_pdf(p)
    assert reason in one_line_naming(e.value, p)


@pytest.mark.slow
def test_knowledge_build_over_good_and_broken_papers(run_cli, tmp_path, good_pdf):
    """`fairnad knowledge build` over a folder of good and broken papers, answered by the replay
    backend from a recorded build (no LLM server): each broken paper is one line and skipped, the
    good ones are read, and the tree is written."""
    from fairnad.knowledge.build import BuildOptions, process_papers
    from fairnad.knowledge.embed import Embedder
    from fairnad.llm import RecordingLLM
    from fairnad.store import BuildStore

    from conftest import NamingLLM
    from test_knowledge import _namer

    papers = tmp_path / "papers"
    papers.mkdir()
    good = papers / "residual.pdf"
    good.write_bytes(good_pdf.read_bytes())
    _pages(papers / "long.pdf", 500)
    broken = {
        "encrypted.pdf": "encrypted (it needs a password)",
        "truncated.pdf": "damaged or truncated PDF",
        "empty.pdf": "empty file (0 bytes)",
        "scanned.pdf": "scanned pages with no text layer; run OCR",
        "page.pdf": "not a PDF (it starts like HTML",
    }
    make_encrypted(papers / "encrypted.pdf")
    make_truncated(papers / "truncated.pdf", good)
    (papers / "empty.pdf").write_bytes(b"")
    make_image_only(papers / "scanned.pdf")
    (papers / "page.pdf").write_text("<html><body>404 Not Found</body></html>")
    with open(os.fsencode(papers) + b"/caf\xe9.pdf", "wb") as f:  # a Latin-1 file name: not valid UTF-8
        f.write(b"a text file, not a paper\n" * 20)
    (tmp_path / "mini.yaml").write_text(MINI)
    opts = BuildOptions(max_pages=20, candidates=12)

    # the answers: one build of the two good papers with a scripted model, recorded in its build.db
    rec = BuildStore.create(tmp_path / "recorded", {})
    process_papers([good, papers / "long.pdf"], load_template(tmp_path / "mini.yaml"), rec,
                   RecordingLLM(NamingLLM(_namer), sink=rec.add_llm_call), opts, embedder=Embedder())  # fmt: skip
    recorded = len(rec.llm_calls())
    rec.close()

    p = run_cli("knowledge", "build", "papers", "--template", "mini.yaml", "--out", "knowledge/t.json", "--max-pages",
                "20", "--candidates", "12", "--llm", "replay:recorded")  # fmt: skip
    assert p.returncode == 0, p.stderr
    out = " ".join(p.stdout.split())
    assert recorded >= 1 and "papers 2 read, 6 skipped" in out
    assert f"LLM 0 calls ({recorded} from cache)" in out  # all answers recorded
    # one "skipped:" message per broken paper, the Latin-1 name (stored as U+FFFD) included
    messages = [" ".join(m.split()) for m in p.stderr.split("skipped: ")[1:]]
    assert len(messages) == len(broken) + 1
    assert any(m.startswith("papers/caf\ufffd.pdf: not a PDF") for m in messages), messages
    for name, why in broken.items():
        assert any(m.startswith(f"papers/{name}: {why}") for m in messages), (name, messages)
    assert (tmp_path / "knowledge" / "t.json").is_file()
    with BuildStore.open(tmp_path / "runs" / "knowledge-t", readonly=True) as st_:
        rows = {r["name"]: r for r in st_.papers()}
    assert {n: r["pages"] for n, r in rows.items() if r["status"] == "done"} == {"residual": 2, "long": 20}  # the cap
    latin = rows["caf\ufffd"]  # the Latin-1 file name, as it can be stored
    assert latin["status"] == "skipped" and "not a PDF (it starts like text" in latin["error"]
