"""A scripted OpenAI Responses API server (``POST /v1/responses``, streamed), for Codex CLI.

Codex sends the whole conversation as ``input`` items each time: user messages, its own
function/custom tool calls and their ``*_output`` items. The script (:func:`harness.plan`) reads
the latest user message; a ``write`` step becomes an ``apply_patch`` call, in the form the
request's ``tools`` offer (a freeform custom tool, or a function taking ``input``), and a shell
call otherwise. A ``run`` step is a call of Codex's shell tool (``exec_command``,
``shell_command`` or ``shell``, whichever ``tools`` offers). A ``fail`` step is an HTTP 400:
Codex retries 5xx and rate limits, not that. ``break`` streams half a message, then
``response.failed`` with the code :data:`BREAK_CODE`, which Codex does not retry. ``pause N``
falls silent N seconds mid-text. Usage: input ``100 + len(task)``, output 7.
"""

from __future__ import annotations

import itertools
import json
import shlex
import time
from collections.abc import Iterator
from typing import Any

from tests.model_servers.harness import OUTPUT_TOKENS, Exchange, Server, Step, input_tokens, plan

MODEL = "scripted-codex"
ERROR_STATUS = 400
BREAK_CODE = "invalid_prompt"
"""``response.failed``'s error code for ``break``: Codex retries other failed responses."""

_ids = itertools.count(1)


def start() -> Server:
    """A running server; point Codex at ``server.url + "/v1"``."""
    models = {
        "object": "list",
        "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "luzia-tests"}],
    }
    return Server(_handle, get={"/v1/models": models, "/models": models})


def _handle(exchange: Exchange) -> None:
    if not exchange.path.split("?", 1)[0].endswith("/responses"):
        exchange.json({"error": {"message": f"no route {exchange.path}"}}, status=404)
        return
    body = exchange.body
    text, result_seen = latest_user_turn(body.get("input") or [])
    step = plan(text, result_seen)
    if step.action == "fail":
        error = {"message": step.text, "type": "invalid_request_error", "code": "scripted"}
        exchange.json({"error": error}, status=ERROR_STATUS)
        return
    usage = (input_tokens(text), OUTPUT_TOKENS)
    exchange.sse((event["type"], event) for event in events(step, body, usage))


def latest_user_turn(items: list[dict[str, Any]]) -> tuple[str, bool]:
    """The text of the latest user message a person wrote (Codex's own context messages,
    ``<environment_context>`` and the like, are skipped) and whether a tool result follows it."""
    text, result_seen = "", False
    for item in items:
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") == "user":
            said = "".join(
                part.get("text", "")
                for part in item.get("content") or []
                if isinstance(part, dict) and part.get("type") == "input_text"
            )
            if said and not said.lstrip().startswith("<"):
                text, result_seen = said, False
        elif kind.endswith("_call_output"):
            result_seen = True
    return text, result_seen


def tool_names(body: dict[str, Any]) -> dict[str, str]:
    """The request's tools: name -> type (``function``, ``custom``, ...)."""
    found: dict[str, str] = {}
    for tool in body.get("tools") or []:
        name = tool.get("name") or (tool.get("function") or {}).get("name")
        if name:
            found[name] = tool.get("type", "function")
    return found


def patch(path: str, content: str) -> str:
    """An ``apply_patch`` envelope that creates ``path`` (replacing it, if it exists)."""
    return f"*** Begin Patch\n*** Add File: {path}\n+{content}\n*** End Patch\n"


def tool_call(step: Step, body: dict[str, Any]) -> dict[str, Any]:
    """The output item that makes Codex write ``step.path``, or run ``step.command``."""
    call_id = f"call_{next(_ids)}"
    tools = tool_names(body)
    if step.action == "run":
        return _shell_call(call_id, step.command, tools)
    envelope = patch(step.path, step.content)
    if tools.get("apply_patch") == "custom":
        return {
            "type": "custom_tool_call",
            "id": f"ctc_{call_id}",
            "call_id": call_id,
            "name": "apply_patch",
            "input": envelope,
            "status": "completed",
        }
    if "apply_patch" in tools:
        arguments: dict[str, Any] = {"input": envelope}
        name = "apply_patch"
    else:
        name = "exec_command" if "exec_command" in tools else "shell"
        script = f"printf '%s\\n' {shlex.quote(step.content)} > {shlex.quote(step.path)}"
        if name == "exec_command":
            arguments = {"cmd": script}
        else:
            arguments = {"command": ["bash", "-lc", script]}
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": json.dumps(arguments),
        "status": "completed",
    }


def _shell_call(call_id: str, command: str, tools: dict[str, str]) -> dict[str, Any]:
    arguments: dict[str, Any]
    if "exec_command" in tools:
        name, arguments = "exec_command", {"cmd": command}
    elif "shell_command" in tools:
        name, arguments = "shell_command", {"command": command}
    else:
        name, arguments = "shell", {"command": ["bash", "-lc", command]}
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": json.dumps(arguments),
        "status": "completed",
    }


def events(
    step: Step, body: dict[str, Any], usage: tuple[int, int] = (100, OUTPUT_TOKENS)
) -> Iterator[dict[str, Any]]:
    """The stream for one step: created, one output item (text deltas for a message), completed;
    it sleeps between the halves of a paused text, and fails after the first half on ``break``."""
    response_id = f"resp_{next(_ids)}"
    base = {"id": response_id, "object": "response", "model": body.get("model", MODEL)}
    yield {"type": "response.created", "response": {**base, "status": "in_progress", "output": []}}
    if step.action in ("write", "run"):
        item = tool_call(step, body)
        yield {"type": "response.output_item.added", "output_index": 0, "item": item}
    else:
        item_id = f"msg_{next(_ids)}"
        item = {
            "type": "message",
            "id": item_id,
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": step.text, "annotations": []}],
        }
        added = {**item, "status": "in_progress", "content": []}
        yield {"type": "response.output_item.added", "output_index": 0, "item": added}
        split = step.pause or step.action == "break"
        for number, part in enumerate(step.halves() if split else (step.text,)):
            if number == 1 and step.action == "break":
                error = {"code": BREAK_CODE, "message": "scripted break mid-stream"}
                failed = {**base, "status": "failed", "output": [], "error": error}
                yield {"type": "response.failed", "response": failed}
                return
            if number == 1:
                time.sleep(step.pause)
            yield {
                "type": "response.output_text.delta",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "delta": part,
            }
    yield {"type": "response.output_item.done", "output_index": 0, "item": item}
    counts = {
        "input_tokens": usage[0],
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage[1],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage[0] + usage[1],
    }
    done = {**base, "status": "completed", "output": [item], "usage": counts}
    yield {"type": "response.completed", "response": done}
