"""Claude Code in luzia: its profile, its first-run HOME and its command-mode outcome.

Follows Claude Code 2.1.332's screens. Its input line is U+276F and a no-break space; while it
works the footer says ``esc to interrupt``; every choice it asks for (permission, trust, API
key, bypass mode) ends with ``Enter to confirm`` or ``Esc to cancel``.

A fresh HOME stops it on setup screens: without ``hasCompletedOnboarding`` it checks
api.anthropic.com and exits ("Unable to connect to Anthropic services"); then it asks to trust
the folder (default: No, exit), whether to use ``ANTHROPIC_API_KEY`` (default: No), and in
bypass mode to confirm that and to switch to auto mode. :meth:`ClaudeKind.seed_home` answers
each of those in the files where Claude Code keeps the answers.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from luzia.agents.hooks import (
    ASKING,
    DONE,
    WORKING,
    hook_state,
    hooks_config,
    one_line,
    tool_and_target,
    usage_once_written,
)
from luzia.agents.kind import (
    AgentKind,
    AgentState,
    Outcome,
    SeedContext,
    copy_private,
    plain_lines,
    read_json_object,
    write_private_json,
)
from luzia.agents.profile import AgentProfile
from luzia.signals import Signal

PROFILE = AgentProfile(
    name="claude",
    command="claude",
    exec_command="claude -p {task} --output-format stream-json --verbose",
    prompt="(?m)^\u276f\u00a0",
    busy=r"esc to interrupt",
    questions=(
        r"(?m)^\s*Do you want to .*\?",
        r"Yes, I trust this folder",
        r"Make auto mode your default",
        r"Yes, I accept",
        "\u276f 1\\. Yes",
        r"Enter to confirm",
        r"Esc to cancel",
    ),
    delay_enter=0.5,
    quiet=1.0,
    forward_env=(
        "ANTHROPIC_*",
        "CLAUDE_CODE_*",
        "DISABLE_AUTOUPDATER",
        "DISABLE_TELEMETRY",
        "DISABLE_ERROR_REPORTING",
    ),
    kind="claude",
)
"""``questions`` go from the most telling line to the generic footer: the first that matches
names what the person is asked."""

API_KEY_SUFFIX = 20
"""Claude Code records an approved ``ANTHROPIC_API_KEY`` by its last 20 characters."""

HOOKS = (*WORKING, "PostToolUseFailure", ASKING, "Notification", DONE, "StopFailure")
"""The hook events a job's Claude Code reports (``--settings``): its turn starting, its tools,
its questions (a permission asked, a notification that it waits), its turn's end, with or
without an API error."""

NOTICE_ASKS = {"permission_prompt", "elicitation_dialog"}
"""Notification types that mean a person is asked; ``idle_prompt`` (60 s at its prompt) is not."""

RESULT_KEY = re.compile(r'"type":\s*"result"')
"""What marks the final record of ``--output-format stream-json``."""

RECORD_LIMIT = 1 << 20
"""How far before that mark the record's start is looked for."""

COPIED = (".claude/.credentials.json", ".claude/CLAUDE.md")
"""The user's own files a job's HOME gets as they are (a login, personal instructions)."""


class ClaudeKind(AgentKind):
    name = "claude"
    program = "claude"
    profile = PROFILE

    def seed_home(self, home: Path, ctx: SeedContext) -> None:
        """Onboarding done, the workspace trusted, bypass mode on and confirmed (the container
        is the sandbox, also for root), the environment's API key approved, no start-up
        animation (seconds of output before a task can be typed); the user's login and
        settings copied in. An approved key is recorded only by its suffix, as Claude Code does
        when a person says yes; with ``ANTHROPIC_AUTH_TOKEN`` nothing of it is written."""
        for name in COPIED:
            copy_private(ctx.user_home / name, home / name)
        settings = read_json_object(ctx.user_home / ".claude" / "settings.json")
        permissions = settings.get("permissions")
        settings["permissions"] = {
            **(permissions if isinstance(permissions, dict) else {}),
            "defaultMode": "bypassPermissions",
        }
        settings["skipDangerousModePermissionPrompt"] = True
        env = settings.get("env")
        # As root (a container run as the workspace's owner) bypass mode needs IS_SANDBOX.
        settings["env"] = {**(env if isinstance(env, dict) else {}), "IS_SANDBOX": "1"}
        settings.setdefault("prefersReducedMotion", True)  # its start-up animation delays input
        write_private_json(home / ".claude" / "settings.json", settings)

        state: dict[str, Any] = {
            "hasCompletedOnboarding": True,
            "hasSeenAutoDefaultNudge": True,
            "projects": {ctx.workspace: {"hasTrustDialogAccepted": True}},
        }
        account = read_json_object(ctx.user_home / ".claude.json").get("oauthAccount")
        if account is not None:
            state["oauthAccount"] = account
        key = ctx.env.get("ANTHROPIC_API_KEY")
        if key:
            state["customApiKeyResponses"] = {"approved": [key[-API_KEY_SUFFIX:]], "rejected": []}
        write_private_json(home / ".claude.json", state)

    def signal_args(self) -> str:
        """Hooks in ``--settings``: they add to the user's own and work on every backend, also
        on this host, where a job changes nothing in the user's files."""
        settings = json.dumps({"hooks": hooks_config(HOOKS)}, separators=(",", ":"))
        return "--settings " + shlex.quote(settings)

    def read_signal(self, signal: Signal, host_path: Callable[[str], Path]) -> AgentState | None:
        payload = signal.payload
        transcript = payload.get("transcript_path")

        def usage_later(said: str) -> Callable[[], dict[str, float]]:
            return lambda: _turn_usage(transcript, said, host_path)

        if signal.name == "PostToolUseFailure":
            return AgentState("running", "working")
        if signal.name == "Notification":
            if payload.get("notification_type") in NOTICE_ASKS:
                return AgentState("waiting", str(payload.get("message") or "it asks a question"))
            return None
        if signal.name == "StopFailure":  # an API error: no Stop
            said = str(payload.get("last_assistant_message") or payload.get("error") or "error")
            return AgentState(
                "idle", f"the turn failed: {one_line(said)}", usage_later=usage_later(said)
            )
        return hook_state(signal, usage_later)

    def outcome(self, log: str) -> Outcome | None:
        """From the last ``{"type": "result", ...}`` record of ``--output-format stream-json``:
        failed when it reports an error or a refused tool call (``-p`` exits 0 after those)."""
        record = _last_result(log)
        if record is None:
            return None
        usage = _usage(record)
        text = str(record.get("result") or "").strip()
        denials = record.get("permission_denials") or []
        subtype = str(record.get("subtype") or "")
        if record.get("is_error") or subtype.startswith("error"):
            return Outcome(True, text or f"Claude Code stopped: {subtype or 'error'}", usage)
        if denials:
            refused = ", ".join(_denial(d) for d in denials)
            return Outcome(True, f"Claude Code was refused permission: {refused}", usage)
        return Outcome(False, text, usage)


KIND = ClaudeKind()


def _last_result(log: str) -> dict[str, Any] | None:
    """The last whole result record, wherever the terminal log broke its line: the lines are
    joined, and each ``{`` before the record's ``"type":"result"`` tried as its start."""
    flat = "".join(plain_lines(log))
    decoder = json.JSONDecoder()
    for mark in reversed(list(RESULT_KEY.finditer(flat))):
        brace = flat.rfind("{", 0, mark.start())
        while brace >= 0 and mark.start() - brace < RECORD_LIMIT:
            try:
                value, _ = decoder.raw_decode(flat, brace)
            except ValueError:
                value = None
            if isinstance(value, dict) and value.get("type") == "result":
                return value
            brace = flat.rfind("{", 0, brace)
    return None


def _usage(record: dict[str, Any]) -> dict[str, float]:
    usage: dict[str, float] = {}
    reported = record.get("usage")
    if isinstance(reported, dict):
        for key in ("input_tokens", "output_tokens"):
            value = reported.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                usage[key] = float(value)
    cost = record.get("total_cost_usd")
    if isinstance(cost, (int, float)) and not isinstance(cost, bool):
        usage["cost_usd"] = float(cost)
    return usage


def _denial(denial: object) -> str:
    if not isinstance(denial, dict):
        return str(denial)
    return " ".join(part for part in tool_and_target(denial) if part)


TRANSCRIPT_LIMIT = 32 << 20
"""Bytes of a transcript read at most for a turn's usage."""


def _turn_usage(
    transcript: object, said: str, host_path: Callable[[str], Path]
) -> dict[str, float]:
    """The tokens of the turn just ended, once the transcript holds its last words ``said``."""

    def read(path: Path) -> tuple[dict[str, float], bool]:
        usages, last = _read_turn(path)
        return _sum_usage(usages), last == said or not said

    return usage_once_written(transcript, host_path, read)


def _read_turn(path: Path) -> tuple[list[dict[str, Any]], str]:
    """Claude Code's transcript (JSON Lines) from the person's last prompt on: the usage of
    every assistant message, each once (a message written in several records repeats its
    usage), and the text it said last."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - TRANSCRIPT_LIMIT))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except (OSError, ValueError):
        return [], ""
    per_message: dict[str, dict[str, Any]] = {}
    said = ""
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        message = record.get("message") if isinstance(record, dict) else None
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if record.get("type") == "user" and isinstance(content, str):
            per_message.clear()  # a person's prompt: the turn starts here
            said = ""
        elif record.get("type") == "assistant":
            if isinstance(message.get("usage"), dict):
                per_message[str(message.get("id") or len(per_message))] = message["usage"]
            if isinstance(content, list):
                texts = [
                    str(block.get("text") or "")
                    for block in content
                    if isinstance(block, dict) and block.get("type") == "text"
                ]
                if any(texts):
                    said = "".join(texts)
    return list(per_message.values()), said


def _sum_usage(usages: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Input (with cache reads and writes) and output tokens over several messages."""
    totals: dict[str, float] = {}
    for usage in usages:
        for key, into in (
            ("input_tokens", "input_tokens"),
            ("cache_read_input_tokens", "input_tokens"),
            ("cache_creation_input_tokens", "input_tokens"),
            ("output_tokens", "output_tokens"),
        ):
            value = usage.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                totals[into] = totals.get(into, 0.0) + value
    return totals
