"""The LLM layer against the real embedded server, a dead port, and a scripted faulty server."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fairnad.evaluate.tabular import load_benchmark
from fairnad.llm import (
    Completion,
    LLMBudgetExceeded,
    LLMOutputError,
    LLMUnavailable,
    OpenAICompatible,
    RecordingLLM,
    ReplayBackend,
    ReplayExhausted,
    ReplayMismatch,
    Usage,
)
from fairnad.llm.embedded import EMBEDDED_TIMEOUT_S
from fairnad.llm.structured import parse_json, validate

from conftest import ScriptedLLM


@pytest.mark.parametrize(
    "text,value",
    [
        ('{"a": 1}', {"a": 1}),
        ('Sure! ```json\n{"a": [1, 2]}\n``` hope it helps', {"a": [1, 2]}),
        ('{"a": [1, 2], "r": "cut off mid-sent', {"a": [1, 2], "r": "cut off mid-sent"}),
        ('{"a": [1, 2,', {"a": [1, 2]}),
        ('{"a": 1,}', {"a": 1}),
        ('{"r": "line one\nline two"}', {"r": "line one\nline two"}),
        # a trailing-comma fix must not edit text inside strings (the hand-written repair did)
        ('{"r": "a, }", "b": [1, 2,],}', {"r": "a, }", "b": [1, 2]}),
        ("{'a': 1, b: 'two'}", {"a": 1, "b": "two"}),  # single quotes, a bare key
        ('{"a": 1} and then {"a": 2}', {"a": 1}),  # the first value is the answer
        ('{"a": [1, 2} trailing', {"a": [1, 2]}),
        ('1. I pick {"a": 3}', {"a": 3}),  # a number or word opening the prose is not the answer
        ('"A" is best: {"a": 4}', {"a": 4}),
    ],
)
def test_parse_json_repairs(text, value):
    assert parse_json(text) == value


def test_parse_json_gives_up_clearly():
    with pytest.raises(ValueError, match="no JSON value"):
        parse_json("I would use more layers.")


@pytest.mark.llm
def test_schema_output_from_the_embedded_server(embedded_llm):
    space = load_benchmark("channel-bench-resnet").space
    schema = space.answer_schema(120)
    msgs = [{"role": "user", "content": "Pick 7 channel numbers for a ResNet as JSON."}]
    out = embedded_llm.complete(msgs, temperature=1.0, schema=schema, seed=3, max_tokens=120)
    assert validate(out.parsed, schema) is None
    assert space.is_valid(space.from_labels(out.parsed["architecture"]))
    assert out.usage.tokens_in > 10 and out.usage.tokens_out > 5 and out.latency > 0
    again = embedded_llm.complete(msgs, temperature=1.0, schema=schema, seed=3, max_tokens=120)
    assert again.text == out.text  # a seed makes sampling reproducible on this server


@pytest.mark.llm
def test_auto_mode_falls_back_to_what_the_server_supports(embedded_server):
    # llama-cpp-python refuses response_format json_schema; auto must find json_object + schema.
    client = OpenAICompatible(embedded_server.base_url, max_retries=0, structured="auto")
    assert client.model == embedded_server.alias  # discovered from /v1/models
    schema = {"type": "object", "properties": {"n": {"enum": [1, 2, 3]}}, "required": ["n"]}
    out = client.complete([{"role": "user", "content": "Pick a number."}], schema=schema, max_tokens=20)
    assert out.parsed["n"] in (1, 2, 3)
    assert client._modes[0] == "json_object_schema"


@pytest.mark.llm
def test_alternating_prompts_resume_from_the_servers_prompt_cache(embedded_server, embedded_llm):
    # Two kinds of prompt take turns (FairNAD's idea prompt, then its agent's): without the server's
    # prompt-state cache each turn evaluates the whole shared problem text again.
    problem = " ".join(f"Position {i} picks the kernel size of block {i} from 3, 5 or 7." for i in range(60))
    log = embedded_server.log_path
    start = log.stat().st_size
    for turn in range(2):
        for system in ("Answer with one architecture.", "You are an agent with a tool."):
            embedded_llm.complete([{"role": "system", "content": system},
                                   {"role": "user", "content": f"{problem}\nTurn {turn}."}], max_tokens=4)  # fmt: skip
    said = log.read_bytes()[start:].decode(errors="replace")
    # the second turn of each prompt resumes from a cached state (the first turn of each misses)
    assert said.count("Llama._create_completion: cache hit") >= 2, said[-2000:]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dead_port_gives_a_clear_error():
    port = _free_port()
    client = OpenAICompatible(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, timeout=5)
    with pytest.raises(LLMUnavailable) as e:
        client.complete([{"role": "user", "content": "hi"}])
    assert f"http://127.0.0.1:{port}/v1" in str(e.value) and "is the server running" in str(e.value)


class _Flaky(BaseHTTPRequestHandler):
    """Answers 429, then 500, then a valid chat completion."""

    codes = [429, 500]
    seen = 0

    def do_POST(self):
        type(self).seen += 1
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.codes:
            code = self.codes.pop(0)
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("retry-after-ms", "10")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "busy"}}')
            return
        body = {
            "id": "x", "object": "chat.completion", "created": 0, "model": "flaky",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": '{"n": 2}'}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }  # fmt: skip
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def test_retries_on_429_and_500_then_succeeds():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        client = OpenAICompatible(f"http://127.0.0.1:{server.server_port}/v1", "flaky", max_retries=3,
                                  structured="prompt")  # fmt: skip
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        out = client.complete([{"role": "user", "content": "n?"}], schema=schema)
        assert out.parsed == {"n": 2} and out.usage.tokens_in == 7
        assert _Flaky.seen == 3
    finally:
        server.shutdown()


def test_recorder_caps_calls_and_records_everything():
    calls = []
    llm = RecordingLLM(ScriptedLLM(["a", "b", "c"]), sink=calls.append, max_calls=2)
    llm.complete([{"role": "user", "content": "1"}], purpose="t")
    llm.complete([{"role": "user", "content": "2"}], purpose="t")
    with pytest.raises(LLMBudgetExceeded, match="cap of 2 LLM calls"):
        llm.complete([{"role": "user", "content": "3"}])
    assert [c["text"] for c in calls] == ["a", "b"]
    assert calls[0]["messages"] == [{"role": "user", "content": "1"}] and calls[0]["tokens_in"] == 10


def test_recorder_serves_its_prefix_then_goes_live():
    recorded = []
    first = RecordingLLM(ScriptedLLM(["a", "b"]), sink=recorded.append)
    first.complete([{"role": "user", "content": "1"}])
    first.complete([{"role": "user", "content": "2"}])
    live = ScriptedLLM(["c"])
    second = RecordingLLM(live, recorded=recorded)
    assert second.complete([{"role": "user", "content": "1"}]).text == "a"
    assert second.complete([{"role": "user", "content": "2"}]).text == "b"
    assert live.requests == []  # nothing re-asked
    assert second.complete([{"role": "user", "content": "3"}]).text == "c"
    with pytest.raises(ReplayExhausted, match="differs from call 1"):
        RecordingLLM(None, recorded=recorded).complete([{"role": "user", "content": "changed"}])
    # a replay of a run or build that recorded nothing says what to do instead
    with pytest.raises(ReplayExhausted, match="runs/k recorded no LLM calls, so there is nothing to replay; run with --llm"):
        RecordingLLM(None, source="runs/k").complete([{"role": "user", "content": "1"}])


def test_replay_backend_refuses_to_diverge():
    recorded = []
    RecordingLLM(ScriptedLLM(["a"]), sink=recorded.append).complete([{"role": "user", "content": "1"}])
    rb = ReplayBackend(recorded, source="runs/x")
    with pytest.raises(ReplayExhausted, match="differs from the one runs/x recorded"):
        rb.complete([{"role": "user", "content": "other"}])
    rb = ReplayBackend(recorded, source="runs/x")
    assert rb.complete([{"role": "user", "content": "1"}]).text == "a"
    with pytest.raises(ReplayExhausted, match="recorded 1 LLM calls and this run asks for more"):
        rb.complete([{"role": "user", "content": "1"}])


class _Answers:
    """Answers in order: a string, or an exception to raise (a failed answer, a server that is down)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.asked = 0

    def complete(self, messages, **kw):
        self.asked += 1
        a = self.answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return Completion(text=a, usage=Usage(10, 5), model="scripted")


def _ask(llm, content):
    """(text, or the error's class and message)."""
    try:
        return llm.complete([{"role": "user", "content": content}], purpose="t").text
    except (LLMOutputError, LLMUnavailable) as err:
        return type(err).__name__, str(err)


def _record(answers, asks):
    stored = []
    sink = lambda rec: stored.append({**rec, "seq": len(stored) + 1}) or len(stored)  # noqa: E731
    llm = RecordingLLM(_Answers(answers), sink=sink)
    got = [_ask(llm, q) for q in asks]
    return stored, got, llm.trail


def test_a_failed_answer_is_replayed_in_its_place_and_a_pause_is_asked_again():
    bad = LLMOutputError("m gave no schema-valid JSON after 3 tries (cut off)")
    asks = ["1", "2", "3", "3", "4"]
    stored, got, trail = _record(["a", bad, LLMUnavailable("down"), "c", bad], asks)
    assert got == ["a", ("LLMOutputError", str(bad)), ("LLMUnavailable", "down"), "c", ("LLMOutputError", str(bad))]
    assert [r["error_class"] for r in stored] == [None, "LLMOutputError", "LLMUnavailable", None, "LLMOutputError"]
    assert trail == [1, 4]  # failed answers made no proposal; nor did the pause
    # a resume: the run asks again what it asked, minus the call that paused it; nothing goes live
    live = _Answers([])
    again = RecordingLLM(live, recorded=stored)
    assert [_ask(again, q) for q in ["1", "2", "3", "4"]] == [got[0], got[1], got[3], got[4]]
    assert live.asked == 0 and again.trail == [1, 4] and again.stats()["replayed"] == 4
    # `--llm replay:RUN`: the same answers and errors, recorded again with their class
    copy = []
    rb = RecordingLLM(ReplayBackend(stored, source="runs/x"), sink=lambda rec: copy.append(rec) or len(copy))
    assert [_ask(rb, q) for q in ["1", "2", "3", "4"]] == [got[0], got[1], got[3], got[4]]
    assert [(r["text"], r["error"], r["error_class"]) for r in copy] == [
        (r["text"], r["error"], r["error_class"]) for r in stored if r["error_class"] != "LLMUnavailable"]
    # a request that differs from the record at its place is a mismatch, not a pause
    with pytest.raises(ReplayMismatch, match=r"call 2 differs from call 2 .*changed since it was recorded \(v1\)"):
        r = RecordingLLM(live, recorded=stored, note=" (v1)")
        r.complete([{"role": "user", "content": "1"}])
        r.complete([{"role": "user", "content": "other"}])


def test_failed_answers_recorded_before_their_class_was_stored():
    bad = LLMOutputError("m gave no schema-valid JSON after 3 tries (cut off)")
    stored, got, _ = _record(["a", bad, "c"], ["1", "2", "3"])
    old = [{**r, "error_class": None} for r in stored]  # (an older run: the class only in the text)
    replay = RecordingLLM(None, recorded=old)
    assert [_ask(replay, q) for q in ["1", "2", "3"]] == got
    # an older resume asked the failed request again (it left failed answers out): the re-ask is its answer
    reasked = [old[0], old[1], {**old[2], "key": old[1]["key"], "seq": 3}]
    replay = RecordingLLM(None, recorded=reasked)
    assert [_ask(replay, q) for q in ["1", "2"]] == ["a", "c"]


class _Trainable:
    """A backend that can be 'trained': its prompt is a number, saved to and loaded from a file."""

    trainable = True

    def __init__(self):
        self.prompt = 0
        self.tuned = 0

    def complete(self, messages, **kw):
        return Completion(text=f"prompt {self.prompt}")

    def tune_prompt(self, texts, *, steps, seed):
        self.tuned += 1
        self.prompt += steps
        return {"texts": len(texts), "steps": steps, "loss_before": 1.0, "loss_after": 0.5}

    def save_prompt(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(self.prompt))

    def load_prompt(self, path):
        self.prompt = int(path.read_text())
        return True


def test_soft_prompt_tunings_are_recorded_replayed_and_loaded_before_going_live(tmp_path):
    calls, events = [], []
    first = RecordingLLM(_Trainable(), sink=lambda rec: calls.append({**rec, "seq": len(calls) + 1}) or len(calls),
                         tuning_sink=events.append, folder=tmp_path / "a")  # fmt: skip
    first.complete([{"role": "user", "content": "1"}])
    row = first.tune_prompt(["x", "y"], steps=3, seed=0, purpose="t.tune")
    assert row["file"] == "soft_prompts/001.safetensors" and (tmp_path / "a" / row["file"]).read_text() == "3"
    assert first.complete([{"role": "user", "content": "2"}]).text == "prompt 3"
    assert events == [row] and row["purpose"] == "t.tune" and row["n"] == 1
    # resume: the call and the tuning are replayed (nothing trained), then the live backend gets the
    # recorded prompt before it answers
    live = _Trainable()
    again = RecordingLLM(live, recorded=calls, tunings=events, folder=tmp_path / "a")
    again.complete([{"role": "user", "content": "1"}])
    assert again.tune_prompt(["x", "y"], steps=3, seed=0)["loss_after"] == 0.5 and live.tuned == 0
    assert again.complete([{"role": "user", "content": "2"}]).text == "prompt 3" and live.prompt == 0  # recorded
    assert again.complete([{"role": "user", "content": "3"}]).text == "prompt 3"  # live, with the prompt loaded
    assert again.stats()["prompts_loaded"] == [row["file"]] and again.stats()["tunings_replayed"] == 1
    with pytest.raises(ReplayMismatch, match="soft prompt tuning 1 differs"):
        RecordingLLM(live, tunings=events, folder=tmp_path / "a").tune_prompt(["other"], steps=3, seed=0)
    # replay into another run: the tuning comes from the record, its prompt is copied into the new folder
    copied = []
    rb = RecordingLLM(ReplayBackend(calls, "a", tunings=events, folder=tmp_path / "a"), sink=lambda rec: 1,
                      tuning_sink=copied.append, folder=tmp_path / "b")  # fmt: skip
    rb.complete([{"role": "user", "content": "1"}])
    assert rb.tune_prompt(["x", "y"], steps=3, seed=0)["loss_after"] == 0.5
    assert (tmp_path / "b" / copied[0]["file"]).read_text() == "3" and copied[0]["key"] == events[0]["key"]


@pytest.mark.llm
def test_embedded_server_that_dies_is_restarted(tmp_path):
    import os
    import signal

    from fairnad.config import LLMConfig
    from fairnad.llm.provider import BackendProvider

    settings = LLMConfig(embedded_threads=1).model_dump()
    with BackendProvider(tmp_path) as provider:
        backend = provider.backend(settings)
        msgs = [{"role": "user", "content": "Say hi."}]
        assert backend.complete(msgs, max_tokens=5).text
        os.kill(backend.server._proc.pid, signal.SIGKILL)  # e.g. the OOM killer
        backend.server._proc.wait()
        assert backend.complete(msgs, max_tokens=5).text
        assert backend.restarts == 1 and backend.server.running
        assert backend.client._client.timeout == EMBEDDED_TIMEOUT_S  # the CPU model's own default
    assert not backend.server.running  # stopped with the provider


def test_a_request_waits_120_s_on_a_server_unless_llm_timeout_says_otherwise(tmp_path):
    from fairnad.config import LLMConfig
    from fairnad.llm.provider import BackendProvider

    server = dict(backend="openai", base_url="http://127.0.0.1:9/v1")
    with BackendProvider(tmp_path) as provider:
        assert provider.backend(LLMConfig(**server).model_dump())._client.timeout == 120
        assert provider.backend(LLMConfig(**server, timeout=30).model_dump())._client.timeout == 30


@pytest.mark.llm
def test_prompt_lookup_drafting_copies_as_well_as_plain_decoding(tmp_path):
    # Drafting only proposes tokens the model then checks, so the answer stays the model's own. The
    # answer copies its prompt, as a code child copies its parent, so drafts are taken. (Checked in
    # batches, logits can differ in the last bits: a near-tie may go the other way, hence no equality.)
    from fairnad.config import LLMConfig
    from fairnad.llm.provider import BackendProvider

    code = "\n".join(f"    x = self.conv{i}(x)  # block {i}" for i in range(12))
    msgs = [{"role": "user", "content": f"Copy this code exactly, then stop:\n```python\n{code}\n```"}]
    answers = []
    for draft in (0, 8):  # one server at a time
        with BackendProvider(tmp_path / f"draft{draft}") as provider:
            backend = provider.backend(LLMConfig(embedded_threads=1, embedded_draft=draft).model_dump())
            args = backend.server._proc.args
            assert ("--draft_model" in args) == (draft > 0)
            assert args[args.index("--logits_all") + 1] == ("true" if draft else "false")  # drafting needs them
            answers.append(backend.complete(msgs, max_tokens=200))
    plain, drafted = answers
    copied = [sum(f"self.conv{i}(x)" in out.text for i in range(12)) for out in (plain, drafted)]
    assert copied[1] >= copied[0] - 1 and copied[0] >= 10, (plain.text, drafted.text)
