"""A scripted Anthropic Messages API server, enough for the real Claude Code.

``POST /v1/messages`` answers the harness's :func:`~tests.model_servers.harness.plan` for the
conversation's latest user message: a ``tool_use`` of the file-writing tool Claude Code offers
(found by its input schema in the request's ``tools``), then the text ``wrote <path>`` once the
tool result is back; ``run <command>`` is a ``Bash`` tool call, then ``ran it``; ``fail`` gives
an HTTP 400 ``invalid_request_error`` (Claude Code retries overloaded and server errors, but
reports a 400 at once); ``break`` streams some text, then an SSE ``error`` event of type
``invalid_request_error`` (see :data:`BREAK_ERROR`), and closes; ``pause N`` falls silent N
seconds mid-text. Streaming (SSE) and plain JSON both work. Usage is deterministic: input
``100 + len(task)``, output 7 (:func:`~tests.model_servers.harness.input_tokens`). Requests
without tools (Claude Code's side calls: titles, topics) are answered ``ok`` with zero usage.
``/v1/messages/count_tokens`` answers an estimate.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from typing import Any

from tests.model_servers.harness import OUTPUT_TOKENS, Exchange, Server, Step, input_tokens, plan

BREAK_ERROR = "invalid_request_error"
"""The ``error`` event's type for ``break``. Claude Code 2.1.332 answers a broken stream by
asking again without streaming (three times, all answered with this error as an HTTP 400), then
shows ``API Error: 400 scripted break mid-stream`` and fires its ``StopFailure`` hook."""

BREAK_MESSAGE = "scripted break mid-stream"

_ids = itertools.count(1)

_CWD = re.compile(r"(?:Primary working directory|Working directory|cwd):\s*(\S+)")


def start() -> Server:
    """Start the server on a free port (see :class:`~tests.model_servers.harness.Server`)."""
    return Server(_handle)


def _handle(exchange: Exchange) -> None:
    body = exchange.body
    if exchange.path.split("?", 1)[0].endswith("/count_tokens"):
        exchange.json({"input_tokens": max(1, len(json.dumps(body)) // 4)})
        return
    step, task = _next_step(body)
    usage = (input_tokens(task), OUTPUT_TOKENS) if body.get("tools") else (0, 0)
    if step.action == "fail":
        exchange.json(
            {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": step.text},
            },
            status=400,
        )
        return
    content = _content(step, body)
    model = str(body.get("model") or "claude-scripted")
    stop = "tool_use" if content[0]["type"] == "tool_use" else "end_turn"
    if body.get("stream"):
        exchange.sse(_events(model, content, stop, usage, step))
    elif step.action == "break":
        # Claude Code retries a broken stream without streaming: it fails the same way.
        error = {"type": "error", "error": {"type": BREAK_ERROR, "message": BREAK_MESSAGE}}
        exchange.json(error, status=400)
    else:
        exchange.json(_message(model, content, stop, usage))


def _next_step(body: dict[str, Any]) -> tuple[Step, str]:
    """The script's step for the latest user text, and that text; side calls (no tools) just
    get ``ok``."""
    if not body.get("tools"):
        return Step("say", text="ok"), ""
    messages = body.get("messages") or []
    last_text = ""
    result_after = False
    for message in messages:
        if message.get("role") != "user":
            continue
        blocks = message.get("content")
        if isinstance(blocks, str):
            blocks = [{"type": "text", "text": blocks}]
        texts = [
            text
            for b in blocks
            if b.get("type") == "text"
            and not (text := str(b.get("text", ""))).startswith("<system-reminder>")
        ]
        if any(b.get("type") == "tool_result" for b in blocks):
            result_after = True
        elif texts:
            # After a failed turn Claude Code sends the next task in the same user message,
            # as a further text block: the last block is the task to answer.
            last_text = texts[-1]
            result_after = False
    return plan(last_text, result_after), last_text


def _content(step: Step, body: dict[str, Any]) -> list[dict[str, Any]]:
    if step.action == "write":
        tool = _write_tool(body.get("tools") or [])
        if tool is not None:
            name, path_key, content_key = tool
            return [
                {
                    "type": "tool_use",
                    "id": f"toolu_{next(_ids):08d}",
                    "name": name,
                    "input": {path_key: _absolute(step.path, body), content_key: step.content},
                }
            ]
        return [{"type": "text", "text": "no file-writing tool offered"}]
    if step.action == "run":
        shell = _shell_tool(body.get("tools") or [])
        if shell is None:
            return [{"type": "text", "text": "no shell tool offered"}]
        return [
            {
                "type": "tool_use",
                "id": f"toolu_{next(_ids):08d}",
                "name": shell,
                "input": {"command": step.command, "description": "Run the scripted command"},
            }
        ]
    return [{"type": "text", "text": step.text}]


def _shell_tool(tools: list[dict[str, Any]]) -> str | None:
    """Claude Code's ``Bash`` tool, or else any tool whose input is a ``command``."""
    names = [str(tool.get("name")) for tool in tools]
    if "Bash" in names:
        return "Bash"
    for tool in tools:
        props = (tool.get("input_schema") or {}).get("properties") or {}
        if "command" in props:
            return str(tool["name"])
    return None


def _write_tool(tools: list[dict[str, Any]]) -> tuple[str, str, str] | None:
    """The tool that writes a whole file: ``(name, path key, content key)``."""
    for tool in tools:
        props = (tool.get("input_schema") or {}).get("properties") or {}
        if "content" in props and "file_path" in props:
            return str(tool["name"]), "file_path", "content"
    return None


def _absolute(path: str, body: dict[str, Any]) -> str:
    """Claude Code wants absolute paths; its system prompt names the working directory."""
    if path.startswith("/"):
        return path
    system = body.get("system") or ""
    if isinstance(system, list):
        system = "\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    match = _CWD.search(str(system))
    if match is None:
        # Some versions put the environment in a user message instead.
        match = _CWD.search(json.dumps(body.get("messages") or []))
    cwd = match.group(1).rstrip("\\n\"',") if match else "/workspace"
    return f"{cwd.rstrip('/')}/{path}"


def _message(
    model: str, content: list[dict[str, Any]], stop: str | None, usage: tuple[int, int]
) -> dict[str, Any]:
    return {
        "id": f"msg_{next(_ids):08d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }


def _events(
    model: str,
    content: list[dict[str, Any]],
    stop: str,
    usage: tuple[int, int],
    step: Step,
) -> Iterator[tuple[str | None, object]]:
    """The stream; it sleeps between the two halves of a paused text, and ends with an
    ``error`` event after the first half for ``break``."""
    start = _message(model, [], None, (usage[0], min(1, usage[1])))
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(content):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            first, rest = step.halves() if step.action != "write" else (block["text"], "")
            parts = [first, rest] if step.pause or step.action == "break" else [block["text"]]
            deltas: list[dict[str, Any]] = [{"type": "text_delta", "text": p} for p in parts]
        else:
            opening = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opening},
        )
        for number, delta in enumerate(deltas):
            if number == 1 and step.action == "break":
                error = {"type": BREAK_ERROR, "message": BREAK_MESSAGE}
                yield "error", {"type": "error", "error": error}
                return
            if number == 1 and step.pause:
                time.sleep(step.pause)
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": usage[1]},
        },
    )
    yield "message_stop", {"type": "message_stop"}
