"""A scripted OpenAI Responses API server (``POST /v1/responses``, streamed), for Codex CLI.

Codex sends the whole conversation as ``input`` items each time: user messages, its own
function/custom tool calls and their ``*_output`` items. The script (:func:`harness.plan`) reads
the latest user message; a ``write`` step becomes an ``apply_patch`` call, in the form the
request's ``tools`` offer (a freeform custom tool, or a function taking ``input``), and a shell
call otherwise. A ``fail`` step is an HTTP 400: Codex retries 5xx and rate limits, not that.
"""

from __future__ import annotations

import itertools
import json
import shlex
from typing import Any

from tests.model_servers.harness import Exchange, Server, Step, plan

MODEL = "scripted-codex"
ERROR_STATUS = 400

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
    exchange.sse((event["type"], event) for event in events(step, body))


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
    """The output item that makes Codex write ``step.path``."""
    call_id = f"call_{next(_ids)}"
    tools = tool_names(body)
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


def events(step: Step, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream for one step: created, one output item (text deltas for a message), completed."""
    response_id = f"resp_{next(_ids)}"
    base = {"id": response_id, "object": "response", "model": body.get("model", MODEL)}
    out: list[dict[str, Any]] = [
        {"type": "response.created", "response": {**base, "status": "in_progress", "output": []}}
    ]
    if step.action == "write":
        item = tool_call(step, body)
        out.append({"type": "response.output_item.added", "output_index": 0, "item": item})
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
        out.append({"type": "response.output_item.added", "output_index": 0, "item": added})
        out.append(
            {
                "type": "response.output_text.delta",
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "delta": step.text,
            }
        )
    out.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    usage = {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 10,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 110,
    }
    done = {**base, "status": "completed", "output": [item], "usage": usage}
    out.append({"type": "response.completed", "response": done})
    return out
