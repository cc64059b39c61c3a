"""The lifecycle hooks Claude Code and Codex share (same event names, same payload keys): the
command each runs, and what each event says of the agent's state.

Both run a hook as a shell command with the event's JSON on standard input; luzia's hands it to
``signal.sh`` (:mod:`luzia.signals`), which never fails the hook: an agent must not stop or
complain because luzia could not listen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from luzia.agents.kind import AgentState
from luzia.signals import SIGNAL_VAR, Signal

WORKING = ("UserPromptSubmit", "PreToolUse", "PostToolUse")
"""A turn starts, a tool is about to run, one ran: the agent works."""

ASKING = "PermissionRequest"
"""A permission dialog is about to be shown: a person is asked (the tool and its input)."""

DONE = "Stop"
"""The turn is over; ``last_assistant_message`` is what it said last."""


def hook_command(event: str) -> str:
    return f'sh "${SIGNAL_VAR}" {event} - 2>/dev/null || :'


def hooks_config(events: tuple[str, ...]) -> dict[str, Any]:
    """The ``hooks`` settings (one command per event, every tool: no matcher)."""
    return {
        event: [{"hooks": [{"type": "command", "command": hook_command(event)}]}]
        for event in events
    }


def hook_state(
    signal: Signal, usage_later: Callable[[str], Callable[[], dict[str, float]]] | None = None
) -> AgentState | None:
    """What one of the shared events says; ``None`` for another. ``usage_later(said)`` reads
    the usage of a turn that ended saying ``said``."""
    payload = signal.payload
    if signal.name in WORKING:
        tool = payload.get("tool_name")
        return AgentState("running", f"working: {tool}" if tool else "working")
    if signal.name == ASKING:
        return AgentState("waiting", permission_question(payload))
    if signal.name == DONE:
        said = str(payload.get("last_assistant_message") or "")
        later = usage_later(said) if usage_later is not None else None
        return AgentState("idle", f"done: {one_line(said)}" if said else "done", usage_later=later)
    return None


def permission_question(payload: dict[str, Any]) -> str:
    """A permission request as a person reads it: ``Allow Bash: rm -rf build?``."""
    tool, target = tool_and_target(payload)
    return f"Allow {tool}: {one_line(target)}?" if target else f"Allow {tool}?"


def tool_and_target(record: dict[str, Any]) -> tuple[str, str]:
    """A tool call's name and what it acts on (its command, or the file it touches)."""
    tool = str(record.get("tool_name") or "a tool")
    given = record.get("tool_input")
    target = ""
    if isinstance(given, dict):
        target = str(given.get("command") or given.get("file_path") or given.get("path") or "")
    return tool, target


WRITE_WAIT = 2.0
"""Longest wait for an agent's log to hold a turn's end: Claude Code and Codex write it just
after their ``Stop`` hook has run."""


def usage_once_written(
    logged: object,
    host_path: Callable[[str], Path],
    read: Callable[[Path], tuple[dict[str, float], bool]],
) -> dict[str, float]:
    """A turn's usage from the agent's log at ``logged`` (the path its hook named), once
    ``read`` says the log holds the turn's end (or ``WRITE_WAIT`` has passed)."""
    if not isinstance(logged, str) or not logged:
        return {}
    path = host_path(logged)
    deadline = time.monotonic() + WRITE_WAIT
    while True:
        usage, complete = read(path)
        if complete or time.monotonic() > deadline:
            return usage
        time.sleep(0.02)


def one_line(value: object, limit: int = 200) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
