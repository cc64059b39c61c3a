"""The script words every scripted server understands: run, pause, break, and usage."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.model_servers import anthropic, openai_chat, openai_responses
from tests.model_servers.harness import OUTPUT_TOKENS, Server, input_tokens, plan
from tests.test_model_server_anthropic import events, post

BASH = {
    "name": "Bash",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
}


def test_plan_runs_then_says_ran_it() -> None:
    step = plan("please run echo hi there\nthanks", tool_result_seen=False)
    assert (step.action, step.command) == ("run", "echo hi there")
    assert plan("run echo hi", tool_result_seen=True).text == "ran it"


def test_plan_pause_and_break() -> None:
    assert plan("say it slowly, pause 2", False).pause == 2.0
    assert plan("break now", False).action == "break"


def anthropic_body(task: str, **extra: Any) -> dict[str, Any]:
    content = [{"type": "text", "text": task}]
    messages = [{"role": "user", "content": content}]
    return {"model": "m", "stream": True, "tools": [BASH], "messages": messages, **extra}


def test_anthropic_run_is_a_bash_call_with_deterministic_usage() -> None:
    with anthropic.start() as server:
        _, raw = post(server, anthropic_body("run echo hi"))
    stream = events(raw)
    start = next(data for name, data in stream if name == "content_block_start")
    assert start["content_block"]["name"] == "Bash"
    delta = next(data for name, data in stream if name == "content_block_delta")
    assert json.loads(delta["delta"]["partial_json"])["command"] == "echo hi"
    first = stream[0][1]["message"]["usage"]
    assert first["input_tokens"] == input_tokens("run echo hi")
    assert stream[-2][1]["usage"]["output_tokens"] == OUTPUT_TOKENS


def test_anthropic_break_ends_with_an_error_event_after_some_text() -> None:
    with anthropic.start() as server:
        status, raw = post(server, anthropic_body("break"))
    names = [name for name, _ in events(raw)]
    assert status == 200
    assert "content_block_delta" in names and names[-1] == "error"
    assert events(raw)[-1][1]["error"]["type"] == anthropic.BREAK_ERROR


def timed_post(server: Server, body: dict[str, Any], path: str) -> float:
    began = time.monotonic()
    post(server, body, path)
    return time.monotonic() - began


def test_pause_makes_every_server_slower_by_the_pause() -> None:
    """Only a lower bound: the stream cannot finish before the scripted silence is over."""
    with anthropic.start() as server:
        assert timed_post(server, anthropic_body("pause 1"), "/v1/messages") >= 1
    responses_body = {
        "stream": True,
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "pause 1"}],
            }
        ],
    }
    with openai_responses.start() as server:
        assert timed_post(server, responses_body, "/v1/responses") >= 1
    chat_body = {"stream": True, "messages": [{"role": "user", "content": "pause 1"}]}
    with openai_chat.start() as server:
        assert timed_post(server, chat_body, "/v1/chat/completions") >= 1


def responses_stream(task: str, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": task}]}
    with openai_responses.start() as server:
        _, raw = post(server, {"stream": True, "input": [item], "tools": tools}, "/v1/responses")
    return [data for _, data in events(raw)]


def test_responses_run_uses_the_offered_shell_tool() -> None:
    stream = responses_stream("run echo hi", [{"type": "function", "name": "shell_command"}])
    call = stream[1]["item"]
    assert call["name"] == "shell_command"
    assert json.loads(call["arguments"]) == {"command": "echo hi"}
    usage = stream[-1]["response"]["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (input_tokens("run echo hi"), 7)


def test_responses_break_fails_the_response_mid_stream() -> None:
    stream = responses_stream("break", [])
    kinds = [event["type"] for event in stream]
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.failed"
    assert stream[-1]["response"]["error"]["code"] == openai_responses.BREAK_CODE


def test_chat_run_is_a_bash_block_and_break_an_error_chunk() -> None:
    with openai_chat.start() as server:
        body = {"stream": True, "messages": [{"role": "user", "content": "run echo hi"}]}
        _, raw = post(server, body, "/v1/chat/completions")
        text = "".join(
            c["choices"][0]["delta"].get("content", "")
            for _, c in events(raw.replace(b"data: [DONE]", b""))
        )
        assert "```bash\necho hi\n```" in text
        body["messages"] = [{"role": "user", "content": "break"}]
        _, raw = post(server, body, "/v1/chat/completions")
    assert "error" in events(raw)[-1][1]
