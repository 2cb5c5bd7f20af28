"""LLM-driven iterative mutation in tabular spaces: a qwen-agent function-calling agent whose tools
are backed by fairnad (the table). (In open spaces the sandbox drives the turns itself: a small
model rarely calls tools; see FairNAD._iterative.)

Every model call of the agent goes through fairnad's LLM layer (recorded, capped, replayable):
qwen-agent is given a chat model that forwards to it, and qwen-agent's prompt-based function
calling ("nous" format) works with any OpenAI-compatible server, the embedded one included.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict  # JSON schema of the arguments
    fn: Callable[[dict], str]


@dataclass
class AgentRun:
    turns: int = 0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    final_text: str = ""
    error: str | None = None
    abort: BaseException | None = None  # a failure that is not the candidate's: re-raised to the run


# Failures that are not the child's (the LLM is down, a cap is reached, a replay ran out, the store
# failed): they stop the agent and reach the run, which pauses; they are never a child's failure.
def _passes_through(err: BaseException) -> bool:
    from fairnad.errors import FairnadError
    from fairnad.llm import LLMBudgetExceeded, LLMUnavailable, ReplayExhausted

    return isinstance(err, (LLMUnavailable, LLMBudgetExceeded, ReplayExhausted, FairnadError, KeyboardInterrupt))


def _qwen_agent():
    os.environ.setdefault("QWEN_AGENT_DEFAULT_WORKSPACE", os.path.join(tempfile.gettempdir(), "fairnad-qwen-agent"))
    import logging

    from qwen_agent.agents import FnCallAgent
    from qwen_agent.llm.function_calling import BaseFnCallModel
    from qwen_agent.llm.schema import ASSISTANT, Message
    from qwen_agent.tools.base import BaseTool

    # after the import: qwen-agent sets its logger to INFO when first imported; its lines would garble our progress bar
    logging.getLogger("qwen_agent_logger").setLevel(logging.WARNING)

    return FnCallAgent, BaseFnCallModel, Message, ASSISTANT, BaseTool


def as_tool_call(text: str, names: set[str]) -> str:
    """The answer with a tool call written as a bare JSON object ({"name": ..., "arguments": ...},
    often in a ```json fence: how Qwen2.5-Coder-1.5B writes half of its calls) put inside the
    <tool_call> tags qwen-agent reads; any other answer unchanged."""
    if "<tool_call>" in text or '"name"' not in text:
        return text
    from fairnad.llm.structured import parse_json

    try:
        call = parse_json(text)
    except ValueError:
        return text
    if not (isinstance(call, dict) and call.get("name") in names and isinstance(call.get("arguments"), dict)):
        return text
    return f"<tool_call>\n{json.dumps({'name': call['name'], 'arguments': call['arguments']})}\n</tool_call>"


def run_agent(
    llm, *, system: str, task: str, tools: list[Tool], max_turns: int = 4, temperature: float = 0.7,
    max_tokens: int = 1200, seed: int = 0, done: Callable[[], bool] = lambda: False, nudge: str | None = None,
) -> AgentRun:  # fmt: skip
    """Let the agent work on `task` with `tools` until `done()` or `max_turns` model calls. An answer
    that calls no tool ends qwen-agent's loop; with `nudge`, the agent is told it and goes on while
    turns are left (a small model often answers its first turn with a plan in prose)."""
    FnCallAgent, BaseFnCallModel, Message, ASSISTANT, BaseTool = _qwen_agent()
    run = AgentRun()
    names = {t.name for t in tools}

    class RecordedChat(BaseFnCallModel):
        def _chat_no_stream(self, messages, generate_cfg):
            if run.turns >= max_turns or done() or run.abort is not None:
                return [Message(role=ASSISTANT, content="Finished.")]
            run.turns += 1
            msgs = []
            for m in messages:
                content = m.content if isinstance(m.content, str) else "".join(
                    getattr(c, "text", "") or "" for c in (m.content or []))  # fmt: skip
                msgs.append({"role": m.role if m.role in ("system", "user", "assistant") else "user", "content": content})
            stop = [s for s in (generate_cfg.get("stop") or []) if s]
            out = llm.complete(msgs, temperature=temperature, max_tokens=max_tokens, seed=seed + run.turns,
                               purpose="fairnad.iterative", stop=stop or None)  # fmt: skip
            run.final_text = out.text
            return [Message(role=ASSISTANT, content=as_tool_call(out.text, names))]

        def _chat_stream(self, messages, delta_stream, generate_cfg):
            yield self._chat_no_stream(messages, generate_cfg)

    def make_tool(spec: Tool):
        class T(BaseTool):
            name = spec.name
            description = spec.description
            parameters = spec.parameters

            def call(self, params, **kwargs):
                try:
                    args = self._verify_json_format_args(params)
                except Exception as err:  # noqa: BLE001 - a malformed call is feedback for the model
                    result = f"Error: the arguments are not valid JSON for {spec.name} ({err})"
                else:
                    try:
                        result = spec.fn(args)
                    except BaseException as err:  # qwen-agent turns a tool's exception into text: keep ours
                        if _passes_through(err):
                            run.abort = err
                            result = "Stopped."
                        else:
                            raise
                run.tool_calls.append({"tool": spec.name, "result": result[:500]})
                return result

        return T()

    chat = RecordedChat({"model": "fairnad", "generate_cfg": {"fncall_prompt_type": "nous"}})
    agent = FnCallAgent(function_list=[make_tool(t) for t in tools], llm=chat, system_message=system)
    messages: list = [{"role": "user", "content": task}]
    try:
        while True:
            answer: list = []
            for answer in agent.run(messages):
                if done() or run.abort is not None:
                    break
            if done() or run.abort is not None or nudge is None or run.turns >= max_turns:
                break
            messages = [*messages, *answer, {"role": "user", "content": nudge}]
    except Exception as err:  # noqa: BLE001 - the agent's own failure is a mutation failure, with its reason
        if _passes_through(err):
            raise
        run.error = f"{type(err).__name__}: {str(err)[:300]}"
    if run.abort is not None:
        raise run.abort
    return run
