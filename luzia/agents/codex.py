"""Codex CLI in luzia: its profile, its first-run HOME and its command-mode outcome."""

from __future__ import annotations

from pathlib import Path

from luzia.agents.kind import AgentKind, Outcome, SeedContext
from luzia.agents.profile import AgentProfile

PROFILE = AgentProfile(name="codex", command="codex", kind="codex")


class CodexKind(AgentKind):
    name = "codex"
    program = "codex"
    profile = PROFILE

    def seed_home(self, home: Path, ctx: SeedContext) -> None:
        pass

    def outcome(self, log: str) -> Outcome | None:
        return None


KIND = CodexKind()
