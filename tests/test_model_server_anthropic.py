"""The scripted Anthropic Messages server speaks the wire Claude Code expects."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.model_servers import anthropic
from tests.model_servers.harness import Server

WRITE_TOOL = {
    "name": "Write",
    "description": "Write a file",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
    },
}
SYSTEM = [{"type": "text", "text": "# Environment\n - Primary working directory: /work/repo\n"}]


@pytest.fixture
def server() -> Iterator[Server]:
    with anthropic.start() as srv:
        yield srv


def post(server: Server, body: dict[str, Any], path: str = "/v1/messages") -> tuple[int, bytes]:
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "x-api-key": "test-key"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if "data" in lines:
            out.append((lines.get("event", ""), json.loads(lines["data"])))
    return out


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def test_write_task_streams_a_tool_use_with_an_absolute_path(server: Server) -> None:
    body = {
        "model": "claude-x",
        "stream": True,
        "system": SYSTEM,
        "tools": [WRITE_TOOL],
        "messages": [user({"type": "text", "text": "please write notes/a.txt hello world"})],
    }
    status, raw = post(server, body)
    assert status == 200
    stream = events(raw)
    names = [name for name, _ in stream]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    start = next(data for name, data in stream if name == "content_block_start")
    assert start["content_block"]["type"] == "tool_use"
    assert start["content_block"]["name"] == "Write"
    delta = next(data for name, data in stream if name == "content_block_delta")
    assert json.loads(delta["delta"]["partial_json"]) == {
        "file_path": "/work/repo/notes/a.txt",
        "content": "hello world",
    }
    end = next(data for name, data in stream if name == "message_delta")
    assert end["delta"]["stop_reason"] == "tool_use"
    assert end["usage"]["output_tokens"] > 0
    assert server.requests == [body]


def test_after_the_tool_result_it_says_wrote(server: Server) -> None:
    body = {
        "model": "claude-x",
        "tools": [WRITE_TOOL],
        "messages": [
            user({"type": "text", "text": "write a.txt hi"}),
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "Write", "input": {}}],
            },
            user({"type": "tool_result", "tool_use_id": "t1", "content": "File created"}),
        ],
    }
    status, raw = post(server, body)
    assert status == 200
    reply = json.loads(raw)
    assert reply["content"] == [{"type": "text", "text": "wrote a.txt"}]
    assert reply["stop_reason"] == "end_turn"


def test_fail_is_an_api_error_claude_code_does_not_retry(server: Server) -> None:
    task = user({"type": "text", "text": "fail"})
    body = {"model": "m", "tools": [WRITE_TOOL], "messages": [task]}
    status, raw = post(server, body)
    assert status == 400
    assert json.loads(raw)["error"]["type"] == "invalid_request_error"


def test_side_requests_without_tools_get_ok(server: Server) -> None:
    body = {"model": "haiku", "messages": [{"role": "user", "content": "write a title for: fail"}]}
    status, raw = post(server, body)
    assert status == 200
    assert json.loads(raw)["content"][0]["text"] == "ok"


def test_count_tokens(server: Server) -> None:
    status, raw = post(server, {"model": "m", "messages": []}, "/v1/messages/count_tokens")
    assert status == 200
    assert json.loads(raw)["input_tokens"] > 0
