"""Agent profiles and kinds: the built-in agents (Claude Code, Codex CLI, aider, and the
project's fake agent for tests and demos) and the lookup of a job's ``agent``.

``profile`` has the profile's fields and config keys; ``kind`` the per-agent adapter (first-run
HOME, outcome of a command-mode run); one module per agent holds its ``KIND``.
"""

from __future__ import annotations

from luzia.agents import aider, claude, codex
from luzia.agents.kind import AgentKind, Outcome, SeedContext
from luzia.agents.profile import DELIVERIES, AgentProfile, Delivery

KINDS: dict[str, AgentKind] = {kind.name: kind for kind in (claude.KIND, codex.KIND, aider.KIND)}

FAKE_AGENT = AgentProfile(
    name="fake-agent",
    command="fake-agent",
    prompt=r"(?m)^>\s*$",
    busy=r"esc to interrupt",
    questions=(r"\[y/n\]\s*$",),
    delay_enter=0.2,
    quiet=0.3,
)

BUILTIN_PROFILES: dict[str, AgentProfile] = {
    **{name: kind.profile for name, kind in KINDS.items()},
    FAKE_AGENT.name: FAKE_AGENT,
}
"""Profiles for agents in the field; their patterns follow what those CLIs print today.

``capture-pane`` drops trailing spaces, so no pattern may require one at the end of a line.
"""


def resolve_profile(agent: str | None, configured: dict[str, AgentProfile]) -> AgentProfile | None:
    """The profile ``agent`` names (config first, then built-in), or ``None`` for a command."""
    if agent is None:
        return None
    return configured.get(agent) or BUILTIN_PROFILES.get(agent)


def agent_kind(profile: AgentProfile | None) -> AgentKind | None:
    """The adapter a profile names with ``kind`` (built-in profiles name their own)."""
    if profile is None or profile.kind is None:
        return None
    return KINDS.get(profile.kind)


__all__ = [
    "BUILTIN_PROFILES",
    "DELIVERIES",
    "KINDS",
    "AgentKind",
    "AgentProfile",
    "Delivery",
    "Outcome",
    "SeedContext",
    "agent_kind",
    "resolve_profile",
]
