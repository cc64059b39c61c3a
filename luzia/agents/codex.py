"""Codex CLI in luzia: its profile, its first-run HOME and its command-mode outcome.

Screens of Codex 0.147 (``capture-pane``, bottom lines):

- idle: ``\u203a Explain this codebase`` (a placeholder; the input line starts with U+203A) above
  the status line ``gpt-5.5 default · /workspace``;
- busy: ``• Working (3s • esc to interrupt)`` above that input line;
- questions: ``Do you trust the contents of this directory?`` (first run in a directory),
  ``Would you like to make the following edits?`` / ``... run the following command?`` (approval),
  a model migration notice: each a numbered menu (``\u203a 1. Yes, continue``) ending in
  ``Press enter to continue`` / ``Press enter to confirm or esc to cancel``.

In a container the container is the sandbox: Codex's own (bubblewrap) cannot start there without
privileges, and every command would then fail or become a question; the seeded config turns it
off and approvals with it. The model provider reaches Codex through its config: the user's own
``~/.codex/config.toml`` is copied in, or ``OPENAI_BASE_URL`` (which Codex itself does not read)
becomes a provider of that base URL.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import tomllib
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from luzia.agents.hooks import (
    ASKING,
    DONE,
    WORKING,
    hook_state,
    hooks_config,
    usage_once_written,
)
from luzia.agents.kind import (
    AgentKind,
    AgentState,
    Outcome,
    SeedContext,
    copy_private,
    json_records,
)
from luzia.agents.profile import AgentProfile
from luzia.paths import write_private
from luzia.signals import Signal

PROFILE = AgentProfile(
    name="codex",
    command="codex",
    exec_command="codex exec --json --skip-git-repo-check {task}",
    prompt="(?m)^\u203a(?!\\s*\\d+\\.\\s)",
    busy=r"(?i)esc to interrupt",
    questions=(
        r"Do you trust the contents of this directory\?",
        r"Would you like to [^\n]*\?",
        "(?m)^\\s*\u203a 1\\.\\s",
        r"(?i)press enter to (?:continue|confirm)",
    ),
    question_title=r"Action Required",
    delay_enter=0.3,
    quiet=1.0,
    forward_env=("OPENAI_API_KEY", "OPENAI_BASE_URL", "CODEX_API_KEY"),
    kind="codex",
)
"""Questions come before the prompt in a turn's end: a numbered menu also starts with U+203A,
which the prompt pattern therefore refuses. ``CODEX_HOME`` is not forwarded: a host path."""

REQUIRED: dict[str, Any] = {
    "sandbox_mode": "danger-full-access",
    "approval_policy": "never",
}
"""Set whatever the user's config says: the container is the sandbox."""

DEFAULTS: dict[str, Any] = {
    "check_for_update_on_startup": False,
    "analytics": {"enabled": False},
    "feedback": {"enabled": False},
    "notice": {"hide_full_access_warning": True},
    "tui": {"show_tooltips": False, "animations": False},
}
"""Set unless the user's config says otherwise: no update check, telemetry, tips or animations
(the welcome screen's animation prints without end: a screen that is never quiet)."""

BASE_URL_PROVIDER = "openai-base-url"
"""The provider ``OPENAI_BASE_URL`` becomes when the user's config chooses none."""


class CodexKind(AgentKind):
    name = "codex"
    program = "codex"
    profile = PROFILE

    def seed_home(self, home: Path, ctx: SeedContext) -> None:
        """``~/.codex/config.toml``: the user's own, with the sandbox and approvals off, the
        workspace trusted, no update check; and the user's ``auth.json``, both 0600."""
        source = ctx.user_home / ".codex"
        target = home / ".codex"
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = seeded_config(_read_toml(source / "config.toml"), ctx)
        write_private(target / "config.toml", dump_toml(config).encode())
        copy_private(source / "auth.json", target / "auth.json")

    def outcome(self, log: str) -> Outcome | None:
        return exec_outcome(log)

    def signal_args(self) -> str:
        """Its lifecycle hooks, in the config on the command line (the user's files stay as
        they are). Hooks outside a managed config need a person's review in ``/hooks`` first,
        a full-screen question at start, unless trust is waived for this run."""
        hooks = _value(hooks_config(HOOKS))
        return "--dangerously-bypass-hook-trust -c " + shlex.quote(f"hooks={hooks}")

    def read_signal(self, signal: Signal, host_path: Callable[[str], Path]) -> AgentState | None:
        rollout = signal.payload.get("transcript_path")

        def usage_later(said: str) -> Callable[[], dict[str, float]]:
            return lambda: _turn_usage(rollout, host_path)

        return hook_state(signal, usage_later)


HOOKS = (*WORKING, ASKING, DONE)
"""Codex 0.147's hooks luzia listens to; a failed turn fires none (the screen ends it)."""


def _turn_usage(rollout: object, host_path: Callable[[str], Path]) -> dict[str, float]:
    """The tokens of the turn just ended, from the session log (``rollout-*.jsonl``): each
    response's ``last_token_usage`` since the turn's ``task_started``, once its
    ``task_complete`` is written."""
    return usage_once_written(rollout, host_path, _read_turn)


def _read_turn(path: Path) -> tuple[dict[str, float], bool]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return {}, False
    usage: dict[str, float] = {}
    complete = False
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        payload = record.get("payload") if isinstance(record, dict) else None
        if not isinstance(payload, dict) or record.get("type") != "event_msg":
            continue
        kind = payload.get("type")
        if kind == "task_started":
            usage, complete = {}, False
        elif kind == "task_complete":
            complete = True
        elif kind == "token_count" and isinstance(payload.get("info"), dict):
            last = payload["info"].get("last_token_usage")
            if isinstance(last, dict):
                for key in ("input_tokens", "output_tokens"):
                    value = last.get(key)
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        usage[key] = usage.get(key, 0.0) + value
    return usage, complete


def seeded_config(user: dict[str, Any], ctx: SeedContext) -> dict[str, Any]:
    """The config a job's Codex starts with, from the user's own (``user``, parsed)."""
    config = _merged(DEFAULTS, user)
    config.update(REQUIRED)
    projects = config.setdefault("projects", {})
    projects.setdefault(ctx.workspace, {})["trust_level"] = "trusted"
    base_url = ctx.env.get("OPENAI_BASE_URL")
    if base_url and "model_provider" not in config:
        config["model_provider"] = BASE_URL_PROVIDER
        config.setdefault("model_providers", {})[BASE_URL_PROVIDER] = {
            "name": "OPENAI_BASE_URL",
            "base_url": base_url,
            "wire_api": "responses",
            "env_key": "OPENAI_API_KEY",
        }
    return config


def exec_outcome(log: str) -> Outcome | None:
    """The outcome ``codex exec --json`` reported: its last ``turn.failed`` or
    ``turn.completed`` (with the tokens of every turn), or a fatal ``error`` event.

    ``error`` events that say ``Reconnecting...`` are retries, not failures; an ``error``
    *item* is a warning (unknown model metadata, say) and never counts.
    """
    end: Outcome | None = None
    last_error = ""
    said = ""
    usage: dict[str, float] = {}
    for record in json_records(log):
        kind = record.get("type")
        if kind == "turn.completed":
            for key in ("input_tokens", "output_tokens"):
                value = (record.get("usage") or {}).get(key)
                if isinstance(value, int | float):
                    usage[key] = usage.get(key, 0) + value
            end = Outcome(failed=False, message=said)
        elif kind == "turn.failed":
            error = record.get("error") or {}
            end = Outcome(failed=True, message=_error_text(error.get("message")) or last_error)
        elif kind == "error":
            text = _error_text(record.get("message"))
            if text and not text.startswith("Reconnecting"):
                last_error = text
        elif kind == "item.completed":
            item = record.get("item") or {}
            if item.get("type") == "agent_message" and isinstance(item.get("text"), str):
                said = item["text"]
    if end is None:
        return Outcome(failed=True, message=last_error, usage=usage) if last_error else None
    return Outcome(failed=end.failed, message=end.message or last_error, usage=usage)


def _error_text(message: object) -> str:
    """An error's words: Codex passes an API's JSON error body on as the message."""
    if not isinstance(message, str):
        return ""
    try:
        body = json.loads(message)
    except ValueError:
        return message.strip()
    if isinstance(body, dict):
        error = body.get("error", body)
        inner = error.get("message") if isinstance(error, dict) else error
        if isinstance(inner, str) and inner:
            return inner.strip()
    return message.strip()


def _read_toml(path: Path) -> dict[str, Any]:
    """The user's config, or nothing when it is missing or unreadable (Codex would say why)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` on top, tables merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


# TOML out: the standard library reads it but does not write it. Values only come from a parsed
# TOML file or from this module, so the types are TOML's own; each table becomes a [header],
# arrays stay inline. Round-tripped through tomllib in the tests.

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dump_toml(table: Mapping[str, Any]) -> str:
    """``table`` as a TOML document (``tomllib.loads`` gives it back)."""
    lines: list[str] = []
    _dump_table(table, (), lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _dump_table(table: Mapping[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.extend(["", "[" + ".".join(_key(part) for part in path) + "]"])
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in tables.items():
        _dump_table(value, (*path, key), lines)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    # JSON's escapes are TOML's, but for DEL, which TOML wants escaped too.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"not a TOML value: {value!r}")


KIND = CodexKind()
