"""A scripted OpenAI chat-completions server (what aider speaks, through litellm).

aider has no tool calls: it edits files from the model's text, in the edit format its system
prompt asks for. So ``write <path> <content>`` is answered with an edit in that format: a
"whole" file listing (the path on a line, then a fenced block with the whole file), or a
SEARCH/REPLACE block with an empty SEARCH (which creates the file) for the diff formats.
An edit is the whole turn (no tool result comes back), so the script always sees the task as
the latest user message. ``fail`` answers HTTP 400, an error litellm does not retry.
``run <command>`` answers the command in a fenced ``bash`` block, which aider offers to run
(its "Run shell command?" question, in the diff edit formats only). ``break`` streams half a
reply, then an ``error`` chunk naming ``invalid_request_error`` (a non-streaming request gets a
400).
``pause N`` falls silent N seconds mid-text. Usage: prompt ``100 + len(task)``, completion 7.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from tests.model_servers.harness import OUTPUT_TOKENS, Exchange, Server, Step, input_tokens, plan

MODEL = "scripted"
"""The one model listed; aider is started with ``--model openai/scripted``."""

FENCE = "```"


def start() -> Server:
    models = {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "luzia"}]}
    return Server(_handle, get={"/v1/models": models, "/models": models})


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _latest_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _whole_format(messages: list[dict[str, Any]]) -> bool:
    """Whether aider asked for whole files (its "file listing" prompt) rather than
    SEARCH/REPLACE blocks."""
    system = "\n".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    return "SEARCH/REPLACE" not in system


def reply_text(step: Step, whole: bool) -> str:
    """The assistant's text for one step of the script."""
    if step.action == "run":
        return f"Run this:\n\n{FENCE}bash\n{step.command}\n{FENCE}\n"
    if step.action != "write":
        return step.text
    if whole:
        return f"{step.path}\n{FENCE}\n{step.content}\n{FENCE}\n"
    return (
        f"{step.path}\n{FENCE}\n<<<<<<< SEARCH\n=======\n{step.content}\n>>>>>>> REPLACE\n{FENCE}\n"
    )


def _handle(exchange: Exchange) -> None:
    if not exchange.path.rstrip("/").endswith("/chat/completions"):
        exchange.json({"error": {"message": f"no route {exchange.path}"}}, status=404)
        return
    messages = exchange.body.get("messages") or []
    task = _latest_user(messages)
    step = plan(task, tool_result_seen=False)
    if step.action == "fail":
        error = {"message": step.text, "type": "invalid_request_error", "code": "scripted"}
        exchange.json({"error": error}, status=400)
        return
    text = reply_text(step, _whole_format(messages))
    model = str(exchange.body.get("model") or MODEL)
    prompt = input_tokens(task)
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": OUTPUT_TOKENS,
        "total_tokens": prompt + OUTPUT_TOKENS,
    }
    if exchange.body.get("stream"):
        exchange.sse((None, event) for event in _chunks(model, text, usage, step))
        return
    if step.action == "break":
        error = {"message": "scripted break", "type": "invalid_request_error", "code": "scripted"}
        exchange.json({"error": error}, status=400)
        return
    exchange.json(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
    )


def _chunks(model: str, text: str, usage: dict[str, int], step: Step) -> Iterator[object]:
    """The stream; it sleeps between the halves of a paused text, and sends an ``error`` chunk
    after the first half on ``break``."""

    def chunk(delta: dict[str, str], finish: str | None, **extra: object) -> dict[str, object]:
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }

    yield chunk({"role": "assistant", "content": ""}, None)
    if step.pause or step.action == "break":
        first, rest = step.halves()
        yield chunk({"content": first}, None)
        if step.action == "break":
            # litellm maps an error whose text names invalid_request_error to BadRequestError,
            # which aider does not retry (any other error chunk: a minute of retries).
            error = {
                "message": "scripted break mid-stream (invalid_request_error)",
                "type": "invalid_request_error",
                "code": None,
            }
            yield {"error": error}
            return
        time.sleep(step.pause)
        yield chunk({"content": rest}, None)
    else:
        yield chunk({"content": text}, None)
    yield chunk({}, "stop", usage=usage)
    yield "[DONE]"
