"""Claude Code in luzia: its profile, its first-run HOME and its command-mode outcome."""

from __future__ import annotations

from pathlib import Path

from luzia.agents.kind import AgentKind, Outcome, SeedContext
from luzia.agents.profile import AgentProfile

PROFILE = AgentProfile(
    name="claude",
    command="claude",
    prompt=r"(?m)^[│\s]*>\s",
    busy=r"esc to interrupt",
    questions=(r"Do you want to", "\u276f 1\\. Yes"),
    delay_enter=0.5,
    quiet=1.5,
    kind="claude",
)


class ClaudeKind(AgentKind):
    name = "claude"
    program = "claude"
    profile = PROFILE

    def seed_home(self, home: Path, ctx: SeedContext) -> None:
        pass

    def outcome(self, log: str) -> Outcome | None:
        return None


KIND = ClaudeKind()
