"""What luzia knows of one agent beyond how to drive its screen: the first-run state its HOME
needs in a container, and how to read the outcome it reports itself in command mode.

One module per agent (``claude``, ``codex``, ``aider``) defines a ``KIND``; a profile names
its kind with ``kind = "claude"``, so a user's own ``[agents.NAME]`` can reuse one.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from luzia.agents.profile import AgentProfile
from luzia.paths import write_private
from luzia.signals import Signal


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an agent said of its own run: ``failed`` with ``message`` (its error, or its final
    words), and ``usage`` as far as it reports it (``input_tokens``, ``output_tokens``,
    ``cost_usd``)."""

    failed: bool
    message: str
    usage: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentState:
    """What one of the agent's own signals says: ``state`` is ``running``, ``idle`` (the turn
    ended; ``usage`` is the turn's, as far as the agent tells) or ``waiting`` (``message`` is
    what the person is asked)."""

    state: str
    message: str
    usage: Mapping[str, float] = field(default_factory=dict)
    usage_later: Callable[[], dict[str, float]] | None = field(default=None, compare=False)
    """For an agent that writes a turn's usage down just after it signals the end: read it
    once the state is told (it may wait a moment for the agent's write)."""


@dataclass(frozen=True, slots=True)
class SeedContext:
    """What seeding a job's agent HOME may look at: the dispatching user's own HOME (config and
    credentials are copied from there), the job's environment, and the workspace path the
    agent sees."""

    user_home: Path
    env: Mapping[str, str]
    workspace: str = "/workspace"


class AgentKind(ABC):
    """One agent's adapter. ``program`` is the executable ``luzia image build --agent`` adds."""

    name: str
    program: str
    profile: AgentProfile

    @abstractmethod
    def seed_home(self, home: Path, ctx: SeedContext) -> None:
        """Fill the empty per-job HOME ``home`` (a container's ``$HOME``): first-run state so
        no setup screen appears, plus the user's own config and credentials, each file 0600."""

    @abstractmethod
    def outcome(self, log: str) -> Outcome | None:
        """The agent's own final record in a command-mode job's ``log`` (terminal output: ANSI
        escapes, ``\\r\\n``), or ``None`` when it left none."""

    def signal_args(self) -> str:
        """Arguments for the interactive command that make the agent report its state through
        ``sh "$LUZIA_SIGNAL" NAME ...`` (``luzia.signals``); empty if it has no such hooks."""
        return ""

    def read_signal(self, signal: Signal, host_path: Callable[[str], Path]) -> AgentState | None:
        """What a signal of the agent's means; ``None`` for one that changes nothing.
        ``host_path`` turns a path the agent named (in its container) into this host's."""
        return None

    def turn_usage(self, screen: str) -> dict[str, float]:
        """The usage of the turn just ended, as its screen shows it (for agents that print it)."""
        return {}


def plain_lines(log: str) -> list[str]:
    """A terminal log as lines of text: escape sequences and carriage returns removed."""
    from controllers.shell import strip_ansi  # here: dispatch imports the kinds, not this

    data = strip_ansi(log.encode("utf-8", "surrogateescape"))
    return data.decode("utf-8", "replace").split("\n")


def json_records(log: str) -> list[dict[str, Any]]:
    """Every line of ``log`` that is a JSON object, in order (JSONL an agent printed)."""
    records = []
    for line in plain_lines(log):
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


def copy_private(source: Path, target: Path) -> bool:
    """Copy the user's file ``source`` (when it exists) to ``target``, readable by its owner
    alone; never a link to the original. Returns whether there was one."""
    try:
        data = source.read_bytes()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return False
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(target, data)
    return True


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in the user's file ``path``; empty when missing, unreadable or not an
    object (the agent would complain of it itself)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_private_json(path: Path, value: object) -> None:
    """Write ``value`` as JSON to ``path`` in a job's HOME, readable by its owner alone."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(path, json.dumps(value, indent=2).encode() + b"\n")
